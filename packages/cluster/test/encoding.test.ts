/** Issue 15: MQTT names ↔ NATS subjects and KV keys, and the inter-node envelope (no NATS needed). */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  decodeEnvelope,
  decodeEnvelopes,
  decodeTopic,
  EnvelopeBatch,
  encodeEnvelope,
  encodeTopic,
  envelopeCount,
  envelopeOrigin,
  filterSubjects,
  liveToken,
  mqttMatches,
  publishSubject,
  topicShard,
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
    assert.deepEqual(filterSubjects('bw', 'a/#', liveToken(2)), ['bw.0-2.a', 'bw.0-2.a.>']);
  });

  test('QoS 0 shards: a topic always takes one shard, topics spread over all, shard 0 is the plain subject', () => {
    assert.equal(publishSubject('bw', false, 'a/b', 0), 'bw.0.a.b');
    assert.equal(publishSubject('bw', false, 'a/b', 3), 'bw.0-3.a.b');
    assert.equal(topicShard('anything', 1), 0);
    const counts = [0, 0, 0, 0];
    for (let i = 0; i < 400; i++) {
      const s = topicShard(`bench/${i}/data`, 4);
      assert.equal(topicShard(`bench/${i}/data`, 4), s);
      counts[s]!++;
    }
    for (const c of counts) assert.ok(c > 50, `shards spread: ${counts}`);
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

  test('a batch carries its messages in order, each whole, with the node that sent them', () => {
    const batch = new EnvelopeBatch('fleet/d1/t', 'node-b', 16); // small start: the buffer has to grow
    const msgs = Array.from({ length: 50 }, (_, i) => ({
      topic: 'fleet/d1/t',
      payload: Buffer.from(`payload ${i} ${'x'.repeat(i * 7)}`),
      qos: (i % 3) as 0 | 1 | 2,
      retain: false,
      properties: i % 5 === 0 ? { userProperties: { i: String(i) } } : null,
      expiresAt: i % 4 === 0 ? 1_800_000_000_000 + i : null,
      publisherId: i % 2 === 0 ? `dev-${i}` : null,
      encoded: null,
    }));
    for (const m of msgs) batch.add(m);
    assert.equal(batch.count, 50);
    assert.equal(batch.qos2Count, msgs.filter((m) => m.qos === 2).length);
    const back = decodeEnvelopes(batch.bytes());
    assert.equal(back.length, 50);
    assert.equal(envelopeOrigin(batch.bytes()), 'node-b');
    back.forEach((m, i) => {
      assert.deepEqual({ ...m, payload: Buffer.from(m.payload) }, msgs[i]);
    });
    // A single envelope decodes as a list of one.
    assert.equal(decodeEnvelopes(encodeEnvelope(msgs[3]!, 'n')).length, 1);
    // A batch dropped unread is counted by message, from the record lengths alone.
    assert.equal(envelopeCount(batch.bytes()), 50);
    assert.equal(envelopeCount(encodeEnvelope(msgs[3]!, 'n')), 1);
    assert.equal(envelopeCount(Buffer.from('not an envelope')), 0);
  });

  test('a truncated batch is refused, not misread', () => {
    const batch = new EnvelopeBatch('t', 'n');
    const m = {
      topic: 't',
      payload: Buffer.from('abc'),
      qos: 0 as const,
      retain: false,
      properties: null,
      expiresAt: null,
      publisherId: null,
      encoded: null,
    };
    batch.add(m);
    batch.add(m);
    const bytes = batch.bytes();
    assert.throws(() => decodeEnvelopes(bytes.subarray(0, bytes.length - 2)), /truncated/);
  });
});
