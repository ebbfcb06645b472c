/**
 * Issue 13 part 3: per-session queue limits in messages and bytes, the overflow policy chosen in
 * config (drop-new, drop-oldest, disconnect), every drop counted by reason and reported per
 * session, PUBACK 0x97 to an MQTT 5 publisher whose message every subscriber refused, and QoS 0
 * offline queueing as an option. Real MQTT.js clients over real sockets; the slow consumer is a
 * v5 client that holds its PUBACKs (MQTT.js `customHandleAcks`: it reads nothing more until the
 * held ack is released), with an in-flight window of 1 so everything else waits in the queue.
 */
import assert from 'node:assert/strict';
import { afterEach, describe, test } from 'node:test';
import { startBroker, type TestBroker, type TestBrokerOptions } from '@breakwater/testkit';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import type { QueueDropReport } from '../../src/queue-drops.js';
import { ReasonCode } from '../../src/reason-codes.js';
import { eventually, metricValue } from './helpers.js';

const clients = new Set<MqttClient>();
const ignore = (): void => {};
let tb: TestBroker;

afterEach(async () => {
  await Promise.all([...clients].map((c) => c.endAsync(true).catch(() => {})));
  clients.clear();
  await tb.close();
});

async function connect(options: IClientOptions): Promise<MqttClient> {
  const c = await mqtt.connectAsync(tb.url, { reconnectPeriod: 0, connectTimeout: 5000, ...options }, false);
  clients.add(c);
  c.on('error', ignore); // a socket error after a broker-side close (EPIPE) is not a test failure
  return c;
}

/** A v5 subscriber that receives messages but holds every PUBACK until `release()`. */
async function slowSubscriber(
  clientId: string,
  topic: string,
  extra: IClientOptions = {},
): Promise<{ client: MqttClient; received: string[]; release: () => void }> {
  const received: string[] = [];
  let held: Array<() => void> = [];
  let paused = true;
  const client = await connect({
    clientId,
    protocolVersion: 5,
    clean: false,
    properties: { sessionExpiryInterval: 300 },
    customHandleAcks: (_topic, _message, _packet, done) => {
      const ack = () => done(0);
      if (paused) held.push(ack);
      else ack();
    },
    ...extra,
  });
  client.on('message', (_t, payload) => received.push(payload.toString()));
  await client.subscribeAsync(topic, { qos: 1 });
  return {
    client,
    received,
    release: () => {
      paused = false;
      const acks = held;
      held = [];
      for (const ack of acks) ack();
    },
  };
}

/** Publishes `payloads` one after another at QoS 1; the reason code of each PUBACK (0 = success). */
async function publishAll(c: MqttClient, topic: string, payloads: string[]): Promise<number[]> {
  const codes: number[] = [];
  for (const p of payloads) {
    try {
      const ack = await c.publishAsync(topic, p, { qos: 1 });
      codes.push((ack as { reasonCode?: number } | undefined)?.reasonCode ?? 0);
    } catch (err) {
      codes.push((err as { code?: number }).code ?? -1);
    }
  }
  return codes;
}

async function start(limits: TestBrokerOptions['limits']): Promise<QueueDropReport[]> {
  tb = await startBroker({ limits: { maxInflight: 1, offlineQueueLimit: 3, ...limits } });
  const reports: QueueDropReport[] = [];
  tb.broker.addObserver({ messagesDropped: (r) => reports.push(r) });
  return reports;
}

const dropped = (reason: string) => metricValue(tb, 'breakwater_messages_dropped_total', { reason });
const six = ['1', '2', '3', '4', '5', '6'];

