// Minimised reproducers of what the structure-aware fuzzer (issue 13, harness.ts) found, over real
// sockets: each names the spec statement it checks and the reaction the broker now gives.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type mqtt from 'mqtt-packet';
import {
  closedByBroker,
  endAllRaw,
  nextPublish,
  publish,
  rawConnected,
  rawSocket,
  subscribe,
} from '../support/raw.js';
import { type Target, target, uniqueId } from '../support/target.js';

let broker: Target;
let prefix: string;
before(async () => {
  broker = await target();
  prefix = `bw-fz/${uniqueId('reg')}`;
});
after(async () => {
  await endAllRaw();
  await broker.close();
});

const str = (s: string | Buffer) => {
  const b = Buffer.isBuffer(s) ? s : Buffer.from(s);
  return Buffer.concat([Buffer.from([b.length >> 8, b.length & 0xff]), b]);
};
const u16 = (n: number) => Buffer.from([n >> 8, n & 0xff]);
/** Fixed header + Remaining Length (1 or 2 bytes) + body. */
function packet(first: number, ...body: Buffer[]): Buffer {
  const b = Buffer.concat(body);
  const len = b.length < 128 ? [b.length] : [(b.length & 0x7f) | 0x80, b.length >> 7];
  return Buffer.concat([Buffer.from([first, ...len]), b]);
}
/** A v5 property section. */
const props = (...p: Buffer[]) => {
  const b = Buffer.concat(p);
  return Buffer.concat([Buffer.from([b.length]), b]);
};
/** Ill-formed UTF-8: an overlong encoding of '/'. */
const BAD = Buffer.from([0xc0, 0xaf]);

async function stillWorks(): Promise<void> {
  const topic = `${prefix}/alive/${uniqueId('t')}`;
  const { client } = await rawConnected(broker, 5);
  await subscribe(client, topic, { qos: 1 });
  await publish(client, topic, 'ok', { qos: 1, messageId: 7 });
  assert.equal((await nextPublish(client, topic)).payload.toString(), 'ok');
  await client.end();
}

/** After CONNACK 0: send `bytes`, expect the close (v5: DISCONNECT `reason`), nothing acknowledged. */
async function closesWith(v: 4 | 5, bytes: Buffer, reason?: number): Promise<void> {
  const { client } = await rawConnected(broker, v);
  client.send(bytes);
  const d = await closedByBroker(client);
  assert.equal(
    client.received.filter((p) => ['suback', 'unsuback', 'puback', 'pubcomp', 'pingresp'].includes(p.cmd))
      .length,
    0,
    'the bad packet was not answered',
  );
  if (v === 5) {
    assert.ok(d, 'v5: a DISCONNECT says why [MQTT-4.13.1-1]');
    if (reason !== undefined) assert.equal(d.reasonCode, reason);
  } else assert.equal(d, undefined, 'v3.1.1 has no server DISCONNECT');
  await stillWorks();
}

/** A raw CONNECT: expect a refusal CONNACK `code` (v5) or a close without CONNACK 0. */
async function connectRefused(v: 4 | 5, bytes: Buffer, code?: number): Promise<void> {
  const client = await rawSocket(broker, v);
  client.send(bytes);
  await closedByBroker(client);
  const connack = client.received.find((p) => p.cmd === 'connack') as mqtt.IConnackPacket | undefined;
  if (v === 5 && code !== undefined) assert.equal(connack?.reasonCode, code);
  else assert.notEqual(connack?.returnCode ?? connack?.reasonCode ?? -1, 0, 'not accepted');
  await stillWorks();
}

