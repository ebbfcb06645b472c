// Interop with MQTT.js (the `mqtt` package), protocol 4 (3.1.1) and 5, over real TCP sockets.
// Runs against Breakwater, or against any broker given by BW_TEST_TARGET (see ../support/target.ts).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import mqtt, { type IClientOptions, type IPublishPacket, type MqttClient } from 'mqtt';
import { type Target, target, uniqueId } from '../support/target.js';

interface Received {
  topic: string;
  payload: Buffer;
  packet: IPublishPacket;
}

const clients = new Set<MqttClient>();

async function connect(url: string, options: IClientOptions): Promise<MqttClient> {
  // reconnectPeriod 0: a test must see a failure, not a silent reconnect loop.
  const client = await mqtt.connectAsync(
    url,
    { reconnectPeriod: 0, connectTimeout: 5000, ...options },
    false,
  );
  clients.add(client);
  return client;
}

async function endAll(): Promise<void> {
  await Promise.all([...clients].map((c) => c.endAsync(true).catch(() => {})));
  clients.clear();
}

/** Resolve with the next message on `topic` (exact match), or reject after `timeoutMs`. */
function nextMessage(client: MqttClient, topic: string, timeoutMs = 5000): Promise<Received> {
  return new Promise((resolve, reject) => {
    const onMessage = (t: string, payload: Buffer, packet: IPublishPacket) => {
      if (t !== topic) return;
      clearTimeout(timer);
      client.off('message', onMessage);
      resolve({ topic: t, payload, packet });
    };
    const timer = setTimeout(() => {
      client.off('message', onMessage);
      reject(new Error(`no message on ${topic} within ${timeoutMs} ms`));
    }, timeoutMs);
    client.on('message', onMessage);
  });
}