describe('session queue limits and overflow policies', () => {
  test('drop-new (default): 1 in flight + 3 queued kept, 5 and 6 refused; a v5 publisher gets 0x97, a v3.1.1 one a PUBACK', async () => {
    const reports = await start({});
    assert.equal(tb.broker.limits.queueOverflow, 'drop-new');
    const sub = await slowSubscriber('dn-sub', 'dn/t');
    const pub5 = await connect({ clientId: 'dn-pub5', protocolVersion: 5 });
    const codes = await publishAll(pub5, 'dn/t', six);
    // [MQTT-3.4.2-1] 0x97 Quota exceeded is a PUBACK reason code (MQTT 5.0 §3.4.2.1).
    assert.deepEqual(codes, [0, 0, 0, 0, ReasonCode.QuotaExceeded, ReasonCode.QuotaExceeded]);
    const pub4 = await connect({ clientId: 'dn-pub4', protocolVersion: 4 });
    await pub4.publishAsync('dn/t', '7', { qos: 1 }); // 3.1.1 has no negative PUBACK
    assert.equal(await dropped('queue_full'), 3);
    assert.equal(reports.length, 1, 'first drop reported at once, the rest held for the interval');
    assert.deepEqual(reports[0], { clientId: 'dn-sub', at: reports[0]!.at, dropped: { queue_full: 1 } });
    sub.release();
    await eventually(() => sub.received.length === 4, 'the four kept messages');
    assert.deepEqual(sub.received, ['1', '2', '3', '4']);
  });

  test('drop-oldest: the oldest queued messages make room, publishers all get success', async () => {
    await start({ queueOverflow: 'drop-oldest' });
    const sub = await slowSubscriber('do-sub', 'do/t');
    const pub = await connect({ clientId: 'do-pub', protocolVersion: 5 });
    assert.deepEqual(await publishAll(pub, 'do/t', six), [0, 0, 0, 0, 0, 0]);
    assert.equal(await dropped('queue_evicted'), 2);
    assert.equal(await dropped('queue_full'), 0);
    sub.release();
    await eventually(() => sub.received.length === 4, 'four messages');
    assert.deepEqual(sub.received, ['1', '4', '5', '6'], 'in flight kept, 2 and 3 evicted');
  });

  test('disconnect: the slow consumer gets DISCONNECT 0x97, its session keeps the queue', async () => {
    await start({ queueOverflow: 'disconnect' });
    const sub = await slowSubscriber('dc-sub', 'dc/t');
    const disconnected = new Promise<number | undefined>((resolve) =>
      sub.client.once('disconnect', (p) => resolve(p.reasonCode)),
    );
    const pub = await connect({ clientId: 'dc-pub', protocolVersion: 5 });
    const codes = await publishAll(pub, 'dc/t', ['1', '2', '3', '4', '5']);
    assert.deepEqual(codes.slice(0, 4), [0, 0, 0, 0]);
    assert.equal(codes[4], ReasonCode.QuotaExceeded);
    sub.release(); // lets MQTT.js read on, up to the DISCONNECT
    assert.equal(await disconnected, ReasonCode.QuotaExceeded);
    assert.equal(await metricValue(tb, 'breakwater_disconnects_total', { reason: 'queue_overflow' }), 1);
    await eventually(() => tb.broker.connectedClients === 1, 'subscriber gone');
    // Offline now, still full: a new message is refused, not queued.
    assert.deepEqual(await publishAll(pub, 'dc/t', ['6']), [ReasonCode.QuotaExceeded]);
    assert.equal(await dropped('queue_full'), 2);
    await sub.client.endAsync(true);
    const back: string[] = [];
    const again = mqtt.connect(tb.url, {
      clientId: 'dc-sub',
      protocolVersion: 5,
      clean: false,
      properties: { sessionExpiryInterval: 300 },
      reconnectPeriod: 0,
    });
    clients.add(again);
    again.on('error', ignore);
    // Listening before CONNACK: the queue is resent right behind it.
    again.on('message', (_t, payload) => back.push(payload.toString()));
    await eventually(() => back.includes('4'), 'queued messages after reconnect');
    assert.ok(back.includes('2') && back.includes('3'), `got ${back.join(',')}`);
    assert.ok(!back.includes('5') && !back.includes('6'));
  });

  test('byte limit: a queue of 2 × 43 bytes refuses a third message as queue_bytes_full', async () => {
    await start({ offlineQueueLimit: 100, offlineQueueBytes: 100 });
    const sub = await slowSubscriber('qb-sub', 'q/b');
    const pub = await connect({ clientId: 'qb-pub', protocolVersion: 5 });
    const body = (n: number) => `${n}`.padEnd(40, '.'); // 3 + 40 bytes each
    const codes = await publishAll(pub, 'q/b', [1, 2, 3, 4].map(body));
    assert.deepEqual(codes, [0, 0, 0, ReasonCode.QuotaExceeded]);
    assert.equal(await dropped('queue_bytes_full'), 1);
    sub.release();
    await eventually(() => sub.received.length === 3, 'three messages');
  });

  test('0x97 only when every matching subscriber refused: one fast subscriber makes it a success', async () => {
    await start({});
    await slowSubscriber('mix-slow', 'mix/t');
    const fast = await connect({ clientId: 'mix-fast', protocolVersion: 5 });
    const got: string[] = [];
    fast.on('message', (_t, payload) => got.push(payload.toString()));
    await fast.subscribeAsync('mix/t', { qos: 1 });
    const pub = await connect({ clientId: 'mix-pub', protocolVersion: 5 });
    const codes: number[] = [];
    for (const p of six) {
      codes.push(...(await publishAll(pub, 'mix/t', [p])));
      // Paced by the fast subscriber, so only the slow one's queue fills up.
      await eventually(() => got.includes(p), `fast subscriber got ${p}`);
    }
    assert.deepEqual(codes, [0, 0, 0, 0, 0, 0]);
    assert.equal(await dropped('queue_full'), 2, 'the slow subscriber still dropped 5 and 6');
  });

  test('a shared group passes a message on to a member with room instead of dropping it', async () => {
    await start({});
    await slowSubscriber('sh-slow', '$share/g/sh/t');
    const other = await slowSubscriber('sh-other', '$share/g/sh/t');
    const pub = await connect({ clientId: 'sh-pub', protocolVersion: 5 });
    // Two members × (1 in flight + 3 queued) = 8 taken, then refused.
    const codes = await publishAll(pub, 'sh/t', ['1', '2', '3', '4', '5', '6', '7', '8', '9']);
    assert.deepEqual(codes, [0, 0, 0, 0, 0, 0, 0, 0, ReasonCode.QuotaExceeded]);
    assert.equal(await dropped('queue_full'), 1);
    other.release();
  });
});

