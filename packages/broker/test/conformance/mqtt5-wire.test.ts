// Black-box conformance over raw packets: the MQTT 5 features of issue 13 part 2 — outbound Topic
// Aliases, Receive Maximum, Maximum Packet Size both ways, request/response, Server Keep Alive,
// Subscription Identifiers on every delivery path, property pass-through and Request Problem
// Information. Tests that need a broker limit other than the default start their own in-process
// Breakwater and skip against an external target (BW_TEST_TARGET).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, type TestContext, test } from 'node:test';
import { ReasonCode, SqliteStorage } from '@breakwater/broker';
import { type RawClient, startBroker } from '@breakwater/testkit';
import mqtt from 'mqtt-packet';
import {
  ack,
  closedByBroker,
  endAllRaw,
  nextPublish,
  publish,
  rawConnected,
  subscribe,
  sync,
} from '../support/raw.js';
import { type Target, type TargetOptions, target, uniqueId } from '../support/target.js';

let broker: Target;
let prefix: string;
const extra: Target[] = [];
before(async () => {
  broker = await target();
  prefix = `bw-conf/${uniqueId('wire')}`;
});
after(async () => {
  await endAllRaw();
  await broker.close();
  await Promise.all(extra.map((t) => t.close()));
});

/** An in-process broker with non-default limits; skips the test against an external target. */
async function tuned(t: TestContext, options: TargetOptions): Promise<Target | null> {
  if (broker.kind === 'external') {
    t.skip('needs an in-process Breakwater with specific limits');
    return null;
  }
  const b = await target(undefined, options);
  extra.push(b);
  return b;
}

const publishes = (c: RawClient) => c.received.filter((p) => p.cmd === 'publish') as mqtt.IPublishPacket[];

/** The next PUBLISH whatever its topic (an aliased one has an empty Topic Name). */
async function nextAnyPublish(c: RawClient): Promise<mqtt.IPublishPacket> {
  return (await c.next('publish')) as mqtt.IPublishPacket;
}

/**
 * The client side of Topic Aliases (MQTT 5.0 §3.3.2.3.4): checks each PUBLISH against the
 * client's Topic Alias Maximum and resolves its topic; throws on anything a client must reject.
 */
class AliasTable {
  readonly #byAlias = new Map<number, string>();
  constructor(readonly maximum: number) {}
  resolve(p: mqtt.IPublishPacket): string {
    const alias = p.properties?.topicAlias;
    if (alias === undefined) {
      assert.notEqual(p.topic, '', 'an empty Topic Name needs a Topic Alias');
      return p.topic;
    }
    assert.ok(alias >= 1 && alias <= this.maximum, `alias ${alias} outside 1..${this.maximum}`);
    if (p.topic !== '') {
      this.#byAlias.set(alias, p.topic);
      return p.topic;
    }
    const known = this.#byAlias.get(alias);
    assert.ok(known !== undefined, `alias ${alias} used before it was set`);
    return known;
  }
}

function sub5(filter: string, qos: 0 | 1 | 2, id: number): mqtt.ISubscribePacket {
  return {
    cmd: 'subscribe',
    messageId: id,
    subscriptions: [{ topic: filter, qos }],
    properties: { subscriptionIdentifier: id },
  } as mqtt.ISubscribePacket;
}

