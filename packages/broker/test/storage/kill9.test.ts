/**
 * Issue 2: "A QoS 1/2 publish that the broker acknowledged survives `kill -9` of the broker and
 * is delivered to the subscriber's persistent session after restart." Tested with a real kill:
 * the broker runs in a child process on SqliteStorage, gets SIGKILL right after the last
 * PUBACK/PUBCOMP (no graceful shutdown), and is restarted on the same database file.
 */
import assert from 'node:assert/strict';
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';

const repoRoot = fileURLToPath(new URL('../../../../', import.meta.url));
const brokerChild = fileURLToPath(new URL('../fixtures/broker-child.ts', import.meta.url));

interface BrokerProcess {
  child: ChildProcessWithoutNullStreams;
  port: number;
}

async function startBrokerProcess(t: TestContext, file: string): Promise<BrokerProcess> {
  const child = spawn(process.execPath, ['--conditions=source', '--import', 'tsx', brokerChild, file], {
    cwd: repoRoot,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
  });
  let stdout = '';
  child.stdout.setEncoding('utf8');
  for await (const chunk of child.stdout) {
    stdout += chunk;
    const m = /listening (\d+)\n/.exec(stdout);
    if (m) return { child, port: Number(m[1]) };
  }
  throw new Error(`broker child exited before listening: ${stderr}`);
}

async function kill9(b: BrokerProcess): Promise<void> {
  const exited = once(b.child, 'exit');
  b.child.kill('SIGKILL');
  const [code, signal] = await exited;
  assert.equal(code, null);
  assert.equal(signal, 'SIGKILL');
}

function client(t: TestContext, port: number, options: IClientOptions): MqttClient {
  const c = mqtt.connect({ host: '127.0.0.1', port, reconnectPeriod: 0, connectTimeout: 5000, ...options });
  t.after(() => c.endAsync(true));
  return c;
}

async function connected(c: MqttClient): Promise<{ sessionPresent: boolean }> {
  return new Promise((resolve, reject) => {
    c.once('connect', (connack) => resolve({ sessionPresent: connack.sessionPresent }));
    c.once('error', reject);
  });
}

/** A bounded wait for an event that may never come: rejects with a message saying what is missing. */
function deadline(ms: number, describe: () => string): Promise<never> {
  return new Promise((_, reject) => setTimeout(() => reject(new Error(describe())), ms).unref());
}

const subscribers = [
  {
    name: 'v5',
    options: {
      clientId: 'kill9-sub-v5',
      protocolVersion: 5,
      clean: false,
      properties: { sessionExpiryInterval: 3600 },
    },
  },
  { name: 'v3.1.1', options: { clientId: 'kill9-sub-v4', protocolVersion: 4, clean: false } },
] as const satisfies ReadonlyArray<{ name: string; options: IClientOptions }>;

describe('persistence across kill -9 of the broker', () => {
  it('every QoS 1/2 publish acknowledged before kill -9 reaches the persistent sessions after restart', {
    timeout: 60_000,
  }, async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'bw-kill9-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const file = join(dir, 'breakwater.db');

    const first = await startBrokerProcess(t, file);

    // Persistent sessions subscribe, then go offline with a normal DISCONNECT.
    for (const s of subscribers) {
      const sub = client(t, first.port, s.options);
      await connected(sub);
      const granted = await sub.subscribeAsync('kill9/#', { qos: 2 });
      assert.equal(granted[0]?.qos, 2);
      await sub.endAsync();
    }

    // Another client publishes; each publish resolves on PUBACK (QoS 1) or PUBCOMP (QoS 2).
    // All in flight at once, so the broker acknowledges them in group-committed batches.
    const pub = client(t, first.port, { clientId: 'kill9-pub', protocolVersion: 5, clean: true });
    await connected(pub);
    const sent: string[] = [];
    const acks: Promise<unknown>[] = [];
    for (let i = 0; i < 200; i++) {
      const qos = i % 2 === 0 ? 1 : 2;
      const payload = `msg-${i}-qos${qos}`;
      sent.push(payload);
      acks.push(
        pub.publishAsync(`kill9/${i % 5}`, payload, {
          qos,
          properties: { userProperties: { i: String(i) }, correlationData: Buffer.from([i & 0xff, 0, 0xff]) },
        }),
      );
    }
    acks.push(pub.publishAsync('kill9/retained', 'kept', { qos: 1, retain: true }));
    await Promise.all(acks);
    await kill9(first); // right after the last acknowledgement
    pub.end(true);

    // [MQTT-4.6.0-6] every topic is an ordered topic: per topic, publish order is kept. Compared
    // per topic and QoS, because MQTT.js emits a QoS 2 message only on PUBREL, one round trip
    // after a QoS 1 message sent behind it (and MQTT 5.0 §4.6 only orders within a QoS level).
    const expectedByTopic = new Map<string, string[]>();
    sent.forEach((payload, i) => {
      const key = `kill9/${i % 5} qos${i % 2 === 0 ? 1 : 2}`;
      expectedByTopic.set(key, [...(expectedByTopic.get(key) ?? []), payload]);
    });
    expectedByTopic.set('kill9/retained qos1', ['kept']); // also routed live to kill9/#

    const second = await startBrokerProcess(t, file);
    for (const s of subscribers) {
      const sub = client(t, second.port, s.options);
      const received = new Map<string, string[]>();
      const seen = new Set<string>();
      const allArrived = new Promise<void>((resolve) => {
        sub.on('message', (topic, payload, packet) => {
          const text = payload.toString();
          if (seen.has(text)) return; // a QoS 1 duplicate is allowed
          seen.add(text);
          const key = `${topic} qos${packet.qos}`;
          received.set(key, [...(received.get(key) ?? []), text]);
          if (seen.size === sent.length + 1) resolve();
        });
      });
      const connack = await connected(sub);
      assert.equal(connack.sessionPresent, true, `${s.name}: session survived the restart`);
      await Promise.race([
        allArrived,
        deadline(20_000, () => `${s.name}: only ${seen.size} of ${sent.length + 1} messages arrived`),
      ]);
      assert.deepEqual(
        received,
        expectedByTopic,
        `${s.name}: every acknowledged message, in order per topic`,
      );
      await sub.endAsync();
    }

    // The retained message survived too: a new subscriber gets it from the restarted broker.
    const fresh = client(t, second.port, { clientId: 'kill9-fresh', protocolVersion: 5, clean: true });
    await connected(fresh);
    const retained = new Promise<[string, Buffer, { retain: boolean }]>((resolve) => {
      fresh.once('message', (topic, payload, packet) => resolve([topic, payload, packet]));
    });
    await fresh.subscribeAsync('kill9/retained', { qos: 1 });
    const [topic, payload, packet] = await retained;
    assert.equal(topic, 'kill9/retained');
    assert.equal(payload.toString(), 'kept');
    assert.equal(packet.retain, true);
    await fresh.endAsync();
    await kill9(second);
  });
});