describe('QoS 0 offline queueing (mqtt.queueQos0)', () => {
  async function offlineQos0(queueQos0: boolean): Promise<string[]> {
    tb = await startBroker({ limits: { queueQos0, offlineQueueLimit: 2 } });
    const opts: IClientOptions = {
      clientId: `q0-${queueQos0}`,
      protocolVersion: 5,
      clean: false,
      properties: { sessionExpiryInterval: 300 },
    };
    const sub = await connect(opts);
    await sub.subscribeAsync('q0/t', { qos: 0 });
    await sub.endAsync();
    const pub = await connect({ clientId: `q0-pub-${queueQos0}`, protocolVersion: 5 });
    for (const p of ['a', 'b', 'c']) await pub.publishAsync('q0/t', p, { qos: 0 });
    await pub.publishAsync('q0/other', 'x', { qos: 1 }); // PUBACK: the broker has routed a, b, c
    const received: string[] = [];
    const back = mqtt.connect(tb.url, { reconnectPeriod: 0, ...opts });
    clients.add(back);
    back.on('error', ignore);
    back.on('message', (_t, payload) => received.push(payload.toString()));
    await new Promise((resolve) => back.once('connect', resolve));
    // A round trip on the same connection: whatever the broker resumed has arrived by now.
    await back.subscribeAsync('q0/sync', { qos: 1 });
    await back.publishAsync('q0/sync', 'sync', { qos: 1 });
    await eventually(() => received.includes('sync'), 'sync message');
    return received.filter((m) => m !== 'sync');
  }

  test('off (default): QoS 0 is not queued for an offline session', async () => {
    assert.deepEqual(await offlineQos0(false), []);
  });

  test('on: QoS 0 is queued within the same limits and sent on return', async () => {
    assert.deepEqual(await offlineQos0(true), ['a', 'b']);
    assert.equal(await dropped('queue_full'), 1);
  });
});
