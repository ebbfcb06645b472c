import assert from 'node:assert/strict';
import { after, afterEach, before, describe, test } from 'node:test';
import { FakeClock, startBroker, type TestBroker } from '@breakwater/testkit';
import { ReasonCode } from '../../src/index.js';
import { ClientPool, metricValue, nothingReceived, publish, subscribe, sync } from './helpers.js';

type Pub = {
  topic: string;
  payload: Buffer;
  qos: number;
  retain: boolean;
  dup: boolean;
  messageId?: number;
  properties?: Record<string, unknown>;
};

describe('engine: publish, subscribe, retained', () => {
  let tb: TestBroker;
  const pool = new ClientPool(() => tb);
  before(async () => {
    tb = await startBroker({
      limits: { topicAliasMaximum: 5 },
      hooks: {
        authorizePublish: (_c, topic) => !topic.startsWith('forbidden/'),
        authorizeSubscribe: (_c, filter) => !filter.startsWith('forbidden/'),
      },
    });
  });
  afterEach(() => pool.closeAll());
  after(() => tb.close());

  test('[MQTT-4.7.1-2] + and # wildcards match', async () => {
    const s = await pool.connected('wc', 4);
    await subscribe(s, 'a/+/c');
    await subscribe(s, 'x/#');
    const p = await pool.connected('wc-p', 4);
    publish(p, 'a/b/c', '1');
    publish(p, 'a/b/d', 'no');
    publish(p, 'x', '2');
    publish(p, 'x/y/z', '3');
    const got = [];
    for (let i = 0; i < 3; i++) got.push(((await s.next('publish')) as Pub).payload.toString());
    assert.deepEqual(got, ['1', '2', '3']);
  });

  test('[MQTT-4.7.2-1] $-topics are not matched by a leading wildcard', async () => {
    const s = await pool.connected('dollar', 4);
    await subscribe(s, '#');
    await subscribe(s, '$SYS/x');
    const p = await pool.connected('dollar-p', 4);
    publish(p, '$SYS/x', 'sys');
    const m = (await s.next('publish')) as Pub;
    assert.equal(m.topic, '$SYS/x');
    assert.equal(await nothingReceived(s, 'publish'), true, 'delivered once (via $SYS/x), not via #');
  });

  test('[MQTT-3.3.1-5] [MQTT-3.3.1-8] retained message stored, delivered on subscribe with RETAIN=1, cleared by empty payload [MQTT-3.3.1-10]', async () => {
    const p = await pool.connected('ret-p', 4);
    publish(p, 'ret/1', 'kept', 1, { retain: true, messageId: 5 });
    await p.next('puback');
    const s = await pool.connected('ret-s', 4);
    await subscribe(s, 'ret/#', 1);
    const m = (await s.next('publish')) as Pub;
    assert.equal(m.payload.toString(), 'kept');
    assert.equal(m.retain, true);
    s.send({ cmd: 'puback', messageId: m.messageId! });
    publish(p, 'ret/1', Buffer.alloc(0), 0, { retain: true });
    const live = (await s.next('publish')) as Pub;
    assert.equal(live.payload.length, 0);
    const s2 = await pool.connected('ret-s2', 4);
    await subscribe(s2, 'ret/#');
    assert.equal(await nothingReceived(s2, 'publish'), true);
  });

  test('[MQTT-3.3.1-12] live messages are forwarded with RETAIN=0 unless Retain As Published [MQTT-3.3.1-13]', async () => {
    const s = await pool.connected('rap', 5);
    await subscribe(s, 'rap/plain', 0, { rap: false });
    await subscribe(s, 'rap/kept', 0, { rap: true });
    const p = await pool.connected('rap-p', 5);
    publish(p, 'rap/plain', 'a', 0, { retain: true });
    publish(p, 'rap/kept', 'b', 0, { retain: true });
    const a = (await s.next('publish')) as Pub;
    const b = (await s.next('publish')) as Pub;
    assert.equal(a.retain, false);
    assert.equal(b.retain, true);
    publish(p, 'rap/plain', '', 0, { retain: true });
    publish(p, 'rap/kept', '', 0, { retain: true });
  });

  test('[MQTT-3.3.1-9] [MQTT-3.3.1-10] [MQTT-3.3.1-11] retain handling 0/1/2', async () => {
    const p = await pool.connected('rh-p', 5);
    publish(p, 'rh/t', 'r', 0, { retain: true });
    await sync(p);
    const s = await pool.connected('rh-s', 5);
    await subscribe(s, 'rh/t', 0, { rh: 2 });
    assert.equal(await nothingReceived(s, 'publish'), true, 'rh=2 never');
    await subscribe(s, 'rh/+', 0, { rh: 1 });
    assert.equal(((await s.next('publish')) as Pub).payload.toString(), 'r', 'rh=1 new subscription');
    await subscribe(s, 'rh/+', 0, { rh: 1 });
    assert.equal(await nothingReceived(s, 'publish'), true, 'rh=1 existing subscription');
    await subscribe(s, 'rh/#', 0, { rh: 0 });
    await s.next('publish');
    await subscribe(s, 'rh/#', 0, { rh: 0 });
    await s.next('publish');
    publish(p, 'rh/t', '', 0, { retain: true });
  });

  test('[MQTT-3.8.3-3] No Local: a client does not receive its own publications', async () => {
    const c = await pool.connected('nl', 5);
    await subscribe(c, 'nl/t', 0, { nl: true });
    await subscribe(c, 'nl/other', 0);
    publish(c, 'nl/t', 'mine');
    publish(c, 'nl/other', 'echo');
    const m = (await c.next('publish')) as Pub;
    assert.equal(m.topic, 'nl/other');
  });

  test('[MQTT-3.3.4-3] overlapping subscriptions: one delivery, max QoS, every subscription identifier', async () => {
    const s = await pool.connected('sid', 5);
    await subscribe(s, 'sid/+', 0, {}, { subscriptionIdentifier: 1 });
    await subscribe(s, 'sid/#', 1, {}, { subscriptionIdentifier: 2 });
    const p = await pool.connected('sid-p', 5);
    publish(p, 'sid/x', 'once', 1, { messageId: 9 });
    const m = (await s.next('publish')) as Pub;
    assert.equal(m.qos, 1);
    assert.deepEqual([m.properties?.subscriptionIdentifier].flat().sort(), [1, 2]);
    assert.equal(await nothingReceived(s, 'publish'), true);
  });

  test('[MQTT-4.8.2-2] shared subscription: each message goes to one member of the group', async () => {
    const a = await pool.connected('sh-a', 5);
    const b = await pool.connected('sh-b', 5);
    await subscribe(a, '$share/g/sh/t');
    await subscribe(b, '$share/g/sh/t');
    const p = await pool.connected('sh-p', 5);
    for (let i = 0; i < 4; i++) publish(p, 'sh/t', String(i));
    const ga = [(await a.next('publish')) as Pub, (await a.next('publish')) as Pub].map((m) =>
      m.payload.toString(),
    );
    const gb = [(await b.next('publish')) as Pub, (await b.next('publish')) as Pub].map((m) =>
      m.payload.toString(),
    );
    assert.deepEqual([...ga, ...gb].sort(), ['0', '1', '2', '3']);
    assert.equal(await nothingReceived(a, 'publish'), true);
  });

  test('[MQTT-3.3.2-2] wildcard in a PUBLISH topic: v5 DISCONNECT 0x90; v3 close; others unaffected', async () => {
    const ok = await pool.connected('bystander', 4);
    await subscribe(ok, 'by/t');
    const c5 = await pool.connected('wild5', 5);
    publish(c5, 'a/+', 'x');
    const d = (await c5.next('disconnect')) as { reasonCode: number };
    assert.equal(d.reasonCode, ReasonCode.TopicNameInvalid);
    await c5.closed();
    const c4 = await pool.connected('wild4', 4);
    publish(c4, 'a/#', 'x');
    await c4.closed();
    const p = await pool.connected('by-p', 4);
    publish(p, 'by/t', 'still');
    assert.equal(((await ok.next('publish')) as Pub).payload.toString(), 'still');
  });

  test('[MQTT-1.5.4-1] ill-formed UTF-8 in a topic is a malformed packet (0x81)', async () => {
    const c = await pool.connected('utf', 5);
    // PUBLISH QoS 0, topic length 2 = 0xC3 0x28 (invalid), property length 0, payload "x".
    c.send(Buffer.from([0x30, 0x06, 0x00, 0x02, 0xc3, 0x28, 0x00, 0x78]));
    const d = (await c.next('disconnect')) as { reasonCode: number };
    assert.equal(d.reasonCode, ReasonCode.MalformedPacket);
    await c.closed();
  });

  test('unknown/reserved packet type closes the connection with 0x81', async () => {
    const c = await pool.connected('reserved', 5);
    c.send(Buffer.from([0x00, 0x00]));
    const d = (await c.next('disconnect')) as { reasonCode: number };
    assert.equal(d.reasonCode, ReasonCode.MalformedPacket);
    await c.closed();
  });

  test('[MQTT-3.3.2-8] topic alias: set, reuse, invalid alias → 0x94', async () => {
    const s = await pool.connected('al-s', 5);
    await subscribe(s, 'al/#');
    const p = await pool.connected('al-p', 5);
    publish(p, 'al/long/topic', 'one', 0, { properties: { topicAlias: 3 } });
    publish(p, '', 'two', 0, { properties: { topicAlias: 3 } });
    const m1 = (await s.next('publish')) as Pub;
    const m2 = (await s.next('publish')) as Pub;
    assert.equal(m1.topic, 'al/long/topic');
    assert.equal(m2.topic, 'al/long/topic');
    assert.equal(m2.payload.toString(), 'two');
    publish(p, 'al/x', 'bad', 0, { properties: { topicAlias: 6 } });
    const d = (await p.next('disconnect')) as { reasonCode: number };
    assert.equal(d.reasonCode, ReasonCode.TopicAliasInvalid);
  });

  test('[MQTT-3.3.2-?] payload format indicator 1 with invalid UTF-8 → PUBACK 0x99', async () => {
    const p = await pool.connected('pfi', 5);
    publish(p, 'pfi/t', Buffer.from([0xff, 0xfe]), 1, {
      messageId: 4,
      properties: { payloadFormatIndicator: true },
    });
    const ack = (await p.next('puback')) as { reasonCode: number };
    assert.equal(ack.reasonCode, ReasonCode.PayloadFormatInvalid);
  });

  test('response topic, correlation data, user properties, content type are passed through', async () => {
    const s = await pool.connected('pt-s', 5);
    await subscribe(s, 'pt/t');
    const p = await pool.connected('pt-p', 5);
    const properties = {
      responseTopic: 'pt/reply',
      correlationData: Buffer.from('corr'),
      userProperties: { k: 'v' },
      contentType: 'text/plain',
      payloadFormatIndicator: true,
    };
    publish(p, 'pt/t', 'body', 0, { properties });
    const m = (await s.next('publish')) as Pub;
    assert.equal(m.properties?.responseTopic, 'pt/reply');
    assert.equal(String(m.properties?.correlationData), 'corr');
    assert.deepEqual(Object.assign({}, m.properties?.userProperties), { k: 'v' });
    assert.equal(m.properties?.contentType, 'text/plain');
    assert.equal(m.properties?.payloadFormatIndicator, true);
  });

  test('[MQTT-3.10.4-5] UNSUBACK 0x00 for a removed subscription, 0x11 when none existed', async () => {
    const c = await pool.connected('unsub', 5);
    await subscribe(c, 'u/t');
    c.send({ cmd: 'unsubscribe', messageId: 2, unsubscriptions: ['u/t', 'u/none'] });
    const ack = (await c.next('unsuback')) as { granted: number[] };
    assert.deepEqual(ack.granted, [0, ReasonCode.NoSubscriptionExisted]);
    const p = await pool.connected('unsub-p', 5);
    publish(p, 'u/t', 'x');
    assert.equal(await nothingReceived(c, 'publish'), true);
  });

  test('authorizePublish false → v5 PUBACK 0x87 and not routed; authorizeSubscribe false → SUBACK 0x87 / v3 0x80', async () => {
    const s = await pool.connected('az-s', 5);
    await subscribe(s, '#');
    const g = await subscribe(s, 'forbidden/x');
    assert.deepEqual(g, [ReasonCode.NotAuthorized]);
    const s4 = await pool.connected('az-s4', 4);
    assert.deepEqual(await subscribe(s4, 'forbidden/x'), [0x80]);
    const p = await pool.connected('az-p', 5);
    publish(p, 'forbidden/t', 'x', 1, { messageId: 3 });
    const ack = (await p.next('puback')) as { reasonCode: number };
    assert.equal(ack.reasonCode, ReasonCode.NotAuthorized);
    assert.equal(await nothingReceived(s, 'publish'), true);
  });

  test('[MQTT-4.7.1-2] invalid topic filter → v5 SUBACK 0x8F; v3.1.1 close', async () => {
    const c = await pool.connected('badf', 5);
    assert.deepEqual(await subscribe(c, 'a/#/b'), [ReasonCode.TopicFilterInvalid]);
    const c4 = await pool.connected('badf4', 4);
    c4.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'a/#/b', qos: 0 }] });
    await c4.closed();
  });

  test('[MQTT-3.8.3-4] No Local on a shared subscription is a protocol error', async () => {
    const c = await pool.connected('nlshare', 5);
    c.send({
      cmd: 'subscribe',
      messageId: 1,
      subscriptions: [{ topic: '$share/g/t', qos: 0, nl: true, rap: false, rh: 0 }],
    });
    const d = (await c.next('disconnect')) as { reasonCode: number };
    assert.equal(d.reasonCode, ReasonCode.ProtocolError);
  });

  test('[MQTT-3.3.4-9] more inbound QoS 2 in flight than Receive Maximum → 0x93', async () => {
    const small = await startBroker({ limits: { receiveMaximum: 2 } });
    const local = new ClientPool(() => small);
    try {
      const c = await local.connected('rm', 5);
      for (let id = 1; id <= 2; id++) {
        publish(c, 'rm/t', 'x', 2, { messageId: id });
        await c.next('pubrec');
      }
      publish(c, 'rm/t', 'x', 2, { messageId: 3 });
      const d = (await c.next('disconnect')) as { reasonCode: number };
      assert.equal(d.reasonCode, ReasonCode.ReceiveMaximumExceeded);
    } finally {
      await local.closeAll();
      await small.close();
    }
  });

  test('[MQTT-3.2.2-?] maximum packet size: inbound over the limit → 0x95; outbound over the client limit dropped and counted', async () => {
    const small = await startBroker({ limits: { maxPacketSize: 64 } });
    const local = new ClientPool(() => small);
    try {
      const s = await local.connected('mps-s', 5, { properties: { maximumPacketSize: 30 } });
      await subscribe(s, 'm/t');
      const p = await local.connected('mps-p', 5);
      publish(p, 'm/t', 'x'.repeat(40));
      publish(p, 'm/t', 'small');
      const m = (await s.next('publish')) as Pub;
      assert.equal(m.payload.toString(), 'small');
      assert.equal(
        await metricValue(small, 'breakwater_messages_dropped_total', { reason: 'packet_too_large' }),
        1,
      );
      publish(p, 'm/t', 'y'.repeat(100));
      const d = (await p.next('disconnect')) as { reasonCode: number };
      assert.equal(d.reasonCode, ReasonCode.PacketTooLarge);
    } finally {
      await local.closeAll();
      await small.close();
    }
  });

  test('[MQTT-3.3.2-5] message expiry: remaining interval sent [MQTT-3.3.2-6], expired messages not delivered', async () => {
    const clock = new FakeClock();
    const eb = await startBroker({ clock });
    const local = new ClientPool(() => eb);
    try {
      const p = await local.connected('exp-p', 5);
      publish(p, 'exp/t', 'r', 0, { retain: true, properties: { messageExpiryInterval: 10 } });
      publish(p, 'exp/u', 'r2', 0, { retain: true, properties: { messageExpiryInterval: 2 } });
      p.send({ cmd: 'pingreq' });
      await p.next('pingresp'); // round trip: the publishes above were processed
      const s = await local.connected('exp-s', 5);
      clock.advance(4000);
      await subscribe(s, 'exp/#');
      const m = (await s.next('publish')) as Pub;
      assert.equal(m.topic, 'exp/t');
      assert.equal(m.properties?.messageExpiryInterval, 6);
      const extra = await s.next('publish', 150).catch(() => null);
      assert.equal(extra, null, `exp/u expired, got ${JSON.stringify(extra)}`);
    } finally {
      await local.closeAll();
      await eb.close();
    }
  });
});
