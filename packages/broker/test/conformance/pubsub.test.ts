// Black-box conformance over raw packets: PUBLISH / SUBSCRIBE / UNSUBSCRIBE rules, topic names,
// $-topics, and bad topics (MQTT 3.1.1 and 5.0).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type mqtt from 'mqtt-packet';
import {
  closedByBroker,
  endAllRaw,
  nextPublish,
  publish,
  rawConnected,
  subscribe,
  sync,
} from '../support/raw.js';
import { type Target, target, uniqueId } from '../support/target.js';

let broker: Target;
let prefix: string;
before(async () => {
  broker = await target();
  prefix = `bw-conf/${uniqueId('pubsub')}`;
});
after(async () => {
  await endAllRaw();
  await broker.close();
});

/** A QoS 0 PUBLISH written by hand, so the topic bytes can be anything (e.g. invalid UTF-8). */
function rawPublish(topic: Buffer, protocolVersion: 4 | 5): Buffer {
  const payload = Buffer.from('x');
  const props = protocolVersion === 5 ? Buffer.from([0]) : Buffer.alloc(0);
  const body = Buffer.concat([Buffer.from([topic.length >> 8, topic.length & 0xff]), topic, props, payload]);
  assert.ok(body.length < 128);
  return Buffer.concat([Buffer.from([0x30, body.length]), body]);
}

/** Other clients keep working after one misbehaved. */
async function brokerStillWorks(): Promise<void> {
  const topic = `${prefix}/alive/${uniqueId('t')}`;
  const { client } = await rawConnected(broker, 4);
  await subscribe(client, topic, { qos: 1 });
  await publish(client, topic, 'still here', { qos: 1, messageId: 2 });
  const p = await nextPublish(client, topic);
  assert.equal(p.payload.toString(), 'still here');
  await client.end();
}