describe('fuzzer findings (regressions)', () => {
  test('MQTT 5.0 §2.2.2.2: a PUBLISH with two Response Topics crashed the broker; now DISCONNECT 0x82', async () => {
    // mqtt-packet turned the repeated property into an array; isValidTopicName(array) threw in the
    // socket's data handler, an uncaught exception that would end the process.
    const bytes = packet(
      0x30,
      str(`${prefix}/p`),
      props(Buffer.from([0x08]), str(`${prefix}/r1`), Buffer.from([0x08]), str(`${prefix}/r2`)),
      Buffer.from('x'),
    );
    await closesWith(5, bytes, 0x82);
  });

  test('MQTT 5.0 §1.5.4: a Response Topic whose length runs past the packet crashed the broker; now DISCONNECT 0x81', async () => {
    // mqtt-packet stores null for a string it cannot read and reports no error; isValidTopicName(null)
    // threw (the same with Correlation Data: Buffer.from(null)).
    await closesWith(5, packet(0x30, str(`${prefix}/p`), Buffer.from([3, 0x08, 0x00, 0x40])), 0x81);
    await closesWith(5, packet(0x30, str(`${prefix}/p`), Buffer.from([3, 0x09, 0x00, 0x40])), 0x81);
  });

  test('MQTT 5.0 §2.2.2.2: a property repeated with a falsy value (Request Response Information 0, twice): CONNACK 0x82', async () => {
    const bytes = packet(
      0x10,
      str('MQTT'),
      Buffer.from([5, 0x02]),
      u16(30),
      props(Buffer.from([0x19, 0, 0x19, 0])),
      str(uniqueId('dup')),
    );
    await connectRefused(5, bytes, 0x82);
  });

  test('MQTT 5.0 §3.1.2.11.6: Request Problem Information 2 is a Protocol Error: CONNACK 0x82', async () => {
    const bytes = packet(
      0x10,
      str('MQTT'),
      Buffer.from([5, 0x02]),
      u16(30),
      props(Buffer.from([0x17, 2])),
      str(uniqueId('rpi')),
    );
    await connectRefused(5, bytes, 0x82);
  });

  for (const v of [4, 5] as const) {
    const p = v === 5 ? props() : Buffer.alloc(0);
    test(`[MQTT-2.2.1-3] SUBSCRIBE with packet identifier 0 is refused (v${v})`, async () => {
      await closesWith(
        v,
        packet(0x82, u16(0), p, str(`${prefix}/s`), Buffer.from([1])),
        v === 5 ? 0x82 : undefined,
      );
    });
    test(`[MQTT-2.2.1-3] UNSUBSCRIBE with packet identifier 0 is refused (v${v})`, async () => {
      await closesWith(v, packet(0xa2, u16(0), p, str(`${prefix}/s`)), v === 5 ? 0x82 : undefined);
    });
    test(`[MQTT-1.5.4-1] ill-formed UTF-8 in a SUBSCRIBE topic filter is a Malformed Packet (v${v})`, async () => {
      const filter = Buffer.concat([Buffer.from(`${prefix}/`), BAD]);
      await closesWith(v, packet(0x82, u16(1), p, str(filter), Buffer.from([1])), v === 5 ? 0x81 : undefined);
    });
    test(`[MQTT-1.5.4-1] ill-formed UTF-8 in an UNSUBSCRIBE topic filter is a Malformed Packet (v${v})`, async () => {
      const filter = Buffer.concat([Buffer.from(`${prefix}/`), BAD]);
      await closesWith(v, packet(0xa2, u16(1), p, str(filter)), v === 5 ? 0x81 : undefined);
    });
  }

  test('[MQTT-1.5.4-1] ill-formed UTF-8 in a PUBLISH User Property is a Malformed Packet (v5)', async () => {
    const bytes = packet(
      0x30,
      str(`${prefix}/p`),
      props(Buffer.from([0x26]), str('k'), str(Buffer.concat([Buffer.from('v'), BAD]))),
      Buffer.from('x'),
    );
    await closesWith(5, bytes, 0x81);
  });

  test('[MQTT-1.5.4-1] ill-formed UTF-8 in a v3.1.1 CONNECT user name: no CONNACK 0', async () => {
    const bytes = packet(
      0x10,
      str('MQTT'),
      Buffer.from([4, 0x82]),
      u16(30),
      str(uniqueId('u8')),
      str(Buffer.concat([Buffer.from('user'), BAD])),
    );
    await connectRefused(4, bytes);
  });

  test('[MQTT-3.1.2-22] v3.1.1 CONNECT with a password but no user name: no CONNACK 0', async () => {
    const bytes = packet(
      0x10,
      str('MQTT'),
      Buffer.from([4, 0x42]),
      u16(30),
      str(uniqueId('pw')),
      str('secret'),
    );
    await connectRefused(4, bytes);
  });

  test('[MQTT-3.1.2-14] CONNECT with will QoS 3: no CONNACK 0 (v3.1.1)', async () => {
    const bytes = packet(
      0x10,
      str('MQTT'),
      Buffer.from([4, 0x1e]),
      u16(30),
      str(uniqueId('wq')),
      str(`${prefix}/w`),
      str('bye'),
    );
    await connectRefused(4, bytes);
  });

  test('[MQTT-1.5.5-1] v5 PUBCOMP whose property length is a 5-byte Variable Byte Integer: DISCONNECT 0x81', async () => {
    await closesWith(5, packet(0x70, u16(9), Buffer.from([0x00, 0x80, 0x80, 0x80, 0x80, 0x00])), 0x81);
  });

  test('a v5 PUBACK longer than 255 bytes (long Reason String) completes the flow: the next QoS 1 message is delivered', async () => {
    // The hand decoder read the packet id at frame.length - frame[1], wrong once the Remaining
    // Length takes two bytes and the second is ≥ 2: the PUBACK was ignored and, with Receive Maximum 1, delivery stalled.
    const topic = `${prefix}/long-ack`;
    const { client } = await rawConnected(broker, 5, { properties: { receiveMaximum: 1 } });
    await subscribe(client, topic, { qos: 1 });
    const { client: pub } = await rawConnected(broker, 5);
    await publish(pub, topic, 'one', { qos: 1, messageId: 1 });
    await publish(pub, topic, 'two', { qos: 1, messageId: 2 });
    const first = await nextPublish(client, topic);
    assert.equal(first.payload.toString(), 'one');
    const reasonString = Buffer.concat([Buffer.from([0x1f]), str('r'.repeat(400))]);
    const propertyLength = Buffer.from([(reasonString.length & 0x7f) | 0x80, reasonString.length >> 7]);
    client.send(packet(0x40, u16(first.messageId!), Buffer.from([0x00]), propertyLength, reasonString));
    const second = await nextPublish(client, topic);
    assert.equal(second.payload.toString(), 'two');
    await client.end();
    await pub.end();
  });
});
