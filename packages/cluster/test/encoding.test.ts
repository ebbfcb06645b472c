/** Issue 15: MQTT names ↔ NATS subjects and KV keys, and the inter-node envelope (no NATS needed). */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  decodeEnvelope,
  decodeTopic,
  encodeEnvelope,
  encodeTopic,
  filterSubjects,
  mqttMatches,
  publishSubject,
} from '../src/index.js';

const NATS_TOKEN = /^[^\s.*>]+$/;
const KV_KEY = /^[-/_=.a-zA-Z0-9]+$/;

describe('subject and key encoding', () => {
  const topics = ['a/b/c', 'a.b/c d', '/leading', 'trailing/', '//', 'ü/ß/日本', 'x/*/>', '=x/-/_', '$SYS/x'];

  test('every topic round-trips and is a valid NATS subject and KV key', () => {
    for (const t of topics) {
      const key = encodeTopic(t);
      assert.equal(decodeTopic(key), t, t);
      assert.match(key, KV_KEY, t);
      for (const token of key.split('.')) assert.match(token, NATS_TOKEN, `${t}: ${token}`);
    }
  });

  test('plain levels stay readable; QoS 0 and QoS 1/2 use their own subject space', () => {
    assert.equal(publishSubject('bw', false, 'fleet/d1/telemetry'), 'bw.0.fleet.d1.telemetry');
    assert.equal(publishSubject('bw', true, 'fleet/d1/telemetry'), 'bw.1.fleet.d1.telemetry');
  });

  test('filters map onto subjects that cover what MQTT matches: + is *, a/# is a and a.>', () => {
    assert.deepEqual(filterSubjects('bw', 'a/+/c', '0'), ['bw.0.a.*.c']);
    assert.deepEqual(filterSubjects('bw', 'a/#', '0'), ['bw.0.a', 'bw.0.a.>']);
    assert.deepEqual(filterSubjects('bw', '#'), ['bw.*.>']);
    assert.deepEqual(filterSubjects('bw', 'a.b/+', '1'), [`bw.1.${encodeTopic('a.b')}.*`]);
  });

  test('the MQTT matcher used on replay: wildcards, parent level, and never $ topics for +/#', () => {
    assert.equal(mqttMatches('a/+/c', 'a/b/c'), true);
    assert.equal(mqttMatches('a/#', 'a'), true);
    assert.equal(mqttMatches('a/#', 'a/b/c'), true);
    assert.equal(mqttMatches('a/+', 'a/b/c'), false);
    assert.equal(mqttMatches('#', '$SYS/x'), false); // [MQTT-4.7.2-1]
    assert.equal(mqttMatches('+/x', '$SYS/x'), false);
    assert.equal(mqttMatches('$SYS/#', '$SYS/x'), true);
  });
});

describe('envelope', () => {
  test('a message with every field round-trips', () => {
    const msg = {
      topic: 'fleet/ü/x',
      payload: Buffer.from([0, 1, 2, 255]),
      qos: 2 as const,
      retain: true,
      properties: {
        contentType: 'application/cbor',
        correlationData: Buffer.from('corr'),
        userProperties: { a: 'b' },
      },
      expiresAt: 1_800_000_000_123,
      publisherId: 'dev-1',
      encoded: null,
    };
    const back = decodeEnvelope(encodeEnvelope(msg, 'node-a'));
    assert.deepEqual({ ...back, payload: Buffer.from(back.payload) }, msg);
  });

  test('a bare QoS 0 message round-trips; garbage is refused, not misread', () => {
    const msg = {
      topic: 't',
      payload: Buffer.alloc(0),
      qos: 0 as const,
      retain: false,
      properties: null,
      expiresAt: null,
      publisherId: null,
      encoded: null,
    };
    assert.deepEqual(decodeEnvelope(encodeEnvelope(msg)), msg);
    assert.throws(() => decodeEnvelope(Buffer.from('hello world')), /not a breakwater envelope/);
  });
});
