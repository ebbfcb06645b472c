/**
 * Issue 13 part 3: wills and will-delay timers persisted with the session (SQLite) and fired
 * after a broker restart on the same data file: a pending delayed will fires when due, one whose
 * delay ran out while the broker was down fires at start, an armed will (its connection was up
 * when the broker stopped) counts from the restart and is cancelled by a client that returns in
 * time (MQTT 5.0 §3.1.3.2.2), and a real kill -9 loses none. MQTT.js clients over real sockets;
 * the broker's time is a FakeClock, so "when due" is exact and nothing sleeps.
 */
import assert from 'node:assert/strict';
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, describe, type TestContext, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { FakeClock, startBroker, type TestBroker } from '@breakwater/testkit';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { SqliteStorage } from '../../src/storage/sqlite.js';
import { eventually } from './helpers.js';

const T0 = Date.UTC(2026, 0, 1);
const dir = mkdtempSync(join(tmpdir(), 'bw-wills-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let fileNo = 0;
const clients = new Set<MqttClient>();
const ignore = (): void => {};
let tb: TestBroker | null = null;

afterEach(async () => {
  await Promise.all([...clients].map((c) => c.endAsync(true).catch(() => {})));
  clients.clear();
  await tb?.close();
  tb = null;
});

async function brokerAt(file: string, now: number): Promise<{ broker: TestBroker; clock: FakeClock }> {
  const clock = new FakeClock(now);
  tb = await startBroker({ storage: new SqliteStorage({ file }), clock });
  return { broker: tb, clock };
}

/** Graceful close (clients still connected keep their wills armed), then a new broker on the file. */
async function restart(file: string, now: number): Promise<{ broker: TestBroker; clock: FakeClock }> {
  await tb?.close();
  tb = null;
  for (const c of clients) await c.endAsync(true).catch(() => {});
  clients.clear();
  return brokerAt(file, now);
}

async function connect(port: number, options: IClientOptions): Promise<MqttClient> {
  const c = mqtt.connect({ host: '127.0.0.1', port, reconnectPeriod: 0, connectTimeout: 5000, ...options });
  clients.add(c);
  await new Promise<void>((resolve, reject) => {
    c.once('connect', () => resolve());
    c.once('error', reject);
  });
  c.on('error', ignore); // the broker going away (restart, kill -9) is what these tests do
  return c;
}

/** A persistent v5 session on `filter` (QoS 1), left offline: wills queue there while it is away. */
const watcherOptions: IClientOptions = {
  clientId: 'will-watcher',
  protocolVersion: 5,
  clean: false,
  properties: { sessionExpiryInterval: 3600 },
};

async function leaveWatcher(port: number, filter: string): Promise<void> {
  const w = await connect(port, watcherOptions);
  await w.subscribeAsync(filter, { qos: 1 });
  await w.endAsync(); // DISCONNECT: the session stays
  clients.delete(w);
}

/** The watcher back online, collecting topics of what it receives. */
async function watcher(port: number): Promise<{ client: MqttClient; topics: string[] }> {
  const topics: string[] = [];
  const client = mqtt.connect({ host: '127.0.0.1', port, reconnectPeriod: 0, ...watcherOptions });
  clients.add(client);
  client.on('error', ignore);
  client.on('message', (t) => topics.push(t));
  await new Promise((resolve) => client.once('connect', resolve));
  return { client, topics };
}

/** Everything the broker sent the watcher before this call has arrived when it resolves. */
async function roundTrip(w: { client: MqttClient; topics: string[] }, topic: string): Promise<void> {
  await w.client.publishAsync(topic, 'sync', { qos: 1 });
  await eventually(() => w.topics.includes(topic), `round trip on ${topic}`);
}

function willClient(clientId: string, topic: string, delaySec: number): IClientOptions {
  return {
    clientId,
    protocolVersion: 5,
    clean: false,
    properties: { sessionExpiryInterval: 300 },
    will: {
      topic,
      payload: Buffer.from(clientId),
      qos: 1,
      retain: false,
      properties: { willDelayInterval: delaySec },
    },
  };
}

/** The network drops: no DISCONNECT, so the will is due [MQTT-3.1.2-8]. */
async function lose(c: MqttClient): Promise<void> {
  await c.endAsync(true);
  clients.delete(c);
}

describe('durable wills', () => {
  test('a pending delayed will survives a restart and fires when due, not before', async () => {
    const file = join(dir, `w${fileNo++}.db`);
    let { broker } = await brokerAt(file, T0);
    await leaveWatcher(broker.port, 'dw/#');
    const a = await connect(broker.port, willClient('dw-a', 'dw/a', 60));
    await lose(a);
    await eventually(() => broker.broker.connectedClients === 0, 'offline');
    const r = await restart(file, T0 + 30_000); // due at T0 + 60 s
    broker = r.broker;
    const w = await watcher(broker.port);
    r.clock.advance(29_000);
    await roundTrip(w, 'dw/sync1');
    assert.deepEqual(w.topics, ['dw/sync1'], 'not before its delay');
    r.clock.advance(2_000);
    await eventually(() => w.topics.includes('dw/a'), 'the will at T0 + 60 s');
  });

  test('a will whose delay ran out while the broker was down fires at start', async () => {
    const file = join(dir, `w${fileNo++}.db`);
    let { broker } = await brokerAt(file, T0);
    await leaveWatcher(broker.port, 'dx/#');
    await lose(await connect(broker.port, willClient('dx-a', 'dx/a', 60)));
    await eventually(() => broker.broker.connectedClients === 0, 'offline');
    broker = (await restart(file, T0 + 120_000)).broker;
    const w = await watcher(broker.port); // queued in its session at start
    await eventually(() => w.topics.includes('dx/a'), 'the overdue will');
  });

  test('armed wills at shutdown count from the restart; a client back in time cancels its own', async () => {
    const file = join(dir, `w${fileNo++}.db`);
    let { broker } = await brokerAt(file, T0);
    await leaveWatcher(broker.port, 'da/#');
    await connect(broker.port, willClient('da-back', 'da/back', 30));
    await connect(broker.port, willClient('da-gone', 'da/gone', 30));
    // MQTT 3.1.1 persistent session: no Will Delay, so due at once after the restart.
    await connect(broker.port, {
      clientId: 'da-v4',
      protocolVersion: 4,
      clean: false,
      will: { topic: 'da/v4', payload: Buffer.from('v4'), qos: 1, retain: false },
    });
    const r = await restart(file, T0 + 5_000); // graceful close: no will published then
    broker = r.broker;
    const w = await watcher(broker.port);
    await eventually(() => w.topics.includes('da/v4'), 'the v3.1.1 will at start');
    await connect(broker.port, willClient('da-back', 'da/back', 30)); // back before its 30 s
    r.clock.advance(10_000);
    await roundTrip(w, 'da/sync1');
    assert.deepEqual(w.topics, ['da/v4', 'da/sync1']);
    r.clock.advance(21_000);
    await eventually(() => w.topics.includes('da/gone'), 'the will of the client that stayed away');
    await roundTrip(w, 'da/sync2');
    assert.ok(!w.topics.includes('da/back'), 'cancelled by the reconnect');
  });

  test('a DISCONNECT 0x00 deletes the stored will: nothing fires after a restart', async () => {
    const file = join(dir, `w${fileNo++}.db`);
    let { broker } = await brokerAt(file, T0);
    await leaveWatcher(broker.port, 'dn/#');
    const c = await connect(broker.port, willClient('dn-a', 'dn/a', 10));
    await c.endAsync(); // normal DISCONNECT [MQTT-3.14.4-3]
    clients.delete(c);
    const r = await restart(file, T0 + 60_000);
    broker = r.broker;
    const w = await watcher(broker.port);
    r.clock.advance(20_000);
    await roundTrip(w, 'dn/sync');
    assert.deepEqual(w.topics, ['dn/sync']);
  });
});

describe('durable wills across kill -9', () => {
  const repoRoot = fileURLToPath(new URL('../../../../', import.meta.url));
  const brokerChild = fileURLToPath(new URL('../fixtures/broker-child.ts', import.meta.url));

  async function startChild(
    t: TestContext,
    file: string,
  ): Promise<{ child: ChildProcessWithoutNullStreams; port: number }> {
    const child = spawn(process.execPath, ['--conditions=source', '--import', 'tsx', brokerChild, file], {
      cwd: repoRoot,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    t.after(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    });
    let stdout = '';
    child.stdout.setEncoding('utf8');
    for await (const chunk of child.stdout) {
      stdout += chunk;
      const m = /listening (\d+)\n/.exec(stdout);
      if (m) return { child, port: Number(m[1]) };
    }
    throw new Error('broker child exited before listening');
  }

  test('an armed will of a persistent session is published after the broker is killed and restarted', async (t) => {
    const file = join(dir, `k${fileNo++}.db`);
    const first = await startChild(t, file);
    await leaveWatcher(first.port, 'k9/#');
    await connect(first.port, {
      clientId: 'k9-dev',
      protocolVersion: 4,
      clean: false,
      will: { topic: 'k9/will', payload: Buffer.from('gone'), qos: 1, retain: false },
    });
    // A QoS 1 message queued for the offline watcher: its PUBACK waits for the commit that also
    // holds the will written at CONNECT (one group commit per turn, in order).
    const p = await connect(first.port, { clientId: 'k9-pub', protocolVersion: 4 });
    await p.publishAsync('k9/sync', 'x', { qos: 1 });
    const exited = once(first.child, 'exit');
    first.child.kill('SIGKILL');
    await exited;
    for (const c of clients) await c.endAsync(true).catch(() => {});
    clients.clear();
    const second = await startChild(t, file);
    const w = await watcher(second.port);
    await eventually(() => w.topics.includes('k9/will'), 'the will after kill -9', 10_000);
    assert.ok(w.topics.includes('k9/sync'));
    second.child.kill('SIGKILL');
  });
});