describe('topic aliases (server → client)', () => {
  test('[MQTT-3.1.2-27] a client that announces no Topic Alias Maximum never gets a Topic Alias', async () => {
    const topic = `${prefix}/no-alias/a-rather-long-topic-name`;
    const { client: sub } = await rawConnected(broker, 5);
    await subscribe(sub, topic, { qos: 1 });
    const { client: pub } = await rawConnected(broker, 5);
    for (let i = 0; i < 3; i++)
      await publish(pub, topic, `m${i}`, { qos: i % 2 === 0 ? 0 : 1, messageId: i + 1 });
    for (let i = 0; i < 3; i++) {
      const p = await nextPublish(sub, topic);
      assert.equal(p.properties?.topicAlias, undefined);
      if (p.qos > 0) await ack(sub, p);
    }
  });

  test('[MQTT-3.3.2-11] [MQTT-3.1.2-26] the topic goes with its alias once, then an empty topic and the alias; no alias above the client’s maximum', async () => {
    const max = 2;
    const topics = [0, 1, 2].map((i) => `${prefix}/alias-out/${i}/a-rather-long-topic-name`);
    const { client: sub } = await rawConnected(broker, 5, { properties: { topicAliasMaximum: max } });
    await subscribe(sub, `${prefix}/alias-out/#`, { qos: 1 });
    const { client: pub } = await rawConnected(broker, 5);
    // QoS 0 (shared encoding), QoS 1 (own encoding), and with a property (the generic encoder).
    const sent: string[] = [];
    const order = [0, 0, 1, 0, 1, 2, 2, 0, 1, 2, 0];
    for (let i = 0; i < order.length; i++) {
      const topic = topics[order[i]!]!;
      const props = i % 3 === 2 ? { userProperties: { n: String(i) } } : undefined;
      await publish(pub, topic, `m${i}`, {
        qos: i % 2 === 0 ? 0 : 1,
        messageId: i + 1,
        ...(props ? { properties: props } : {}),
      });
      sent.push(`${topic} m${i}`);
    }
    const table = new AliasTable(max);
    const got: string[] = [];
    let emptyTopics = 0;
    for (let i = 0; i < order.length; i++) {
      const p = await nextAnyPublish(sub);
      if (p.topic === '') emptyTopics++;
      got.push(`${table.resolve(p)} ${p.payload.toString()}`);
      if (i % 3 === 2) assert.deepEqual({ ...p.properties?.userProperties }, { n: String(i) });
      if (p.qos > 0) await ack(sub, p);
    }
    assert.deepEqual(got, sent, 'every message resolves to the topic it was published on');
    assert.ok(emptyTopics >= 3, `aliases were used (${emptyTopics} PUBLISHes without a topic)`);
  });

  test('[MQTT-3.3.2-7] aliases do not outlive the connection: a redelivery after reconnecting carries the topic', async () => {
    const topic = `${prefix}/alias-reconnect/a-rather-long-topic-name`;
    const clientId = uniqueId('alias-re');
    const connect = {
      clientId,
      clean: false,
      properties: { sessionExpiryInterval: 60, topicAliasMaximum: 4 },
    };
    const { client: first } = await rawConnected(broker, 5, { ...connect, clean: true });
    await subscribe(first, topic, { qos: 1 });
    const { client: pub } = await rawConnected(broker, 5);
    await publish(pub, topic, 'one', { qos: 1, messageId: 1 });
    await publish(pub, topic, 'two', { qos: 1, messageId: 2 });
    const a = await nextAnyPublish(first);
    const b = await nextAnyPublish(first);
    assert.equal(a.topic, topic);
    assert.equal(b.topic, '', 'the second delivery on this connection uses the alias');
    await first.end(); // neither acknowledged
    const { client: again } = await rawConnected(broker, 5, connect);
    const table = new AliasTable(4);
    const r1 = await nextAnyPublish(again);
    const r2 = await nextAnyPublish(again);
    assert.equal(r1.dup, true);
    assert.equal(r1.topic, topic, 'the first PUBLISH on the new connection names its topic');
    assert.deepEqual(
      [table.resolve(r1), table.resolve(r2)].map((t, i) => `${t} ${[r1, r2][i]!.payload}`),
      [`${topic} one`, `${topic} two`],
    );
    await ack(again, r1);
    await ack(again, r2);
    again.send({ cmd: 'disconnect', reasonCode: 0, properties: { sessionExpiryInterval: 0 } });
  });

  test('subscribers whose aliases for one topic differ each get their own mapping (QoS 0 fan-out)', async () => {
    const hot = `${prefix}/alias-fan/hot/a-rather-long-topic-name`;
    const warm = `${prefix}/alias-fan/warm/a-rather-long-topic-name`;
    const { client: s1 } = await rawConnected(broker, 5, { properties: { topicAliasMaximum: 8 } });
    const { client: s2 } = await rawConnected(broker, 5, { properties: { topicAliasMaximum: 8 } });
    const { client: s3 } = await rawConnected(broker, 5); // no aliases
    await subscribe(s1, `${prefix}/alias-fan/#`, { qos: 0 });
    const { client: pub } = await rawConnected(broker, 5);
    await publish(pub, warm, 'warm-up', { qos: 1 }); // s1 maps warm → 1, so hot becomes 2 for it
    await subscribe(s2, `${prefix}/alias-fan/#`, { qos: 0 });
    await subscribe(s3, `${prefix}/alias-fan/#`, { qos: 0 });
    for (let i = 0; i < 3; i++) await publish(pub, hot, `h${i}`, { qos: 1, messageId: i + 2 });
    const t1 = new AliasTable(8);
    const t2 = new AliasTable(8);
    const seen1 = [];
    for (let i = 0; i < 4; i++) {
      const p = await nextAnyPublish(s1);
      seen1.push(`${t1.resolve(p)} ${p.payload}`);
    }
    const seen2 = [];
    const aliases2 = new Set<number | undefined>();
    for (let i = 0; i < 3; i++) {
      const p = await nextAnyPublish(s2);
      aliases2.add(p.properties?.topicAlias);
      seen2.push(`${t2.resolve(p)} ${p.payload}`);
    }
    assert.deepEqual(seen1, [`${warm} warm-up`, `${hot} h0`, `${hot} h1`, `${hot} h2`]);
    assert.deepEqual(seen2, [`${hot} h0`, `${hot} h1`, `${hot} h2`]);
    assert.deepEqual([...aliases2], [1], 'the second subscriber maps hot to its own alias 1');
    for (let i = 0; i < 3; i++) {
      const p = await nextPublish(s3, hot);
      assert.equal(p.properties?.topicAlias, undefined);
    }
  });

  test('policy: topics shorter than outboundTopicAliasMinLength and a broker with outboundTopicAliasMaximum 0 send no alias', async (t) => {
    const off = await tuned(t, { limits: { outboundTopicAliasMaximum: 0 } });
    if (off === null) return;
    const long = `${prefix}/policy/a-rather-long-topic-name`;
    const short = 'p/s';
    for (const [b, topic, what] of [
      [broker, short, 'short topic'],
      [off, long, 'aliases off'],
    ] as const) {
      const { client: sub } = await rawConnected(b, 5, { properties: { topicAliasMaximum: 10 } });
      await subscribe(sub, topic, { qos: 0 });
      const { client: pub } = await rawConnected(b, 5);
      await publish(pub, topic, 'a', { qos: 1 });
      await publish(pub, topic, 'b', { qos: 1, messageId: 2 });
      for (const payload of ['a', 'b']) {
        const p = await nextPublish(sub, topic);
        assert.equal(p.payload.toString(), payload);
        assert.equal(p.properties?.topicAlias, undefined, what);
      }
    }
  });
});

