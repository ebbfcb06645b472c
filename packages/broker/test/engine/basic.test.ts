import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { RawClient, startBroker, type TestBroker } from '@breakwater/testkit';
import mqtt from 'mqtt';

describe('engine: connect, subscribe, publish', () => {
  let tb: TestBroker;
  const clients: RawClient[] = [];
  before(async () => {
    tb = await startBroker();
  });
  after(async () => {
    for (const c of clients) await c.end();
    await tb.close();
  });
  async function raw(version = 4): Promise<RawClient> {
    const c = await RawClient.connect(tb.port, { protocolVersion: version });
    clients.push(c);
    return c;
  }

  test('[MQTT-3.2.0-1] CONNACK accepted for v3.1.1 and v5', async () => {
    const a = await raw(4);
    const ack4 = await a.connect({ clientId: 'c4' });
    assert.equal(ack4.returnCode, 0);
    const b = await raw(5);
    const ack5 = await b.connect({ clientId: 'c5', protocolVersion: 5 });
    assert.equal(ack5.reasonCode, 0);
    assert.equal(ack5.properties?.receiveMaximum, 1024);
    assert.equal(ack5.properties?.sharedSubscriptionAvailable, true);
  });

  test('[MQTT-3.3.1-1] QoS 0 and QoS 1 round trip between raw clients', async () => {
    const sub = await raw(4);
    await sub.connect({ clientId: 'sub-1' });
    sub.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'a/+', qos: 1 }] });
    const suback = (await sub.next('suback')) as { granted: number[] };
    assert.deepEqual(suback.granted, [1]);
    const pub = await raw(4);
    await pub.connect({ clientId: 'pub-1' });
    pub.send({
      cmd: 'publish',
      topic: 'a/b',
      payload: Buffer.from('zero'),
      qos: 0,
      retain: false,
      dup: false,
    });
    const m0 = (await sub.next('publish')) as { topic: string; payload: Buffer; qos: number };
    assert.equal(m0.topic, 'a/b');
    assert.equal(m0.payload.toString(), 'zero');
    assert.equal(m0.qos, 0);
    pub.send({
      cmd: 'publish',
      topic: 'a/c',
      payload: Buffer.from('one'),
      qos: 1,
      messageId: 7,
      retain: false,
      dup: false,
    });
    const ack = (await pub.next('puback')) as { messageId: number };
    assert.equal(ack.messageId, 7);
    const m1 = (await sub.next('publish')) as {
      topic: string;
      payload: Buffer;
      qos: number;
      messageId: number;
    };
    assert.equal(m1.payload.toString(), 'one');
    assert.equal(m1.qos, 1);
    sub.send({ cmd: 'puback', messageId: m1.messageId });
  });

  test('MQTT.js v5 and v4 clients round trip QoS 2', async () => {
    const s = await mqtt.connectAsync(tb.url, { protocolVersion: 5, clientId: 'js-sub', reconnectPeriod: 0 });
    const p = await mqtt.connectAsync(tb.url, { protocolVersion: 4, clientId: 'js-pub', reconnectPeriod: 0 });
    try {
      await s.subscribeAsync('x/#', { qos: 2 });
      const got = new Promise<[string, Buffer]>((resolve) => s.once('message', (t, m) => resolve([t, m])));
      await p.publishAsync('x/y', 'hello', { qos: 2 });
      const [t, m] = await got;
      assert.equal(t, 'x/y');
      assert.equal(m.toString(), 'hello');
    } finally {
      await s.endAsync();
      await p.endAsync();
    }
  });
});
