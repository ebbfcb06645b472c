// Black-box conformance over raw packets: MQTT 5 features — subscription options (no-local,
// retain handling, retain-as-published), shared subscriptions, subscription identifiers, topic
// aliases, message expiry, maximum packet size, receive maximum, reason codes, wills.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ReasonCode } from '@breakwater/broker';
import type mqtt from 'mqtt-packet';
import {
  ack,
  closedByBroker,
  endAllRaw,
  nextPublish,
  pending,
  publish,
  rawConnected,
  subscribe,
  sync,
} from '../support/raw.js';
import { knownExternalDeviation, type Target, target, uniqueId } from '../support/target.js';

let broker: Target;
/** Second broker whose clock the test drives (Breakwater); the same shared broker when external. */
let timed: Target;
let prefix: string;
before(async () => {
  broker = await target();
  timed = await target(undefined, { fakeClock: true });
  prefix = `bw-conf/${uniqueId('v5')}`;
});
after(async () => {
  await endAllRaw();
  await broker.close();
  await timed.close();
});

const published = (c: { received: mqtt.Packet[] }, topic: string) =>
  c.received.filter((p) => p.cmd === 'publish' && p.topic === topic) as mqtt.IPublishPacket[];

describe('subscription options', () => {
  test('[MQTT-3.8.3-3] No Local: own publications are not delivered back; others are', async () => {
    const topic = `${prefix}/nolocal`;
    const { client: me } = await rawConnected(broker, 5);
    await subscribe(me, topic, { qos: 1, nl: true });
    await publish(me, topic, 'mine', { qos: 1, messageId: 5 });
    const { client: other } = await rawConnected(broker, 5);
    await publish(other, topic, 'theirs', { qos: 1 });
    const p = await nextPublish(me, topic);
    assert.equal(p.payload.toString(), 'theirs', 'the first delivery is the other client’s message');
    await ack(me, p);
    await sync(me);
    assert.deepEqual(published(me, topic), []);
  });

  for (const [rh, id, expectFirst, expectAgain] of [
    [0, 'MQTT-3.3.1-9', true, true],
    [1, 'MQTT-3.3.1-10', true, false],
    [2, 'MQTT-3.3.1-11', false, false],
  ] as const) {
    test(`[${id}] Retain Handling ${rh}: retained sent on subscribe ${expectFirst}, on re-subscribe ${expectAgain}`, async () => {
      const topic = `${prefix}/rh${rh}`;
      const { client: pub } = await rawConnected(broker, 5);
      await publish(pub, topic, `kept-${rh}`, { qos: 1, retain: true });
      const { client: sub } = await rawConnected(broker, 5);
      await subscribe(sub, topic, { qos: 1, rh }, undefined, 1);
      await sync(sub);
      const first = published(sub, topic);
      assert.equal(first.length, expectFirst ? 1 : 0, 'on first subscribe');
      if (first[0]) {
        assert.equal(first[0].retain, true);
        await ack(sub, first[0]);
        sub.received.splice(sub.received.indexOf(first[0]), 1);
      }
      await subscribe(sub, topic, { qos: 1, rh }, undefined, 2); // the subscription exists now
      await sync(sub);
      assert.equal(published(sub, topic).length, expectAgain ? 1 : 0, 'on re-subscribe');
      await publish(pub, topic, '', { qos: 1, retain: true, messageId: 2 }); // clear
    });
  }

  test('[MQTT-3.3.1-12] Retain As Published 0: forwarded messages have RETAIN=0', async () => {
    const topic = `${prefix}/rap0`;
    const { client: sub } = await rawConnected(broker, 5);
    await subscribe(sub, topic, { qos: 1, rap: false });
    const { client: pub } = await rawConnected(broker, 5);
    await publish(pub, topic, 'live', { qos: 1, retain: true });
    const p = await nextPublish(sub, topic);
    assert.equal(p.retain, false);
    await publish(pub, topic, '', { qos: 1, retain: true, messageId: 2 });
  });

  test('[MQTT-3.3.1-13] Retain As Published 1: forwarded messages keep RETAIN=1', async () => {
    const topic = `${prefix}/rap1`;
    const { client: sub } = await rawConnected(broker, 5);
    await subscribe(sub, topic, { qos: 1, rap: true });
    const { client: pub } = await rawConnected(broker, 5);
    await publish(pub, topic, 'live', { qos: 1, retain: true });
    const p = await nextPublish(sub, topic);
    assert.equal(p.retain, true);
    await publish(pub, topic, '', { qos: 1, retain: true, messageId: 2 });
  });

  test('[MQTT-3.3.4-3] the Subscription Identifier is returned with matching messages', async () => {
    const topic = `${prefix}/subid`;
    const { client: sub } = await rawConnected(broker, 5);
    await subscribe(sub, topic, { qos: 1 }, { subscriptionIdentifier: 4242 });
    const { client: pub } = await rawConnected(broker, 5);
    await publish(pub, topic, 'x', { qos: 1 });
    const p = await nextPublish(sub, topic);
    const ids = p.properties?.subscriptionIdentifier;
    assert.deepEqual(Array.isArray(ids) ? ids : [ids], [4242]);
  });

  test('[MQTT-3.11.3-1] UNSUBACK reason 0x11 when no subscription existed, 0x00 when one did', async () => {
    const { client } = await rawConnected(broker, 5);
    await subscribe(client, `${prefix}/unsub-a`, { qos: 0 });
    client.send({
      cmd: 'unsubscribe',
      messageId: 3,
      unsubscriptions: [`${prefix}/unsub-a`, `${prefix}/never`],
    });
    const ack = (await client.next('unsuback')) as mqtt.IUnsubackPacket;
    assert.deepEqual(ack.granted, [ReasonCode.Success, ReasonCode.NoSubscriptionExisted]);
  });
});

