/**
 * Issue 13 part 3 end to end: every queue drop lands in the device's event history. A real broker
 * on port 0 (testkit) with a small session queue, the control plane on a real HTTP socket with
 * SQLite storage fed by the broker's observer events (brokerFleet), and MQTT.js 5 clients: a
 * persistent QoS 1 subscriber goes offline, a publisher sends past the queue limit, and
 * GET /api/v1/devices/{id}/events shows the drops with the reason and count the broker counted in
 * breakwater_messages_dropped_total{reason}.
 *
 * The broker reports a session's drops at once for the first one and then at most every 10 s
 * (queue-drops.ts). Its clock here runs on the wall clock plus an offset; moving the offset 10 s
 * ahead lets the broker's own 1 s sweep send the rest, so nothing sleeps for 10 s.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import {
  type BrokerLimits,
  type Clock,
  QUEUE_DROP_REPORT_INTERVAL_MS,
  systemClock,
} from '@breakwater/broker';
import { startBroker } from '@breakwater/testkit';
import Fastify from 'fastify';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { brokerFleet } from '../src/fleet-broker.js';
import { createControlPlane } from '../src/http/app.js';
import { SqliteControlStorage } from '../src/storage/sqlite.js';

// Generous: other test files load the machine at the same time.
const DEADLINE_MS = 15_000;

async function eventually<T>(what: string, probe: () => Promise<T | null>): Promise<T> {
  const end = Date.now() + DEADLINE_MS;
  for (;;) {
    const value = await probe();
    if (value !== null) return value;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

interface EventView {
  seq: number;
  at: string;
  kind: string;
  clientId: string;
  reason: string | null;
  count: number | null;
}

/** Broker, control plane and HTTP socket, torn down after `t`. */
async function fleet(t: TestContext, limits: Partial<BrokerLimits>) {
  const dataDir = await mkdtemp(join(tmpdir(), 'bw-device-events-e2e-'));
  const clock: Clock & { offsetMs: number } = {
    ...systemClock,
    offsetMs: 0,
    now: () => Date.now() + clock.offsetMs,
  };
  const tb = await startBroker({ limits, clock });
  const storage = SqliteControlStorage.open({ file: join(dataDir, 'control.db') });
  const cp = await createControlPlane({ storage, dataDir, fleet: brokerFleet(tb.broker) });
  const app = Fastify({ logger: false });
  await app.register(cp.plugin);
  await app.listen({ port: 0, host: '127.0.0.1' });
  await cp.start();
  const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}/api/v1`;
  const clients: MqttClient[] = [];
  t.after(async () => {
    await Promise.all(clients.map((c) => c.endAsync(true).catch(() => {})));
    await cp.close();
    await app.close();
    await tb.close();
    await storage.close();
    await rm(dataDir, { recursive: true, force: true });
  });

  async function api<T>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T }> {
    const res = await fetch(`${base}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${cp.initialAdminKey}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    return { status: res.status, body: (await res.json()) as T };
  }

  /** `onMessage` is attached before CONNECT: a resumed session's queue arrives right after CONNACK. */
  async function connect(
    options: IClientOptions,
    onMessage?: (topic: string, payload: Buffer) => void,
  ): Promise<MqttClient> {
    const c = mqtt.connect(tb.url, {
      protocolVersion: 5,
      reconnectPeriod: 0,
      connectTimeout: 5000,
      ...options,
    });
    clients.push(c);
    if (onMessage) c.on('message', onMessage);
    await new Promise<void>((resolve, reject) => {
      c.once('connect', () => resolve());
      c.once('error', reject);
    });
    c.on('error', () => {}); // a socket error after a broker-side close is not a test failure
    return c;
  }

  async function events(id: string, query = ''): Promise<EventView[]> {
    const res = await api<{ items: EventView[] }>('GET', `/devices/${id}/events${query}`);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    return res.body.items;
  }

  const dropped = async (reason: string): Promise<number> => {
    const m = await tb.metrics.registry.getSingleMetric('breakwater_messages_dropped_total')?.get();
    return m?.values.find((v) => v.labels.reason === reason)?.value ?? 0;
  };

  return { tb, clock, api, connect, events, dropped };
}