describe('Receive Maximum', () => {
  test('[MQTT-3.3.4-7] more unacknowledged QoS 1 PUBLISHes than the broker’s Receive Maximum → DISCONNECT 0x93', async (t) => {
    const b = await tuned(t, { limits: { receiveMaximum: 4 } });
    if (b === null) return;
    const topic = `${prefix}/recvmax-q1`;
    // A persistent subscriber: routing writes its outbox, so each PUBACK waits for the storage
    // flush and the five PUBLISHes below are all unacknowledged when the fifth is read.
    const { client: keeper } = await rawConnected(b, 5, {
      clientId: uniqueId('keeper'),
      properties: { sessionExpiryInterval: 60 },
    });
    await subscribe(keeper, topic, { qos: 1 });
    const { client, connack } = await rawConnected(b, 5);
    assert.equal(connack.properties?.receiveMaximum, 4);
    const burst = [1, 2, 3, 4, 5].map((i) =>
      mqtt.generate(
        { cmd: 'publish', topic, payload: Buffer.from('x'), qos: 1, messageId: i, retain: false, dup: false },
        { protocolVersion: 5 },
      ),
    );
    client.send(Buffer.concat(burst)); // one write: read in one chunk
    const d = await closedByBroker(client);
    assert.equal(d?.reasonCode, ReasonCode.ReceiveMaximumExceeded);
  });

  test('§4.9 the quota is per connection: QoS 2 flows left unreleased by an earlier connection do not count', async (t) => {
    const b = await tuned(t, { limits: { receiveMaximum: 3 } });
    if (b === null) return;
    const topic = `${prefix}/recvmax-carried`;
    const connect = {
      clientId: uniqueId('carried'),
      clean: false,
      properties: { sessionExpiryInterval: 60 },
    };
    const { client: first } = await rawConnected(b, 5, connect);
    for (let id = 1; id <= 3; id++) {
      first.send({
        cmd: 'publish',
        topic,
        payload: Buffer.from('x'),
        qos: 2,
        messageId: id,
        retain: false,
        dup: false,
      });
      await first.next('pubrec');
    }
    await first.end(); // three flows PUBREC'd, never released
    const { client } = await rawConnected(b, 5, connect);
    for (let id = 11; id <= 13; id++) {
      client.send({
        cmd: 'publish',
        topic,
        payload: Buffer.from('y'),
        qos: 2,
        messageId: id,
        retain: false,
        dup: false,
      });
      const rec = (await client.next('pubrec')) as mqtt.IPubrecPacket;
      assert.equal(rec.messageId, id);
    }
    for (const id of [1, 2, 3, 11, 12, 13]) {
      client.send({ cmd: 'pubrel', messageId: id });
      const comp = (await client.next('pubcomp')) as mqtt.IPubcompPacket;
      assert.equal(comp.reasonCode ?? 0, 0, `PUBCOMP ${id}`);
    }
    assert.equal(client.isClosed, false);
  });
});