describe('shared subscriptions', () => {
  test('Shared Subscriptions (4.8.2): $share/{group}/{filter}: each message goes to exactly one member of the group', async () => {
    const group = uniqueId('g');
    const topic = `${prefix}/shared`;
    const members = await Promise.all([
      rawConnected(broker, 5),
      rawConnected(broker, 5),
      rawConnected(broker, 5),
    ]);
    for (const m of members)
      assert.equal(await subscribe(m.client, `$share/${group}/${topic}`, { qos: 1 }), 1);
    const { client: plain } = await rawConnected(broker, 5);
    await subscribe(plain, topic, { qos: 1 });
    const { client: pub } = await rawConnected(broker, 5);
    const n = 30;
    for (let i = 0; i < n; i++) await publish(pub, topic, `m${i}`, { qos: 1, messageId: i + 1 });
    // The plain subscriber sees all n: when its last one arrives, routing of all n is done.
    for (let i = 0; i < n; i++) await ack(plain, await nextPublish(plain, topic));
    const got: string[] = [];
    const deadline = Date.now() + 5000;
    while (got.length < n && Date.now() < deadline) {
      for (const m of members) {
        await sync(m.client);
        for (const p of published(m.client, topic)) {
          got.push(p.payload.toString());
          m.client.received.splice(m.client.received.indexOf(p), 1);
          await ack(m.client, p);
        }
      }
    }
    got.sort((a, b) => Number(a.slice(1)) - Number(b.slice(1)));
    assert.deepEqual(
      got,
      Array.from({ length: n }, (_, i) => `m${i}`),
      'every message exactly once across the group',
    );
  });
});

