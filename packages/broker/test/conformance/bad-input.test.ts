// Black-box conformance: malformed packets and protocol violations after a successful CONNECT.
// Each must close that connection (v5: DISCONNECT with a reason code ≥ 0x80 first, if any), never
// crash or hang the broker, and leave other clients working.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { closedByBroker, endAllRaw, nextPublish, publish, rawConnected, subscribe } from '../support/raw.js';
import { type Target, target, uniqueId } from '../support/target.js';

let broker: Target;
let prefix: string;
before(async () => {
  broker = await target();
  prefix = `bw-conf/${uniqueId('bad')}`;
});
after(async () => {
  await endAllRaw();
  await broker.close();
});

const str = (s: string) => Buffer.concat([Buffer.from([0, Buffer.byteLength(s)]), Buffer.from(s)]);
/** Fixed header byte + one-byte remaining length + body (bodies here are < 128 bytes). */
const packet = (first: number, ...body: Buffer[]) => {
  const b = Buffer.concat(body);
  assert.ok(b.length < 128);
  return Buffer.concat([Buffer.from([first, b.length]), b]);
};
const id = (n: number) => Buffer.from([n >> 8, n & 0xff]);
const noProps = Buffer.from([0]);

/** v is the protocol version the bytes are written for; v5 bodies carry a property length. */
const cases: Array<{ name: string; v: 4 | 5; bytes: () => Buffer; reason?: number }> = [
  { name: '[MQTT-2.2.2-2] reserved packet type 0', v: 4, bytes: () => Buffer.from([0x00, 0x00]) },
  { name: '[MQTT-2.2.2-2] reserved packet type 15 (v3.1.1)', v: 4, bytes: () => Buffer.from([0xf0, 0x00]) },
  { name: '[MQTT-2.2.2-2] reserved packet type 0 (v5)', v: 5, bytes: () => Buffer.from([0x00, 0x00]) },
  {
    name: '[MQTT-3.3.1-4] PUBLISH with both QoS bits set',
    v: 4,
    bytes: () => packet(0x36, str(`${prefix}/q3`), id(1), Buffer.from('x')),
  },
  {
    name: '[MQTT-3.3.1-4] PUBLISH with both QoS bits set (v5)',
    v: 5,
    bytes: () => packet(0x36, str(`${prefix}/q3`), id(1), noProps, Buffer.from('x')),
  },
  {
    name: '[MQTT-2.3.1-1] QoS 1 PUBLISH with packet identifier 0',
    v: 4,
    bytes: () => packet(0x32, str(`${prefix}/id0`), id(0), Buffer.from('x')),
  },
  {
    name: '[MQTT-3.8.1-1] SUBSCRIBE with reserved fixed-header flags 0000',
    v: 4,
    bytes: () => packet(0x80, id(1), str(`${prefix}/s`), Buffer.from([0])),
  },
  {
    name: '[MQTT-3.8.3-3] (v3.1.1) SUBSCRIBE without any topic filter',
    v: 4,
    bytes: () => packet(0x82, id(1)),
  },
  {
    name: '[MQTT-3.8.3-4] (v3.1.1) SUBSCRIBE requested QoS 3',
    v: 4,
    bytes: () => packet(0x82, id(1), str(`${prefix}/s`), Buffer.from([3])),
  },
  {
    name: '[MQTT-3.10.1-1] UNSUBSCRIBE with reserved fixed-header flags 0000',
    v: 4,
    bytes: () => packet(0xa0, id(1), str(`${prefix}/s`)),
  },
  { name: '[MQTT-3.6.1-1] PUBREL with fixed-header flags 0000', v: 4, bytes: () => packet(0x60, id(1)) },
  {
    name: '[MQTT-4.7.1-2] (v3.1.1) SUBSCRIBE with a # that is not last (protocol violation, §4.8: close)',
    v: 4,
    bytes: () => packet(0x82, id(1), str(`${prefix}/#/x`), Buffer.from([0])),
  },
  {
    name: 'remaining length longer than 4 bytes (malformed variable byte integer)',
    v: 4,
    bytes: () => Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff, 0x7f]),
  },
  {
    name: 'v5 PUBLISH with an unknown property identifier 0x7F',
    v: 5,
    bytes: () => packet(0x30, str(`${prefix}/p`), Buffer.from([2, 0x7f, 0]), Buffer.from('x')),
  },
  {
    name: 'v5 PUBLISH whose property length runs past the packet',
    v: 5,
    bytes: () => packet(0x30, str(`${prefix}/p`), Buffer.from([60, 0x01])),
  },
  {
    name: 'v5 SUBSCRIBE with reserved subscription option bits set',
    v: 5,
    bytes: () => packet(0x82, id(1), noProps, str(`${prefix}/s`), Buffer.from([0xc0])),
  },
];

async function brokerStillWorks(): Promise<void> {
  const topic = `${prefix}/alive/${uniqueId('t')}`;
  const { client } = await rawConnected(broker, 5);
  await subscribe(client, topic, { qos: 1 });
  await publish(client, topic, 'still here', { qos: 1, messageId: 2 });
  assert.equal((await nextPublish(client, topic)).payload.toString(), 'still here');
  await client.end();
}

describe('malformed packets and protocol violations close the connection', () => {
  for (const c of cases) {
    test(c.name, async () => {
      // A bystander connection must be unaffected by its neighbour's bad input.
      const { client: bystander } = await rawConnected(broker, 4);
      const { client } = await rawConnected(broker, c.v);
      client.send(c.bytes());
      const d = await closedByBroker(client);
      assert.equal(
        client.received.filter((p) => p.cmd === 'suback' || p.cmd === 'unsuback' || p.cmd === 'puback')
          .length,
        0,
        'the bad packet was not acknowledged',
      );
      if (d) assert.ok((d.reasonCode ?? 0) >= 0x80, `DISCONNECT reason ${d.reasonCode} is an error code`);
      assert.equal(bystander.isClosed, false);
      bystander.send({ cmd: 'pingreq' });
      await bystander.next('pingresp');
      await brokerStillWorks();
    });
  }

  test('[MQTT-4.7.1-2] (v5) SUBSCRIBE with a # that is not last: SUBACK 0x8F (Topic Filter invalid) or DISCONNECT', async () => {
    const { client } = await rawConnected(broker, 5);
    client.send(packet(0x82, id(1), noProps, str(`${prefix}/#/x`), Buffer.from([0])));
    // next() rejects when the socket closes: a close is one of the two acceptable answers.
    const answer = await client.next('suback').catch(() => undefined);
    if (answer?.cmd === 'suback') assert.deepEqual(answer.granted, [0x8f]);
    else {
      const d = await closedByBroker(client);
      if (d) assert.ok((d.reasonCode ?? 0) >= 0x80);
    }
    await brokerStillWorks();
  });

  test('a truncated packet followed by a half-close does not hang or crash the broker', async () => {
    const { client } = await rawConnected(broker, 4);
    const full = packet(0x32, str(`${prefix}/trunc`), id(1), Buffer.from('payload'));
    client.socket.end(full.subarray(0, full.length - 3)); // FIN after a partial packet
    await closedByBroker(client);
    await brokerStillWorks();
  });
});