describe('Maximum Packet Size', () => {
  test('v3.1.1: a packet above the broker’s maximum closes the connection', async (t) => {
    const b = await tuned(t, { limits: { maxPacketSize: 512 } });
    if (b === null) return;
    const { client } = await rawConnected(b, 4);
    client.send({
      cmd: 'publish',
      topic: `${prefix}/big-v3`,
      payload: Buffer.alloc(600),
      qos: 0,
      retain: false,
      dup: false,
    });
    const d = await closedByBroker(client);
    assert.equal(d, undefined, 'no DISCONNECT in MQTT 3.1.1');
  });

  test('[MQTT-3.1.2-25] a QoS 1 message too large for the client is discarded as if delivered: it does not hold the window', async (t) => {
    const b = await tuned(t, { fakeClock: true });
    if (b === null) return;
    const topic = `${prefix}/maxsize-window`;
    const { client: small } = await rawConnected(b, 5, {
      properties: { maximumPacketSize: 128, receiveMaximum: 1 },
    });
    await subscribe(small, topic, { qos: 1 });
    const { client: pub } = await rawConnected(b, 5);
    await publish(pub, topic, Buffer.alloc(500, 0x61), { qos: 1, messageId: 1 });
    await publish(pub, topic, 'fits', { qos: 1, messageId: 2 });
    const p = await nextPublish(small, topic);
    assert.equal(p.payload.toString(), 'fits', 'the window of 1 was free again');
    await ack(small, p);
    await b.elapse(1000); // the sweep publishes the counters
    const dropped = await b.metrics!.messagesDropped.get();
    const tooLarge = dropped.values.find((v) => v.labels.reason === 'packet_too_large');
    assert.equal(tooLarge?.value, 1, 'counted by reason');
  });

  test('[MQTT-3.4.2-2] a PUBACK leaves out its Reason String when that would exceed the client’s Maximum Packet Size', async () => {
    const bad = Buffer.from([0xff, 0xfe]);
    const send = (c: RawClient) =>
      c.send({
        cmd: 'publish',
        topic: `${prefix}/pfi-bad`,
        payload: bad,
        qos: 1,
        messageId: 7,
        retain: false,
        dup: false,
        properties: { payloadFormatIndicator: true },
      });
    const { client: roomy } = await rawConnected(broker, 5);
    send(roomy);
    const withReason = (await roomy.next('puback')) as mqtt.IPubackPacket;
    assert.equal(withReason.reasonCode, ReasonCode.PayloadFormatInvalid);
    assert.equal(typeof withReason.properties?.reasonString, 'string', 'a Reason String when it fits');
    // Room for the CONNACK (24 bytes) and a bare PUBACK, not for one with the Reason String.
    const { client: tight } = await rawConnected(broker, 5, { properties: { maximumPacketSize: 30 } });
    send(tight);
    const bare = (await tight.next('puback')) as mqtt.IPubackPacket;
    assert.equal(bare.reasonCode, ReasonCode.PayloadFormatInvalid);
    assert.equal(bare.properties?.reasonString, undefined);
  });
});