describe('topic aliases (client → server)', () => {
  test('[MQTT-3.3.2-12] a Topic Alias set with a topic can then be used with an empty topic name', async (t) => {
    const topic = `${prefix}/alias`;
    const { client: pub, connack } = await rawConnected(broker, 5);
    const max = connack.properties?.topicAliasMaximum ?? 0;
    if (max < 1) {
      t.skip('the broker announces Topic Alias Maximum 0');
      return;
    }
    const { client: sub } = await rawConnected(broker, 5);
    await subscribe(sub, topic, { qos: 1 });
    await publish(pub, topic, 'with topic', { qos: 1, messageId: 1, properties: { topicAlias: 1 } });
    await publish(pub, '', 'alias only', { qos: 1, messageId: 2, properties: { topicAlias: 1 } });
    const a = await nextPublish(sub, topic);
    const b = await nextPublish(sub, topic);
    assert.deepEqual([a.payload.toString(), b.payload.toString()], ['with topic', 'alias only']);
    assert.equal(b.properties?.topicAlias, undefined, 'the inbound alias is not forwarded');
  });

  test('[MQTT-3.3.2-8] Topic Alias 0 → DISCONNECT 0x94 (Topic Alias invalid)', async (t) => {
    knownExternalDeviation(t, broker, 'Mosquitto 2.0.11 answers Topic Alias 0 with DISCONNECT 0x81');
    const { client } = await rawConnected(broker, 5);
    client.send({
      cmd: 'publish',
      topic: `${prefix}/alias0`,
      payload: Buffer.from('x'),
      qos: 0,
      retain: false,
      dup: false,
      properties: { topicAlias: 0 },
    });
    const d = await closedByBroker(client);
    assert.equal(d?.reasonCode, ReasonCode.TopicAliasInvalid);
  });

  test('[MQTT-3.3.2-9] Topic Alias above the announced maximum → DISCONNECT 0x94', async () => {
    const { client, connack } = await rawConnected(broker, 5);
    const max = connack.properties?.topicAliasMaximum ?? 0;
    client.send({
      cmd: 'publish',
      topic: `${prefix}/alias-big`,
      payload: Buffer.from('x'),
      qos: 0,
      retain: false,
      dup: false,
      properties: { topicAlias: max + 1 },
    });
    const d = await closedByBroker(client);
    assert.equal(d?.reasonCode, ReasonCode.TopicAliasInvalid);
  });

  test('an empty topic name with an alias that was never set is a protocol error (DISCONNECT ≥ 0x80)', async (t) => {
    const { client, connack } = await rawConnected(broker, 5);
    if ((connack.properties?.topicAliasMaximum ?? 0) < 2) {
      t.skip('the broker announces fewer than 2 topic aliases');
      return;
    }
    client.send({
      cmd: 'publish',
      topic: '',
      payload: Buffer.from('x'),
      qos: 0,
      retain: false,
      dup: false,
      properties: { topicAlias: 2 },
    });
    const d = await closedByBroker(client);
    assert.ok(d && (d.reasonCode ?? 0) >= 0x80, `reason ${d?.reasonCode}`);
  });
});

