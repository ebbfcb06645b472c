/**
 * The hand-written CONNECT decoder (codec.ts `decodeConnect`) against mqtt-packet: on generated
 * v3.1 / v3.1.1 CONNECTs, intact and with one byte corrupted, both must agree on accept/reject and
 * on every decoded field. Seeded, so a failure reproduces.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import mqtt from 'mqtt-packet';
import { decodeConnect, parseWithMqttPacket } from '../../src/protocol/codec.js';

/** mulberry32: small deterministic PRNG. */
function prng(seed: number): (n: number) => number {
  let a = seed >>> 0;
  return (n) => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return Math.floor((((t ^ (t >>> 14)) >>> 0) / 4294967296) * n);
  };
}

function fields(p: mqtt.Packet) {
  const c = p as mqtt.IConnectPacket;
  return {
    protocolId: c.protocolId,
    protocolVersion: c.protocolVersion,
    clean: c.clean,
    keepalive: c.keepalive,
    clientId: c.clientId,
    will: c.will
      ? {
          topic: c.will.topic,
          payload: Buffer.from(c.will.payload as Buffer).toString('hex'),
          qos: c.will.qos,
          retain: c.will.retain,
        }
      : undefined,
    username: c.username,
    password: c.password ? Buffer.from(c.password).toString('hex') : undefined,
  };
}

test('CONNECT decoder agrees with mqtt-packet on 20,000 generated v3.1/v3.1.1 packets', () => {
  const rnd = prng(20261123);
  let accepted = 0;
  let rejected = 0;
  for (let i = 0; i < 20_000; i++) {
    const v = rnd(2) === 0 ? 3 : 4;
    const packet: mqtt.IConnectPacket = {
      cmd: 'connect',
      protocolId: v === 3 ? 'MQIsdp' : 'MQTT',
      protocolVersion: v,
      clean: rnd(2) === 1,
      keepalive: rnd(65536),
      clientId: ['', 'a', 'dev-ü-1', 'x'.repeat(rnd(300))][rnd(4)]!,
    };
    if (rnd(2) === 1) {
      packet.will = {
        topic: `t/${rnd(100)}`,
        payload: Buffer.alloc(rnd(200), 7),
        qos: rnd(3) as mqtt.QoS,
        retain: rnd(2) === 1,
      };
    }
    if (rnd(2) === 1) {
      packet.username = `user${rnd(9)}`;
      if (rnd(2) === 1) packet.password = Buffer.from(`pw${rnd(99)}`);
    }
    let frame: Buffer;
    try {
      frame = Buffer.from(mqtt.generate(packet));
    } catch {
      continue; // mqtt-packet will not build it (e.g. an empty client id in 3.1)
    }
    if (rnd(3) === 0) frame[rnd(frame.length)] = rnd(256);
    const fast = decodeConnect(frame);
    const reference = parseWithMqttPacket(frame, 4);
    const hex = frame.toString('hex');
    if ('error' in reference) {
      assert.ok('error' in fast, `accepted what mqtt-packet rejects: ${hex}`);
      rejected++;
      continue;
    }
    assert.ok(!('error' in fast), `rejected what mqtt-packet accepts: ${hex}`);
    assert.deepEqual(fields(fast), fields(reference), hex);
    accepted++;
  }
  // Both outcomes were exercised.
  assert.ok(accepted > 10_000 && rejected > 100, `accepted ${accepted}, rejected ${rejected}`);
});
