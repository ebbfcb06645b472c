// Interop with the Eclipse Mosquitto command-line clients (Debian `mosquitto-clients`):
// mosquitto_sub / mosquitto_pub, MQTT 3.1.1 and 5, over real TCP sockets. Each process gets
// `-W` (and a hard kill timeout) so nothing can hang.
import assert from 'node:assert/strict';
import { after, before, describe, type TestContext, test } from 'node:test';
import { killAll, LineProcess, run } from '../support/process.js';
import { requireProgram, type Target, target, uniqueId } from '../support/target.js';

const HINT = 'install Debian mosquitto-clients (scripts/setup-test.sh does)';

function haveClients(t: TestContext): boolean {
  return requireProgram(
    t,
    'mosquitto_sub/mosquitto_pub',
    ['sh', '-c', 'command -v mosquitto_sub && command -v mosquitto_pub && command -v stdbuf'],
    HINT,
  );
}

interface Message {
  qos: number;
  retain: boolean;
  topic: string;
  payload: string;
}

/** `-F` format for mosquitto_sub: one parseable line per message. */
const FORMAT = 'MSG %q %r %t %p';

function parseMessage(line: string): Message {
  const m = /^MSG (\d) (\d) (\S+) ?(.*)$/.exec(line);
  if (!m) throw new Error(`not a message line: ${line}`);
  return { qos: Number(m[1]), retain: m[2] === '1', topic: m[3] ?? '', payload: m[4] ?? '' };
}

const isMessage = (line: string) => line.startsWith('MSG ');
const isSuback = (line: string) => /received SUBACK/.test(line);

for (const version of ['mqttv311', 'mqttv5'] as const) {
  describe(`mosquitto_pub / mosquitto_sub -V ${version}`, () => {
    let broker: Target;
    let prefix: string;
    let conn: string[];
    /** mosquitto_sub block-buffers stdout on a pipe; `stdbuf -oL` makes each line visible at once. */
    const sub = (args: readonly string[], timeoutMs: number) =>
      new LineProcess('stdbuf', ['-oL', 'mosquitto_sub', ...args], timeoutMs);
    before(async () => {
      broker = await target();
      prefix = `bw-interop/${uniqueId(`mosq-${version}`)}`;
      conn = ['-h', broker.host, '-p', String(broker.port), '-V', version];
    });
    after(async () => {
      await killAll();
      await broker.close();
    });

    /** Start a subscriber and resolve once the broker acknowledged its subscription. */
    async function subscribe(topic: string, extra: readonly string[], count: number): Promise<LineProcess> {
      const p = sub(
        [...conn, '-d', '-t', topic, '-C', String(count), '-W', '10', '-F', FORMAT, ...extra],
        15_000,
      );
      await p.waitForLine(isSuback);
      return p;
    }

    async function publish(args: readonly string[]): Promise<void> {
      const r = await run('mosquitto_pub', [...conn, ...args]);
      assert.equal(r.code, 0, `mosquitto_pub failed: ${r.stderr}`);
    }

    for (const qos of [0, 1, 2] as const) {
      test(`QoS ${qos} round trip`, async (t) => {
        if (!haveClients(t)) return;
        const topic = `${prefix}/qos${qos}`;
        const sub = await subscribe(topic, ['-q', String(qos)], 1);
        await publish(['-t', topic, '-q', String(qos), '-m', `hello qos ${qos}`]);
        const m = parseMessage(await sub.waitForLine(isMessage));
        assert.deepEqual(m, { qos, retain: false, topic, payload: `hello qos ${qos}` });
        assert.equal((await sub.exited).code, 0);
      });
    }

    test('retained message delivered to a later subscriber, then cleared', async (t) => {
      if (!haveClients(t)) return;
      const topic = `${prefix}/retained`;
      await publish(['-t', topic, '-q', '1', '-r', '-m', 'kept']);
      const sub = await subscribe(topic, ['-q', '1'], 1);
      const m = parseMessage(await sub.waitForLine(isMessage));
      assert.deepEqual(m, { qos: 1, retain: true, topic, payload: 'kept' });

      await publish(['-t', topic, '-q', '1', '-r', '-n']); // zero-length retained = clear
      // A stale retained message would arrive (and be printed) before the live marker.
      const after = await subscribe(topic, ['-q', '1'], 1);
      await publish(['-t', topic, '-q', '1', '-m', 'live']);
      const line = await after.waitForLine(isMessage);
      assert.deepEqual(parseMessage(line), { qos: 1, retain: false, topic, payload: 'live' });
    });

    test('will message published when the client is killed', async (t) => {
      if (!haveClients(t)) return;
      const willTopic = `${prefix}/will`;
      const watcher = await subscribe(willTopic, ['-q', '1'], 1);
      const dying = sub(
        [
          ...conn,
          '-d',
          '-t',
          `${prefix}/idle`,
          '-W',
          '30',
          '--will-topic',
          willTopic,
          '--will-payload',
          'gone',
          '--will-qos',
          '1',
        ],
        35_000,
      );
      await dying.waitForLine(isSuback);
      dying.kill('SIGKILL'); // no DISCONNECT: the kernel closes the socket
      const m = parseMessage(await watcher.waitForLine(isMessage));
      assert.deepEqual(m, { qos: 1, retain: false, topic: willTopic, payload: 'gone' });
    });

    test('persistent session (-c) receives a QoS 1 message published while offline', async (t) => {
      if (!haveClients(t)) return;
      const clientId = uniqueId('mosq-persist');
      const topic = `${prefix}/persist`;
      // -E: exit as soon as the subscription is acknowledged (DISCONNECT, session kept by -c).
      const first = await run('mosquitto_sub', [...conn, '-c', '-i', clientId, '-q', '1', '-t', topic, '-E']);
      assert.equal(first.code, 0, first.stderr);
      await publish(['-t', topic, '-q', '1', '-m', 'while you were away']);
      const again = sub(
        [...conn, '-c', '-i', clientId, '-q', '1', '-t', topic, '-C', '1', '-W', '10', '-F', FORMAT],
        15_000,
      );
      const m = parseMessage(await again.waitForLine(isMessage));
      assert.deepEqual(m, { qos: 1, retain: false, topic, payload: 'while you were away' });
      // End the session on the (possibly shared) broker: clean start without -c.
      const cleanup = await run('mosquitto_sub', [...conn, '-i', clientId, '-t', topic, '-E']);
      assert.equal(cleanup.code, 0, cleanup.stderr);
    });
  });
}