describe('Request Problem Information', () => {
  test('[MQTT-3.1.2-29] Request Problem Information 0: no Reason String on a PUBACK', async () => {
    const { client } = await rawConnected(broker, 5, { properties: { requestProblemInformation: false } });
    client.send({
      cmd: 'publish',
      topic: `${prefix}/rpi`,
      payload: Buffer.from([0xff]),
      qos: 1,
      messageId: 3,
      retain: false,
      dup: false,
      properties: { payloadFormatIndicator: true },
    });
    const p = (await client.next('puback')) as mqtt.IPubackPacket;
    assert.equal(p.reasonCode, ReasonCode.PayloadFormatInvalid);
    assert.equal(p.properties?.reasonString, undefined);
  });
});

describe('request / response', () => {
  test('[MQTT-3.1.2-28] Response Information only when requested; then the configured prefix with the client id', async (t) => {
    const { connack: plain } = await rawConnected(broker, 5);
    assert.equal(plain.properties?.responseInformation, undefined);
    if (broker.kind === 'external') {
      t.diagnostic('external broker: the Response Information value is not checked');
      return;
    }
    const clientId = uniqueId('rr');
    const { connack } = await rawConnected(broker, 5, {
      clientId,
      properties: { requestResponseInformation: true },
    });
    assert.equal(connack.properties?.responseInformation, `$response/${clientId}/`);
  });

  test('[MQTT-3.3.2-15] [MQTT-3.3.2-16] [MQTT-3.3.2-4] [MQTT-3.3.2-20] [MQTT-3.3.2-17] [MQTT-3.3.2-18] Response Topic, Correlation Data, Payload Format Indicator, Content Type and User Properties reach subscribers unaltered, live and retained', async () => {
    const topic = `${prefix}/props`;
    const properties = {
      responseTopic: `${prefix}/reply/here`,
      correlationData: Buffer.from([0, 1, 2, 250]),
      payloadFormatIndicator: true,
      contentType: 'application/json; charset=utf-8',
      userProperties: { z: 'last?', a: ['1', '2'], m: 'middle' },
    };
    const { client: sub } = await rawConnected(broker, 5);
    await subscribe(sub, topic, { qos: 1 });
    const { client: pub } = await rawConnected(broker, 5);
    await publish(pub, topic, '{"ok":true}', { qos: 1, retain: true, properties });
    const check = (p: mqtt.IPublishPacket) => {
      const got = p.properties!;
      assert.equal(got.responseTopic, properties.responseTopic);
      assert.deepEqual(Buffer.from(got.correlationData!), properties.correlationData);
      assert.equal(got.payloadFormatIndicator, true);
      assert.equal(got.contentType, properties.contentType);
      assert.deepEqual({ ...got.userProperties }, properties.userProperties);
      assert.deepEqual(Object.keys(got.userProperties!), ['z', 'a', 'm'], 'order kept');
    };
    const live = await nextPublish(sub, topic);
    check(live);
    await ack(sub, live);
    const { client: late } = await rawConnected(broker, 5);
    await subscribe(late, topic, { qos: 1 });
    const retained = await nextPublish(late, topic);
    assert.equal(retained.retain, true);
    check(retained);
    await ack(late, retained);
    await publish(pub, topic, '', { qos: 1, retain: true, messageId: 2 });
  });

  test('default ACL: a device may subscribe to its own response topic only', async () => {
    const { TopicAuthorizer, resolveGuardConfig } = await import('@breakwater/broker');
    const authz = new TopicAuthorizer(resolveGuardConfig({ listeners: { mqtt: {} } }).listeners.mqtt!.authz);
    const me = { clientId: 'dev-1', username: undefined, superuser: false };
    assert.equal(authz.allowsSubscribe(me, '$response/dev-1/#'), true);
    assert.equal(authz.allowsSubscribe(me, '$response/dev-1/req-42'), true);
    assert.equal(authz.allowsSubscribe(me, '$response/dev-2/#'), false);
    assert.equal(authz.allowsSubscribe(me, '$response/+/x'), false);
    assert.equal(authz.allowsPublish(me, '$response/dev-2/req-1'), false, 'answering is for services');
  });
});