for (const protocolVersion of [4, 5] as const) {
  describe(`MQTT.js protocolVersion ${protocolVersion}`, () => {
    let broker: Target;
    let prefix: string;
    before(async () => {
      broker = await target();
      prefix = `bw-interop/${uniqueId(`mqttjs${protocolVersion}`)}`;
    });
    after(async () => {
      await endAll();
      await broker.close();
    });

    for (const qos of [0, 1, 2] as const) {
      test(`QoS ${qos} round trip between two clients`, async () => {
        const sub = await connect(broker.url, { protocolVersion, clientId: uniqueId('sub') });
        const pub = await connect(broker.url, { protocolVersion, clientId: uniqueId('pub') });
        const topic = `${prefix}/qos${qos}`;
        const granted = await sub.subscribeAsync(topic, { qos });
        assert.equal(granted[0]?.qos, qos);
        const got = nextMessage(sub, topic);
        await pub.publishAsync(topic, `hello qos ${qos}`, { qos });
        const m = await got;
        assert.equal(m.payload.toString(), `hello qos ${qos}`);
        assert.equal(m.packet.qos, qos);
        assert.equal(m.packet.retain, false);
        await Promise.all([sub.endAsync(), pub.endAsync()]);
      });
    }

    test('wildcard subscription (+ and #) receives matching topics only', async () => {
      const sub = await connect(broker.url, { protocolVersion, clientId: uniqueId('sub') });
      const pub = await connect(broker.url, { protocolVersion, clientId: uniqueId('pub') });
      await sub.subscribeAsync([`${prefix}/wild/+/x`, `${prefix}/deep/#`], { qos: 1 });
      const seen: string[] = [];
      sub.on('message', (t) => seen.push(t));
      const last = nextMessage(sub, `${prefix}/deep/a/b/c`);
      await pub.publishAsync(`${prefix}/wild/a/x`, 'm', { qos: 1 });
      await pub.publishAsync(`${prefix}/wild/a/b/x`, 'no match', { qos: 1 });
      await pub.publishAsync(`${prefix}/deep/a/b/c`, 'm', { qos: 1 });
      await last;
      assert.deepEqual(seen, [`${prefix}/wild/a/x`, `${prefix}/deep/a/b/c`]);
    });

    test('retained message is delivered on subscribe, then cleared by an empty retained payload', async () => {
      const topic = `${prefix}/retained`;
      const pub = await connect(broker.url, { protocolVersion, clientId: uniqueId('pub') });
      await pub.publishAsync(topic, 'kept', { qos: 1, retain: true });

      const sub = await connect(broker.url, { protocolVersion, clientId: uniqueId('sub') });
      const got = nextMessage(sub, topic);
      await sub.subscribeAsync(topic, { qos: 1 });
      const m = await got;
      assert.equal(m.payload.toString(), 'kept');
      assert.equal(
        m.packet.retain,
        true,
        'a retained message sent because of a new subscription has RETAIN=1',
      );

      await pub.publishAsync(topic, '', { qos: 1, retain: true });
      const sub2 = await connect(broker.url, { protocolVersion, clientId: uniqueId('sub') });
      const seen: string[] = [];
      sub2.on('message', (t) => seen.push(t));
      await sub2.subscribeAsync(topic, { qos: 1 });
      // A round trip on another topic proves the broker has processed the subscription and would
      // have sent any retained message before it.
      const probe = `${prefix}/retained-probe`;
      await sub2.subscribeAsync(probe, { qos: 1 });
      const p = nextMessage(sub2, probe);
      await pub.publishAsync(probe, 'probe', { qos: 1 });
      await p;
      assert.deepEqual(seen, [probe], 'cleared retained message must not be delivered');
    });

    test('will message is published when the client disappears without DISCONNECT', async () => {
      const willTopic = `${prefix}/will`;
      const watcher = await connect(broker.url, { protocolVersion, clientId: uniqueId('watch') });
      await watcher.subscribeAsync(willTopic, { qos: 1 });
      const dying = await connect(broker.url, {
        protocolVersion,
        clientId: uniqueId('dying'),
        will: { topic: willTopic, payload: Buffer.from('gone'), qos: 1, retain: false },
      });
      const got = nextMessage(watcher, willTopic);
      dying.stream.destroy(); // abnormal close: no DISCONNECT packet
      const m = await got;
      assert.equal(m.payload.toString(), 'gone');
    });

    test('will message is NOT published after a normal DISCONNECT', async () => {
      const willTopic = `${prefix}/will-normal`;
      const watcher = await connect(broker.url, { protocolVersion, clientId: uniqueId('watch') });
      await watcher.subscribeAsync(willTopic, { qos: 1 });
      const seen: string[] = [];
      watcher.on('message', (t) => seen.push(t));
      const polite = await connect(broker.url, {
        protocolVersion,
        clientId: uniqueId('polite'),
        will: { topic: willTopic, payload: Buffer.from('gone'), qos: 1, retain: false },
      });
      await polite.endAsync(); // sends DISCONNECT (v5 reason 0x00)
      // Publish a marker on the same topic after the disconnect; when it arrives, a will would
      // already have been routed ahead of it (same publisher-independent topic, QoS 1).
      const pub = await connect(broker.url, { protocolVersion, clientId: uniqueId('pub') });
      const marker = nextMessage(watcher, willTopic);
      await pub.publishAsync(willTopic, 'marker', { qos: 1 });
      const m = await marker;
      assert.equal(m.payload.toString(), 'marker');
      assert.deepEqual(seen, [willTopic]);
    });

    test('persistent session: QoS 1 message published while offline is delivered on reconnect', async () => {
      const clientId = uniqueId('persist');
      const topic = `${prefix}/persist`;
      const sessionOptions: IClientOptions =
        protocolVersion === 5
          ? { protocolVersion, clientId, clean: false, properties: { sessionExpiryInterval: 300 } }
          : { protocolVersion, clientId, clean: false };
      // Start from a clean slate: a leftover session from an earlier run must not exist.
      const first = await connect(broker.url, { ...sessionOptions, clean: true });
      await first.endAsync();

      const sub = await connect(broker.url, sessionOptions);
      await sub.subscribeAsync(topic, { qos: 1 });
      await sub.endAsync();

      const pub = await connect(broker.url, { protocolVersion, clientId: uniqueId('pub') });
      await pub.publishAsync(topic, 'while you were away', { qos: 1 });

      // The queued message may arrive right after CONNACK, before connectAsync would resolve, so
      // the listeners are attached to the client before it connects.
      const again = mqtt.connect(broker.url, { reconnectPeriod: 0, connectTimeout: 5000, ...sessionOptions });
      clients.add(again);
      const got = nextMessage(again, topic);
      const connack = await new Promise<{ sessionPresent: boolean }>((resolve, reject) => {
        again.once('connect', resolve);
        again.once('error', reject);
      });
      assert.equal(connack.sessionPresent, true, 'CONNACK session present');
      const m = await got;
      assert.equal(m.payload.toString(), 'while you were away');
      assert.equal(m.packet.qos, 1);
      // Tidy up the shared broker: end the session.
      await again.endAsync();
      const cleanup = await connect(broker.url, { protocolVersion, clientId, clean: true });
      await cleanup.endAsync();
    });

    if (protocolVersion === 5) {
      test('v5 properties pass through: user properties, response topic, correlation data, content type', async () => {
        const sub = await connect(broker.url, { protocolVersion, clientId: uniqueId('sub') });
        const pub = await connect(broker.url, { protocolVersion, clientId: uniqueId('pub') });
        const topic = `${prefix}/props`;
        await sub.subscribeAsync(topic, { qos: 1 });
        const got = nextMessage(sub, topic);
        await pub.publishAsync(topic, 'req', {
          qos: 1,
          properties: {
            userProperties: { a: '1', b: '2' },
            responseTopic: `${prefix}/reply`,
            correlationData: Buffer.from([1, 2, 3]),
            contentType: 'text/plain',
            payloadFormatIndicator: true,
          },
        });
        const m = await got;
        const p = m.packet.properties ?? {};
        assert.deepEqual({ ...p.userProperties }, { a: '1', b: '2' });
        assert.equal(p.responseTopic, `${prefix}/reply`);
        assert.deepEqual(p.correlationData, Buffer.from([1, 2, 3]));
        assert.equal(p.contentType, 'text/plain');
        assert.equal(p.payloadFormatIndicator, true);
      });

      test('Topic Aliases from the broker: a client with topicAliasMaximum sees every message on its topic', async () => {
        const sub = await connect(broker.url, {
          protocolVersion,
          clientId: uniqueId('sub'),
          properties: { topicAliasMaximum: 2 },
        });
        const pub = await connect(broker.url, { protocolVersion, clientId: uniqueId('pub') });
        await sub.subscribeAsync(`${prefix}/aliased/#`, { qos: 1 });
        const topics = [0, 1, 2].map((i) => `${prefix}/aliased/${i}/a-rather-long-topic`);
        const order = [0, 0, 1, 0, 2, 1, 2, 0];
        const seen: string[] = [];
        let aliased = 0;
        const done = new Promise<void>((resolve) => {
          sub.on('message', (topic, payload, packet) => {
            if (packet.properties?.topicAlias !== undefined) aliased++;
            seen.push(`${topic} ${payload}`);
            if (seen.length === order.length) resolve();
          });
        });
        for (const [i, t] of order.entries())
          await pub.publishAsync(topics[t]!, `m${i}`, { qos: (i % 2) as 0 | 1 });
        await done;
        assert.deepEqual(
          seen,
          order.map((t, i) => `${topics[t]} m${i}`),
        );
        if (broker.kind === 'breakwater') assert.ok(aliased > 0, 'the broker used aliases');
      });
    }
  });
}