/** `kept`: which of the 8 messages (by index) the subscriber gets back. */
const cases: Array<{ reason: string; limits: Partial<BrokerLimits>; kept: number[] }> = [
  { reason: 'queue_full', limits: { offlineQueueLimit: 3 }, kept: [0, 1, 2] },
  {
    reason: 'queue_evicted',
    limits: { offlineQueueLimit: 3, queueOverflow: 'drop-oldest' },
    kept: [5, 6, 7],
  },
  // Each message is 100 bytes (topic + payload, as the broker counts): 3 fit in 350.
  { reason: 'queue_bytes_full', limits: { offlineQueueLimit: 100, offlineQueueBytes: 350 }, kept: [0, 1, 2] },
];

const TOPIC = 'fleet/cmd'; // 9 bytes
const PAYLOADS = Array.from({ length: 8 }, (_, i) => `${i}`.padEnd(91, '.'));

describe('queue drops in the device event history (broker + control plane + MQTT.js 5)', () => {
  for (const { reason, limits, kept } of cases) {
    it(`${reason}: an offline persistent QoS 1 subscriber's drops are listed with reason and count`, async (t) => {
      const f = await fleet(t, limits);
      const id = `dev-${reason.replaceAll('_', '-')}`;
      assert.equal((await f.api('POST', '/devices', { id })).status, 201);

      const sub = await f.connect({ clientId: id, clean: false, properties: { sessionExpiryInterval: 300 } });
      await sub.subscribeAsync(TOPIC, { qos: 1 });
      await sub.endAsync();
      const pub = await f.connect({ clientId: 'publisher', protocolVersion: 4 });
      for (const p of PAYLOADS) await pub.publishAsync(TOPIC, p, { qos: 1 });
      assert.equal(await f.dropped(reason), 5, 'the broker dropped 5 of 8 (3 queued)');

      // The first drop is reported at once; the other four with the next report, 10 s later.
      const first = await eventually('the first drop report', async () => {
        const drops = await f.events(id, '?kind=messages_dropped');
        return drops.length === 1 ? drops : null;
      });
      assert.deepEqual(
        first.map((e) => [e.kind, e.clientId, e.reason, e.count]),
        [['messages_dropped', id, reason, 1]],
      );
      f.clock.offsetMs += QUEUE_DROP_REPORT_INTERVAL_MS;
      const drops = await eventually('the second drop report', async () => {
        const d = await f.events(id, '?kind=messages_dropped');
        return d.length === 2 ? d : null;
      });
      assert.deepEqual(
        drops.map((e) => [e.reason, e.count]),
        [
          [reason, 4],
          [reason, 1],
        ],
      );
      assert.ok(Date.parse(drops[0]!.at) - Date.parse(drops[1]!.at) >= QUEUE_DROP_REPORT_INTERVAL_MS);

      // The history agrees with what the subscriber gets back: 8 published, 3 delivered.
      const received: string[] = [];
      await f.connect(
        { clientId: id, clean: false, properties: { sessionExpiryInterval: 300 } },
        (_t, payload) => received.push(payload.toString()),
      );
      await eventually('the queued messages', async () => (received.length >= 3 ? true : null));
      await new Promise((r) => setTimeout(r, 100)); // nothing more than the 3 arrives
      assert.deepEqual(
        received,
        kept.map((i) => PAYLOADS[i]),
      );
      assert.equal(
        PAYLOADS.length - received.length,
        drops.reduce((n, e) => n + e.count!, 0),
      );

      // The session's connects and disconnects are in the same history, newest first.
      const all = await eventually('the reconnect', async () => {
        const items = await f.events(id);
        return items[0]?.kind === 'connected' ? items : null;
      });
      assert.deepEqual(
        all.map((e) => e.kind),
        ['connected', 'messages_dropped', 'messages_dropped', 'disconnected', 'connected'],
      );
      // The publisher is not a registered device: nothing is kept for it.
      assert.equal((await f.api('GET', '/devices/publisher/events')).status, 404);
    });
  }
});
