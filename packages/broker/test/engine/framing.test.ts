import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, describe, test } from 'node:test';
import { duplexPair } from '@breakwater/testkit';
import mqttPacket from 'mqtt-packet';
import { Broker, BrokerMetrics, MemoryStorage, ReasonCode } from '../../src/index.js';

/** Drives a broker over an in-memory duplex pair and collects what it answers. */
async function memoryBroker() {
  const broker = new Broker({
    storage: new MemoryStorage(),
    metrics: new BrokerMetrics({ defaultMetrics: false }),
  });
  await broker.start();
  return broker;
}

function client(broker: Broker, version: 4 | 5) {
  const [server, peer] = duplexPair();
  broker.handle(server, { listener: 'mem', transport: 'memory' });
  const parser = mqttPacket.parser({ protocolVersion: version });
  const packets: mqttPacket.Packet[] = [];
  parser.on('packet', (p) => packets.push(p));
  peer.on('data', (c: Buffer) => parser.parse(c));
  const gen = (p: mqttPacket.Packet) => mqttPacket.generate(p, { protocolVersion: version });
  return { peer, packets, gen };
}

async function until(cond: () => boolean): Promise<void> {
  const end = Date.now() + 3000;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timeout');
    await new Promise((r) => setImmediate(r));
  }
}

describe('engine: framing over an in-memory duplex', () => {
  const brokers: Broker[] = [];
  after(async () => {
    for (const b of brokers) await b.close();
  });

  test('[MQTT-2.1.4] packets split at every byte offset are framed correctly', async () => {
    const broker = await memoryBroker();
    brokers.push(broker);
    const c = client(broker, 5);
    const bytes = Buffer.concat([
      c.gen({
        cmd: 'connect',
        protocolId: 'MQTT',
        protocolVersion: 5,
        clientId: 'split',
        clean: true,
        keepalive: 0,
      }),
      c.gen({
        cmd: 'subscribe',
        messageId: 1,
        subscriptions: [{ topic: 'split/#', qos: 1, nl: false, rap: false, rh: 0 }],
      }),
      c.gen({
        cmd: 'publish',
        topic: 'split/a',
        payload: Buffer.alloc(300, 1),
        qos: 1,
        messageId: 2,
        retain: false,
        dup: false,
      }),
      c.gen({ cmd: 'pingreq' }),
    ]);
    for (let cut = 1; cut < bytes.length; cut++) {
      const d = client(broker, 5);
      d.peer.write(bytes.subarray(0, cut));
      await new Promise((r) => setImmediate(r));
      d.peer.write(bytes.subarray(cut));
      await until(() => d.packets.some((p) => p.cmd === 'pingresp'));
      assert.deepEqual(
        d.packets.map((p) => p.cmd),
        ['connack', 'suback', 'publish', 'puback', 'pingresp'].filter((x) =>
          d.packets.some((p) => p.cmd === x),
        ),
      );
      assert.ok(
        d.packets.some((p) => p.cmd === 'publish'),
        `cut ${cut}: own publish delivered`,
      );
      d.peer.destroy();
    }
    await until(() => broker.connectedClients === 0);
  });

  test('byte-at-a-time input is framed correctly', async () => {
    const broker = await memoryBroker();
    brokers.push(broker);
    const c = client(broker, 4);
    const bytes = Buffer.concat([
      c.gen({
        cmd: 'connect',
        protocolId: 'MQTT',
        protocolVersion: 4,
        clientId: 'bytes',
        clean: true,
        keepalive: 0,
      }),
      c.gen({ cmd: 'pingreq' }),
    ]);
    for (const byte of bytes) c.peer.write(Buffer.from([byte]));
    await until(() => c.packets.length === 2);
    assert.deepEqual(
      c.packets.map((p) => p.cmd),
      ['connack', 'pingresp'],
    );
  });

  test('[MQTT-1.5.5-1] a Remaining Length longer than 4 bytes is malformed; the broker stays up', async () => {
    const broker = await memoryBroker();
    brokers.push(broker);
    const c = client(broker, 5);
    c.peer.write(
      c.gen({
        cmd: 'connect',
        protocolId: 'MQTT',
        protocolVersion: 5,
        clientId: 'vl',
        clean: true,
        keepalive: 0,
      }),
    );
    await until(() => c.packets.length === 1);
    c.peer.write(Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff, 0x01]));
    await until(() => c.packets.length === 2);
    const d = c.packets[1] as mqttPacket.IDisconnectPacket;
    assert.equal(d.reasonCode, ReasonCode.MalformedPacket);
    await once(c.peer, 'end');
    const ok = client(broker, 4);
    ok.peer.write(
      ok.gen({
        cmd: 'connect',
        protocolId: 'MQTT',
        protocolVersion: 4,
        clientId: 'after',
        clean: true,
        keepalive: 0,
      }),
    );
    await until(() => ok.packets.length === 1);
    ok.peer.destroy();
  });

  test('[MQTT-3.1.2-2] MQTT 3.1 (MQIsdp, level 3) connects and round-trips', async () => {
    const broker = await memoryBroker();
    brokers.push(broker);
    const c = client(broker, 4);
    const g3 = (p: mqttPacket.Packet) => mqttPacket.generate(p, { protocolVersion: 3 });
    c.peer.write(
      g3({
        cmd: 'connect',
        protocolId: 'MQIsdp',
        protocolVersion: 3,
        clientId: 'old31',
        clean: true,
        keepalive: 0,
      }),
    );
    c.peer.write(g3({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'v3/t', qos: 0 }] }));
    c.peer.write(
      g3({ cmd: 'publish', topic: 'v3/t', payload: Buffer.from('hi'), qos: 0, retain: false, dup: false }),
    );
    await until(() => c.packets.length === 3);
    assert.equal((c.packets[0] as mqttPacket.IConnackPacket).returnCode, 0);
    assert.equal((c.packets[2] as mqttPacket.IPublishPacket).payload.toString(), 'hi');
    c.peer.destroy();
  });

  test('[MQTT-4.3.3-?] a resent QoS 2 PUBLISH (DUP) before PUBREL is not delivered twice', async () => {
    const broker = await memoryBroker();
    brokers.push(broker);
    const c = client(broker, 4);
    c.peer.write(
      c.gen({
        cmd: 'connect',
        protocolId: 'MQTT',
        protocolVersion: 4,
        clientId: 'q2',
        clean: true,
        keepalive: 0,
      }),
    );
    c.peer.write(c.gen({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'q2/t', qos: 0 }] }));
    const pub = {
      cmd: 'publish',
      topic: 'q2/t',
      payload: Buffer.from('once'),
      qos: 2,
      messageId: 9,
      retain: false,
    } as const;
    c.peer.write(c.gen({ ...pub, dup: false }));
    c.peer.write(c.gen({ ...pub, dup: true }));
    c.peer.write(c.gen({ cmd: 'pubrel', messageId: 9 }));
    c.peer.write(c.gen({ cmd: 'pingreq' }));
    await until(() => c.packets.some((p) => p.cmd === 'pingresp'));
    assert.equal(c.packets.filter((p) => p.cmd === 'publish').length, 1);
    assert.equal(c.packets.filter((p) => p.cmd === 'pubrec').length, 2);
    assert.equal(c.packets.filter((p) => p.cmd === 'pubcomp').length, 1);
    c.peer.destroy();
  });
});