describe('message expiry', () => {
  test('[MQTT-3.3.2-6] a retained message is forwarded with the remaining Message Expiry Interval', async () => {
    const topic = `${prefix}/expiry-remaining`;
    const { client: pub } = await rawConnected(timed, 5);
    await publish(pub, topic, 'ages', { qos: 1, retain: true, properties: { messageExpiryInterval: 60 } });
    await timed.elapse(2100);
    const { client: sub } = await rawConnected(timed, 5);
    await subscribe(sub, topic, { qos: 1 });
    const p = await nextPublish(sub, topic);
    const left = p.properties?.messageExpiryInterval;
    assert.equal(typeof left, 'number');
    assert.ok(
      (left as number) >= 1 && (left as number) <= 58,
      `remaining interval ${left} should be 60 - ~2`,
    );
    await publish(pub, topic, '', { qos: 1, retain: true, messageId: 2 });
  });

  test('[MQTT-3.3.2-5] an expired message is not delivered (retained and offline-queued)', async () => {
    const retainedTopic = `${prefix}/expiry-retained`;
    const queuedTopic = `${prefix}/expiry-queued`;
    const clientId = uniqueId('expiry');
    const session = { clientId, clean: false, properties: { sessionExpiryInterval: 60 } };
    const { client: offline } = await rawConnected(timed, 5, session);
    await subscribe(offline, queuedTopic, { qos: 1 });
    offline.send({ cmd: 'disconnect', reasonCode: 0 });
    await closedByBroker(offline);

    const { client: pub } = await rawConnected(timed, 5);
    const props = { messageExpiryInterval: 1 };
    await publish(pub, retainedTopic, 'short-lived', { qos: 1, retain: true, properties: props });
    await publish(pub, queuedTopic, 'short-lived', { qos: 1, messageId: 2, properties: props });
    await publish(pub, queuedTopic, 'lasting', { qos: 1, messageId: 3 });
    await timed.elapse(2100);

    const { client: sub } = await rawConnected(timed, 5);
    await subscribe(sub, retainedTopic, { qos: 1 });
    await sync(sub);
    assert.deepEqual(published(sub, retainedTopic), [], 'expired retained message');

    const { client: back } = await rawConnected(timed, 5, session);
    const p = await nextPublish(back, queuedTopic);
    assert.equal(p.payload.toString(), 'lasting', 'the expired queued message was dropped');
    await ack(back, p);
    back.send({ cmd: 'disconnect', reasonCode: 0 });
    await closedByBroker(back);
    const { client: cleanup } = await rawConnected(timed, 5, { clientId, clean: true });
    await cleanup.end();
  });
});

describe('flow control and size limits', () => {
  test('[MQTT-3.1.2-24] [MQTT-3.1.2-25] a message larger than the client’s Maximum Packet Size is not sent to it', async () => {
    const topic = `${prefix}/maxsize-out`;
    const { client: small } = await rawConnected(broker, 5, { properties: { maximumPacketSize: 256 } });
    await subscribe(small, topic, { qos: 1 });
    const { client: pub } = await rawConnected(broker, 5);
    await publish(pub, topic, Buffer.alloc(1000, 0x61), { qos: 1, messageId: 1 });
    await publish(pub, topic, Buffer.alloc(1000, 0x62), { qos: 0 });
    await publish(pub, topic, 'fits', { qos: 1, messageId: 2 });
    const p = await nextPublish(small, topic);
    assert.equal(p.payload.toString(), 'fits', 'the oversize messages were discarded, not sent');
    await ack(small, p);
  });

  test('Maximum Packet Size (3.2.2.3.6): a packet above the broker’s announced maximum → DISCONNECT 0x95', async (t) => {
    const { client, connack } = await rawConnected(broker, 5);
    const max = connack.properties?.maximumPacketSize;
    if (max === undefined || max > 64 * 1024 * 1024) {
      t.skip(`the broker announces no usable Maximum Packet Size (${max}); Mosquitto's default is unlimited`);
      return;
    }
    client.send({
      cmd: 'publish',
      topic: `${prefix}/maxsize-in`,
      payload: Buffer.alloc(max + 1),
      qos: 0,
      retain: false,
      dup: false,
    });
    const d = await closedByBroker(client, 15_000);
    assert.equal(d?.reasonCode, ReasonCode.PacketTooLarge);
  });

  test('[MQTT-3.3.4-9] the broker sends no more unacknowledged QoS 1 messages than the client’s Receive Maximum', async (t) => {
    knownExternalDeviation(
      t,
      broker,
      'Mosquitto 2.0.11 sends two messages for one PUBACK once the window is full',
    );
    const topic = `${prefix}/recvmax-out`;
    const { client: sub } = await rawConnected(broker, 5, { properties: { receiveMaximum: 2 } });
    await subscribe(sub, topic, { qos: 1 });
    const { client: pub } = await rawConnected(broker, 5);
    for (let i = 0; i < 5; i++) await publish(pub, topic, `m${i}`, { qos: 1, messageId: i + 1 });
    await sync(sub);
    const first = published(sub, topic);
    assert.deepEqual(
      first.map((p) => p.payload.toString()),
      ['m0', 'm1'],
    );
    sub.received.length = 0;
    await ack(sub, first[0] as mqtt.IPublishPacket); // frees one slot
    const third = await nextPublish(sub, topic);
    assert.equal(third.payload.toString(), 'm2');
    await sync(sub);
    assert.equal(published(sub, topic).length, 0, 'still at most 2 in flight');
  });

  test('[MQTT-3.3.4-7] more unacknowledged QoS 2 PUBLISHes than the broker’s Receive Maximum → DISCONNECT 0x93', async (t) => {
    const { client, connack } = await rawConnected(broker, 5);
    knownExternalDeviation(
      t,
      broker,
      'Mosquitto 2.0.11 answers with PUBREC 0x97 (quota exceeded) instead of DISCONNECT 0x93',
    );
    const max = connack.properties?.receiveMaximum ?? 65535;
    if (max > 4096) {
      t.skip(`Receive Maximum ${max} is too large to exceed quickly`);
      return;
    }
    for (let i = 1; i <= max + 1; i++) {
      client.send({
        cmd: 'publish',
        topic: `${prefix}/recvmax-in`,
        payload: Buffer.from('x'),
        qos: 2,
        messageId: i,
        retain: false,
        dup: false,
      });
    }
    const d = await closedByBroker(client, 10_000);
    assert.equal(d?.reasonCode, ReasonCode.ReceiveMaximumExceeded);
    assert.equal(pending(client, 'pubrec').length, max, 'every publish within the window was acknowledged');
  });
});