describe('Server Keep Alive', () => {
  test('[MQTT-3.2.2-21] [MQTT-3.2.2-22] [MQTT-3.1.2-22] a keepalive above the maximum, or 0, gets Server Keep Alive, which the broker enforces', async (t) => {
    const b = await tuned(t, { fakeClock: true, limits: { maxKeepaliveSec: 10 } });
    if (b === null) return;
    const { connack: within } = await rawConnected(b, 5, { keepalive: 5 });
    assert.equal(within.properties?.serverKeepAlive, undefined, 'the client’s value is used as sent');
    const { connack: none, client: idle } = await rawConnected(b, 5, { keepalive: 0 });
    assert.equal(none.properties?.serverKeepAlive, 10);
    const { connack: long, client: pinger } = await rawConnected(b, 5, { keepalive: 600 });
    assert.equal(long.properties?.serverKeepAlive, 10);
    // 1.5 × 10 s: a client that keeps talking stays, a silent one is closed with 0x8D.
    for (let i = 0; i < 4; i++) {
      await b.elapse(5000);
      await sync(pinger);
    }
    const d = await closedByBroker(idle);
    assert.equal(d?.reasonCode, ReasonCode.KeepAliveTimeout);
    assert.equal(pinger.isClosed, false);
  });
});

describe('subscription identifiers on every delivery path', () => {
  test('[MQTT-3.3.4-3] retained messages sent on SUBSCRIBE carry the Subscription Identifier', async () => {
    const topic = `${prefix}/subid-retained`;
    const { client: pub } = await rawConnected(broker, 5);
    await publish(pub, topic, 'kept', { qos: 1, retain: true });
    const { client: sub } = await rawConnected(broker, 5);
    for (const qos of [0, 1] as const) {
      sub.send(sub5(topic, qos, 30 + qos));
      await sub.next('suback');
      const p = await nextPublish(sub, topic);
      assert.equal(p.retain, true);
      assert.deepEqual(p.properties?.subscriptionIdentifier, 30 + qos, `QoS ${qos}`);
      if (p.qos > 0) await ack(sub, p);
    }
    await publish(pub, topic, '', { qos: 1, retain: true, messageId: 2 });
  });

  test('[MQTT-3.3.4-4] overlapping subscriptions: one copy with every matching Subscription Identifier', async () => {
    const topic = `${prefix}/subid-overlap/a`;
    const { client: sub } = await rawConnected(broker, 5);
    sub.send(sub5(`${prefix}/subid-overlap/#`, 1, 11));
    await sub.next('suback');
    sub.send(sub5(`${prefix}/subid-overlap/+`, 0, 12));
    await sub.next('suback');
    await subscribe(sub, topic, { qos: 0 }, undefined, 13); // no identifier
    const { client: pub } = await rawConnected(broker, 5);
    await publish(pub, topic, 'x', { qos: 1 });
    const p = await nextPublish(sub, topic);
    assert.equal(p.qos, 1, 'the highest QoS of the matches');
    const ids = p.properties?.subscriptionIdentifier;
    assert.deepEqual([...(Array.isArray(ids) ? ids : [ids])].sort(), [11, 12]);
    await ack(sub, p);
    await sync(sub);
    assert.equal(publishes(sub).length, 0, 'one copy');
  });

  test('[MQTT-3.3.4-5] a shared and a non-shared subscription: two copies, each with its own Subscription Identifier', async () => {
    const topic = `${prefix}/subid-shared`;
    const { client: sub } = await rawConnected(broker, 5);
    sub.send(sub5(`$share/${uniqueId('g')}/${topic}`, 1, 21));
    await sub.next('suback');
    sub.send(sub5(topic, 1, 22));
    await sub.next('suback');
    const { client: pub } = await rawConnected(broker, 5);
    await publish(pub, topic, 'x', { qos: 1 });
    const a = await nextPublish(sub, topic);
    const b = await nextPublish(sub, topic);
    assert.deepEqual(
      [a.properties?.subscriptionIdentifier, b.properties?.subscriptionIdentifier].sort(),
      [21, 22],
    );
    await ack(sub, a);
    await ack(sub, b);
  });

  test('[MQTT-3.3.4-3] messages queued offline keep their Subscription Identifier, across a broker restart (stored with the outbox)', async (t) => {
    if (broker.kind === 'external') {
      t.skip('restarts an in-process broker');
      return;
    }
    const dir = mkdtempSync(join(tmpdir(), 'bw-subid-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, 'db.sqlite');
    const topic = `${prefix}/subid-offline`;
    const connect = { clientId: uniqueId('off'), clean: false, properties: { sessionExpiryInterval: 300 } };
    let b = await startBroker({ storage: new SqliteStorage({ file }) });
    const target1 = { ...b, kind: 'breakwater', host: '127.0.0.1' } as unknown as Target;
    const { client: sub } = await rawConnected(target1, 5, connect);
    sub.send(sub5(topic, 1, 41));
    await sub.next('suback');
    sub.send({ cmd: 'disconnect', reasonCode: 0 });
    await closedByBroker(sub);
    const { client: pub } = await rawConnected(target1, 5);
    await publish(pub, topic, 'while away', { qos: 1 });
    await b.close();
    b = await startBroker({ storage: new SqliteStorage({ file }) });
    t.after(() => b.close());
    const target2 = { ...b, kind: 'breakwater', host: '127.0.0.1' } as unknown as Target;
    const { client: back, connack } = await rawConnected(target2, 5, connect);
    assert.equal(connack.sessionPresent, true);
    const p = await nextPublish(back, topic);
    assert.equal(p.payload.toString(), 'while away');
    assert.equal(p.properties?.subscriptionIdentifier, 41);
    await ack(back, p);
    back.send({ cmd: 'disconnect', reasonCode: 0, properties: { sessionExpiryInterval: 0 } });
  });
});

describe('message expiry and wills', () => {
  test('[MQTT-3.3.2-6] a queued message is forwarded with its Message Expiry Interval minus the time it waited', async (t) => {
    const b = await tuned(t, { fakeClock: true });
    if (b === null) return;
    const topic = `${prefix}/expiry-queued`;
    const connect = { clientId: uniqueId('exp'), clean: false, properties: { sessionExpiryInterval: 60 } };
    const { client: sub } = await rawConnected(b, 5, connect);
    await subscribe(sub, topic, { qos: 1 });
    sub.send({ cmd: 'disconnect', reasonCode: 0 });
    await closedByBroker(sub);
    const { client: pub } = await rawConnected(b, 5);
    await publish(pub, topic, 'ages', { qos: 1, properties: { messageExpiryInterval: 30 } });
    await b.elapse(10_000);
    const { client: back } = await rawConnected(b, 5, connect);
    const p = await nextPublish(back, topic);
    assert.equal(p.properties?.messageExpiryInterval, 20);
    await ack(back, p);
  });

  test('[MQTT-3.1.3-10] will properties reach subscribers (user properties in order, content type, correlation data)', async () => {
    const willTopic = `${prefix}/will-props/${uniqueId('w')}`;
    const { client: watcher } = await rawConnected(broker, 5);
    await subscribe(watcher, willTopic, { qos: 1 });
    const { client } = await rawConnected(broker, 5, {
      will: {
        topic: willTopic,
        payload: Buffer.from('gone'),
        qos: 1,
        retain: false,
        properties: {
          contentType: 'text/plain',
          responseTopic: `${prefix}/will-reply`,
          correlationData: Buffer.from('c-1'),
          userProperties: { second: 'b', first: 'a' },
        },
      },
    });
    client.socket.destroy();
    const p = await nextPublish(watcher, willTopic);
    assert.equal(p.properties?.contentType, 'text/plain');
    assert.equal(p.properties?.responseTopic, `${prefix}/will-reply`);
    assert.equal(Buffer.from(p.properties!.correlationData!).toString(), 'c-1');
    assert.deepEqual(Object.keys(p.properties!.userProperties!), ['second', 'first']);
    await ack(watcher, p);
  });

  test('[MQTT-3.3.2-14] a will whose Response Topic has a wildcard is refused (CONNACK 0x82)', async (t) => {
    if (broker.kind === 'external') {
      t.skip('the refusal code is Breakwater’s choice');
      return;
    }
    const { rawSocket } = await import('../support/raw.js');
    const client = await rawSocket(broker, 5);
    const connack = await client.connect({
      protocolVersion: 5,
      will: {
        topic: `${prefix}/will-bad`,
        payload: Buffer.from('x'),
        qos: 0,
        retain: false,
        properties: { responseTopic: `${prefix}/+/reply` },
      },
    });
    assert.equal(connack.reasonCode, ReasonCode.ProtocolError);
  });
});