for (const v of [4, 5] as const) {
  describe(`v${v === 4 ? '3.1.1' : '5'}`, () => {
    test(`[MQTT-3.8.4-1] [MQTT-3.8.4-2] SUBACK echoes the packet id; a QoS 1 message round-trips (v${v})`, async () => {
      const { client } = await rawConnected(broker, v);
      const topic = `${prefix}/v${v}/rt`;
      assert.equal(await subscribe(client, topic, { qos: 1 }, undefined, 4242), 1);
      await publish(client, topic, 'one', { qos: 1, messageId: 7 });
      const p = await nextPublish(client, topic);
      assert.equal(p.payload.toString(), 'one');
      assert.equal(p.qos, 1);
      client.send({ cmd: 'puback', messageId: p.messageId });
    });

    test(`[MQTT-3.8.4-6] delivered QoS is the minimum of publish and granted QoS (v${v})`, async () => {
      const { client: sub } = await rawConnected(broker, v);
      const { client: pub } = await rawConnected(broker, v);
      const topic = `${prefix}/v${v}/downgrade`;
      await subscribe(sub, topic, { qos: 0 });
      await publish(pub, topic, 'qos2 in', { qos: 2 });
      const p = await nextPublish(sub, topic);
      assert.equal(p.qos, 0);
    });

    test(`[MQTT-3.10.4-4] [MQTT-3.10.4-1] UNSUBACK echoes the packet id and delivery stops (v${v})`, async () => {
      const { client } = await rawConnected(broker, v);
      const topic = `${prefix}/v${v}/unsub`;
      await subscribe(client, topic, { qos: 0 });
      client.send({ cmd: 'unsubscribe', messageId: 99, unsubscriptions: [topic] });
      const ack = (await client.next('unsuback')) as mqtt.IUnsubackPacket;
      assert.equal(ack.messageId, 99);
      if (v === 5) assert.deepEqual(ack.granted, [0]);
      await publish(client, topic, 'nobody listens', { qos: 1, messageId: 3 });
      await sync(client);
      assert.equal(client.received.filter((p) => p.cmd === 'publish').length, 0);
    });

    test(`[MQTT-4.7.1-2] + and # match per level; [MQTT-4.7.2-1] a leading wildcard does not match $-topics (v${v})`, async () => {
      const id = uniqueId('dollar');
      const { client: wild } = await rawConnected(broker, v);
      const { client: exact } = await rawConnected(broker, v);
      const dollarTopic = `$bwtest/${id}/x`;
      // '#' and '+/…' would match $bwtest/… if $-topics were not special.
      await subscribe(wild, '#', { qos: 1 }, undefined, 1);
      await subscribe(wild, `+/${id}/x`, { qos: 1 }, undefined, 2);
      await subscribe(exact, dollarTopic, { qos: 1 });
      const { client: pub } = await rawConnected(broker, v);
      await publish(pub, dollarTopic, 'dollar', { qos: 1, messageId: 1 });
      const marker = `bw-conf/${id}/x`; // matches both of wild's filters, so it is the sync point
      await publish(pub, marker, 'marker', { qos: 1, messageId: 2 });
      const got = await nextPublish(exact, dollarTopic);
      assert.equal(got.payload.toString(), 'dollar');
      const m = await nextPublish(wild, marker);
      assert.equal(m.payload.toString(), 'marker');
      await sync(wild);
      const leaked = wild.received.filter((p) => p.cmd === 'publish' && p.topic === dollarTopic);
      assert.deepEqual(leaked, []);
    });

    test(`[MQTT-3.3.2-2] a wildcard in a PUBLISH topic closes the connection (v${v})`, async () => {
      const { client: watcher } = await rawConnected(broker, v);
      await subscribe(watcher, `${prefix}/v${v}/wild/#`, { qos: 0 });
      for (const topic of [`${prefix}/v${v}/wild/+`, `${prefix}/v${v}/wild/#`]) {
        const { client } = await rawConnected(broker, v);
        client.send(rawPublish(Buffer.from(topic), v));
        const d = await closedByBroker(client);
        if (d) assert.ok(d.reasonCode !== undefined && d.reasonCode >= 0x80, `reason ${d.reasonCode}`);
      }
      await sync(watcher);
      assert.equal(watcher.received.filter((p) => p.cmd === 'publish').length, 0, 'nothing was routed');
      await brokerStillWorks();
    });

    test(`[MQTT-1.5.4-1] [MQTT-1.5.3-1] an ill-formed UTF-8 topic name closes the connection (v${v})`, async () => {
      for (const bad of [
        Buffer.from([0x61, 0xff, 0x62]), // 0xFF never appears in UTF-8
        Buffer.from([0x61, 0xc3]), // truncated two-byte sequence
        Buffer.from([0x61, 0xed, 0xa0, 0x80]), // UTF-16 surrogate U+D800 encoded in UTF-8
      ]) {
        const { client } = await rawConnected(broker, v);
        client.send(rawPublish(bad, v));
        const d = await closedByBroker(client);
        if (d) assert.ok(d.reasonCode !== undefined && d.reasonCode >= 0x80, `reason ${d.reasonCode}`);
      }
      await brokerStillWorks();
    });

    test(`[MQTT-1.5.4-2] a topic name containing U+0000 closes the connection (v${v})`, async () => {
      const { client } = await rawConnected(broker, v);
      client.send(rawPublish(Buffer.from('a\u0000b'), v));
      const d = await closedByBroker(client);
      if (d) assert.ok(d.reasonCode !== undefined && d.reasonCode >= 0x80, `reason ${d.reasonCode}`);
      await brokerStillWorks();
    });

    test(`[MQTT-4.7.3-1] an empty topic name in PUBLISH closes the connection (v${v})`, async () => {
      const { client } = await rawConnected(broker, v);
      client.send(rawPublish(Buffer.alloc(0), v));
      const d = await closedByBroker(client);
      if (d) assert.ok(d.reasonCode !== undefined && d.reasonCode >= 0x80, `reason ${d.reasonCode}`);
    });
  });
}