describe('will messages', () => {
  async function willCase(v: 4 | 5, end: (c: Awaited<ReturnType<typeof rawConnected>>['client']) => void) {
    const willTopic = `${prefix}/will/${uniqueId('w')}`;
    const { client: watcher } = await rawConnected(broker, v);
    await subscribe(watcher, willTopic, { qos: 1 });
    const { client } = await rawConnected(broker, v, {
      will: { topic: willTopic, payload: Buffer.from('gone'), qos: 1, retain: false },
    });
    end(client);
    await closedByBroker(client);
    // A marker published afterwards on the same topic: a will, if sent, is routed before it.
    const { client: pub } = await rawConnected(broker, v);
    await publish(pub, willTopic, 'marker', { qos: 1 });
    const first = await nextPublish(watcher, willTopic);
    await ack(watcher, first);
    return first.payload.toString();
  }

  test('[MQTT-3.14.4-3] v5 DISCONNECT 0x00: the will is discarded', async () => {
    assert.equal(await willCase(5, (c) => c.send({ cmd: 'disconnect', reasonCode: 0 })), 'marker');
  });

  test('v5 DISCONNECT 0x04 (Disconnect with Will Message): the will is published', async () => {
    assert.equal(await willCase(5, (c) => c.send({ cmd: 'disconnect', reasonCode: 0x04 })), 'gone');
  });

  test('[MQTT-3.1.2-10] v3.1.1 DISCONNECT: the will is discarded', async () => {
    assert.equal(await willCase(4, (c) => c.send({ cmd: 'disconnect' })), 'marker');
  });

  test('[MQTT-3.1.2-8] v3.1.1 connection lost without DISCONNECT: the will is published', async () => {
    assert.equal(await willCase(4, (c) => c.socket.destroy()), 'gone');
  });

  test('[MQTT-3.1.2-8] v5 protocol error closes the connection: the will is published', async () => {
    assert.equal(
      await willCase(5, (c) =>
        c.send({
          cmd: 'publish',
          topic: 'a/+',
          payload: Buffer.from('x'),
          qos: 0,
          retain: false,
          dup: false,
        }),
      ),
      'gone',
    );
  });
});
