// Black-box conformance over raw packets: QoS 1/2 flows, exactly-once, redelivery with DUP on
// reconnect, offline queueing and ordering (MQTT 3.1.1 and 5.0).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type mqtt from 'mqtt-packet';
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
import { type Target, target, uniqueId } from '../support/target.js';

let broker: Target;
let prefix: string;
before(async () => {
  broker = await target();
  prefix = `bw-conf/${uniqueId('qos')}`;
});
after(async () => {
  await endAllRaw();
  await broker.close();
});

/** CONNECT options for a session that outlives the connection. */
function persistent(v: 4 | 5, clientId: string): Partial<mqtt.IConnectPacket> {
  return v === 5
    ? { clientId, clean: false, properties: { sessionExpiryInterval: 120 } }
    : { clientId, clean: false };
}

/** Remove the session from a (possibly shared) broker. */
async function endSession(v: 4 | 5, clientId: string): Promise<void> {
  const { client } = await rawConnected(broker, v, { clientId, clean: true });
  client.send({ cmd: 'disconnect' });
  await closedByBroker(client);
}

for (const v of [4, 5] as const) {
  describe(`v${v === 4 ? '3.1.1' : '5'}`, () => {
    test(`[MQTT-4.3.3-10] [MQTT-4.3.3-2] QoS 2: a duplicate PUBLISH before PUBREL gets PUBREC again and is delivered once (v${v})`, async () => {
      const topic = `${prefix}/v${v}/exactly-once`;
      const { client: sub } = await rawConnected(broker, v);
      await subscribe(sub, topic, { qos: 2 });
      const { client: pub } = await rawConnected(broker, v);
      const packet = {
        cmd: 'publish',
        topic,
        payload: Buffer.from('once'),
        qos: 2,
        messageId: 11,
        retain: false,
        dup: false,
      } as mqtt.IPublishPacket;
      pub.send(packet);
      assert.equal(((await pub.next('pubrec')) as mqtt.IPubrecPacket).messageId, 11);
      pub.send({ ...packet, dup: true }); // retransmission: same packet id, no PUBREL yet
      assert.equal(((await pub.next('pubrec')) as mqtt.IPubrecPacket).messageId, 11);
      pub.send({ cmd: 'pubrel', messageId: 11 });
      assert.equal(((await pub.next('pubcomp')) as mqtt.IPubcompPacket).messageId, 11);
      // After PUBCOMP the id is free again: a new message with id 11 is a new message.
      await publish(pub, topic, 'twice', { qos: 2, messageId: 11 });

      const first = await nextPublish(sub, topic);
      await ack(sub, first);
      const second = await nextPublish(sub, topic);
      await ack(sub, second);
      assert.deepEqual([first.payload.toString(), second.payload.toString()], ['once', 'twice']);
      await sync(sub);
      assert.equal(sub.received.filter((p) => p.cmd === 'publish').length, 0, 'no duplicate delivery');
    });

    test(`[MQTT-4.3.2-2] QoS 1 PUBACK and [MQTT-4.3.3-2] QoS 2 PUBREC/PUBCOMP carry the PUBLISH packet id (v${v})`, async () => {
      const { client } = await rawConnected(broker, v);
      await publish(client, `${prefix}/v${v}/ids`, 'a', { qos: 1, messageId: 65535 });
      await publish(client, `${prefix}/v${v}/ids`, 'b', { qos: 2, messageId: 1 });
    });

    test(`[MQTT-4.4.0-1] [MQTT-3.3.1-1] unacknowledged QoS 1 is resent with DUP=1 and the same packet id on reconnect (v${v})`, async () => {
      const clientId = uniqueId('dup');
      const topic = `${prefix}/v${v}/dup`;
      const { client: sub } = await rawConnected(broker, v, persistent(v, clientId));
      await subscribe(sub, topic, { qos: 1 });
      const { client: pub } = await rawConnected(broker, v);
      await publish(pub, topic, 'ack me', { qos: 1 });
      const first = await nextPublish(sub, topic);
      assert.equal(first.dup, false);
      await sub.end(); // gone without PUBACK

      const { client: again, connack } = await rawConnected(broker, v, persistent(v, clientId));
      assert.equal(connack.sessionPresent, true);
      const redelivered = await nextPublish(again, topic);
      assert.equal(redelivered.payload.toString(), 'ack me');
      assert.equal(redelivered.dup, true);
      assert.equal(redelivered.messageId, first.messageId);
      await ack(again, redelivered);
      await sync(again);
      await again.end();
      await endSession(v, clientId);
    });

    test(`[MQTT-4.4.0-1] QoS 2: after PUBREC without PUBCOMP, reconnect resends PUBREL (v${v})`, async () => {
      const clientId = uniqueId('pubrel');
      const topic = `${prefix}/v${v}/pubrel`;
      const { client: sub } = await rawConnected(broker, v, persistent(v, clientId));
      await subscribe(sub, topic, { qos: 2 });
      const { client: pub } = await rawConnected(broker, v);
      await publish(pub, topic, 'two', { qos: 2 });
      const p = await nextPublish(sub, topic);
      sub.send({ cmd: 'pubrec', messageId: p.messageId });
      const rel = (await sub.next('pubrel')) as mqtt.IPubrelPacket;
      assert.equal(rel.messageId, p.messageId);
      await sub.end(); // gone without PUBCOMP

      const { client: again } = await rawConnected(broker, v, persistent(v, clientId));
      const resent = (await again.next('pubrel')) as mqtt.IPubrelPacket;
      assert.equal(resent.messageId, p.messageId);
      again.send({ cmd: 'pubcomp', messageId: p.messageId });
      await sync(again);
      assert.equal(
        again.received.filter((x) => x.cmd === 'publish').length,
        0,
        'the message is not sent again once PUBREC was received',
      );
      await again.end();
      await endSession(v, clientId);
    });

    test(`[MQTT-4.6.0-6] messages queued for an offline session are delivered in order on reconnect (v${v})`, async () => {
      const clientId = uniqueId('order');
      const topic = `${prefix}/v${v}/order`;
      const { client: sub } = await rawConnected(broker, v, persistent(v, clientId));
      await subscribe(sub, topic, { qos: 1 });
      sub.send({ cmd: 'disconnect' });
      await closedByBroker(sub);
      const { client: pub } = await rawConnected(broker, v);
      for (let i = 0; i < 10; i++) await publish(pub, topic, `m${i}`, { qos: 1, messageId: i + 1 });
      const { client: again } = await rawConnected(broker, v, persistent(v, clientId));
      const got: string[] = [];
      for (let i = 0; i < 10; i++) {
        const p = await nextPublish(again, topic);
        got.push(p.payload.toString());
        await ack(again, p);
      }
      assert.deepEqual(
        got,
        Array.from({ length: 10 }, (_, i) => `m${i}`),
      );
      await again.end();
      await endSession(v, clientId);
    });

    test(`[MQTT-3.1.2-6] a clean session discards queued messages and subscriptions (v${v})`, async () => {
      const clientId = uniqueId('discard');
      const topic = `${prefix}/v${v}/discard`;
      const { client: sub } = await rawConnected(broker, v, persistent(v, clientId));
      await subscribe(sub, topic, { qos: 1 });
      sub.send({ cmd: 'disconnect' });
      await closedByBroker(sub);
      const { client: pub } = await rawConnected(broker, v);
      await publish(pub, topic, 'queued', { qos: 1 });
      const { client: clean, connack } = await rawConnected(broker, v, { clientId, clean: true });
      assert.equal(connack.sessionPresent, false);
      await publish(pub, topic, 'after', { qos: 1, messageId: 2 });
      await sync(clean);
      assert.equal(clean.received.filter((p) => p.cmd === 'publish').length, 0);
    });
  });
}
