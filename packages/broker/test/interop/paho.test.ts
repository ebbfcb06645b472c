// Interop with Eclipse paho-mqtt for Python (Debian `python3-paho-mqtt`, run with /usr/bin/python3,
// not whatever python is first on PATH). The client is fixtures/paho_client.py; it prints one JSON
// line per event, which the test awaits.
import assert from 'node:assert/strict';
import { after, before, describe, type TestContext, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { killAll, LineProcess, run } from '../support/process.js';
import { requireProgram, type Target, target, uniqueId } from '../support/target.js';

const PYTHON = '/usr/bin/python3';
const SCRIPT = fileURLToPath(new URL('./fixtures/paho_client.py', import.meta.url));

function havePaho(t: TestContext): boolean {
  return requireProgram(
    t,
    'python3-paho-mqtt',
    [PYTHON, '-c', 'import paho.mqtt.client'],
    'install Debian python3-paho-mqtt (scripts/setup-test.sh does)',
  );
}

interface PahoEvent {
  event: string;
  [key: string]: unknown;
}

const parse = (line: string): PahoEvent => JSON.parse(line) as PahoEvent;
const isEvent = (name: string) => (line: string) => line.startsWith('{') && parse(line).event === name;

for (const protocol of [4, 5] as const) {
  describe(`paho-mqtt (Python) protocol ${protocol}`, () => {
    let broker: Target;
    let prefix: string;
    before(async () => {
      broker = await target();
      prefix = `bw-interop/${uniqueId(`paho${protocol}`)}`;
    });
    after(async () => {
      await killAll();
      await broker.close();
    });

    const base = () => ['--host', broker.host, '--port', String(broker.port), '--protocol', String(protocol)];

    function client(mode: 'sub' | 'will', args: readonly string[]): LineProcess {
      return new LineProcess(PYTHON, [SCRIPT, mode, ...base(), '--timeout', '10', ...args], 15_000);
    }

    async function publish(args: readonly string[]): Promise<void> {
      const r = await run(PYTHON, [SCRIPT, 'pub', ...base(), '--timeout', '10', ...args], 15_000);
      assert.equal(r.code, 0, `paho publish failed: ${r.stdout} ${r.stderr}`);
    }

    async function subscribed(args: readonly string[]): Promise<LineProcess> {
      const p = client('sub', args);
      await p.waitForLine(isEvent('subscribed'));
      return p;
    }

    for (const qos of [0, 1, 2] as const) {
      test(`QoS ${qos} round trip`, async (t) => {
        if (!havePaho(t)) return;
        const topic = `${prefix}/qos${qos}`;
        const sub = await subscribed(['--topic', topic, '--qos', String(qos)]);
        assert.deepEqual(parse(await sub.waitForLine(isEvent('subscribed'))).granted, [qos]);
        await publish(['--topic', topic, '--qos', String(qos), '--message', `hello qos ${qos}`]);
        const m = parse(await sub.waitForLine(isEvent('message')));
        assert.deepEqual(m, { event: 'message', topic, payload: `hello qos ${qos}`, qos, retain: false });
        assert.equal((await sub.exited).code, 0);
      });
    }

    test('retained message delivered to a later subscriber, then cleared', async (t) => {
      if (!havePaho(t)) return;
      const topic = `${prefix}/retained`;
      await publish(['--topic', topic, '--qos', '1', '--retain', '--message', 'kept']);
      const sub = client('sub', ['--topic', topic, '--qos', '1']);
      const m = parse(await sub.waitForLine(isEvent('message')));
      assert.deepEqual(m, { event: 'message', topic, payload: 'kept', qos: 1, retain: true });

      await publish(['--topic', topic, '--qos', '1', '--retain', '--message', '']); // clear
      const later = await subscribed(['--topic', topic, '--qos', '1']);
      await publish(['--topic', topic, '--qos', '1', '--message', 'live']);
      // A stale retained message would be the first message line, ahead of the live one.
      const first = parse(await later.waitForLine(isEvent('message')));
      assert.deepEqual(first, { event: 'message', topic, payload: 'live', qos: 1, retain: false });
    });

    test('will message published when the client is killed', async (t) => {
      if (!havePaho(t)) return;
      const willTopic = `${prefix}/will`;
      const watcher = await subscribed(['--topic', willTopic, '--qos', '1']);
      const dying = client('will', [
        '--topic',
        willTopic,
        '--message',
        'gone',
        '--client-id',
        uniqueId('paho-will'),
      ]);
      await dying.waitForLine(isEvent('ready'));
      dying.kill('SIGKILL'); // no DISCONNECT
      const m = parse(await watcher.waitForLine(isEvent('message')));
      assert.deepEqual(m, { event: 'message', topic: willTopic, payload: 'gone', qos: 1, retain: false });
    });

    test('persistent session receives a QoS 1 message published while offline; CONNACK session present', async (t) => {
      if (!havePaho(t)) return;
      const clientId = uniqueId('paho-persist');
      const topic = `${prefix}/persist`;
      // --count 0: subscribe, then DISCONNECT normally; the session stays (clean=false / expiry 300 s).
      const first = await run(
        PYTHON,
        [
          SCRIPT,
          'sub',
          ...base(),
          '--client-id',
          clientId,
          '--persistent',
          '--topic',
          topic,
          '--qos',
          '1',
          '--count',
          '0',
        ],
        15_000,
      );
      assert.equal(first.code, 0, first.stdout + first.stderr);
      await publish(['--topic', topic, '--qos', '1', '--message', 'while you were away']);
      const again = client('sub', ['--client-id', clientId, '--persistent', '--topic', topic, '--qos', '1']);
      const connack = parse(await again.waitForLine(isEvent('connack')));
      assert.equal(connack.session_present, true);
      const m = parse(await again.waitForLine(isEvent('message')));
      assert.deepEqual(m, { event: 'message', topic, payload: 'while you were away', qos: 1, retain: false });
      assert.equal((await again.exited).code, 0);
      // End the session on a possibly shared broker: connect once with a clean session.
      const cleanup = await run(PYTHON, [
        SCRIPT,
        'sub',
        ...base(),
        '--client-id',
        clientId,
        '--topic',
        topic,
        '--count',
        '0',
      ]);
      assert.equal(cleanup.code, 0, cleanup.stdout + cleanup.stderr);
    });
  });
}
