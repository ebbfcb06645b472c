/**
 * Each sink against its real service: PostgreSQL (127.0.0.1:5432, db test), NATS JetStream
 * (127.0.0.1:4222), Redis (127.0.0.1:6379). Skipped with a message when a service is down, failing
 * under CI=true. Each test uses names of its own (schema, stream, key) and removes them.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { validateConfig } from '@breakwater/broker';
import { requireService } from '@breakwater/testkit';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { Redis } from 'ioredis';
import pg from 'pg';
import { NatsSink, natsTokens, PostgresSink, RedisSink } from '../src/index.js';
import type { BufferedMessage } from '../src/types.js';

const PG_URL = 'postgres://postgres@127.0.0.1:5432/test';
const tag = `${process.pid}_${Date.now().toString(36)}`;

function sinkConfig(type: 'postgres' | 'nats' | 'redis', config: Record<string, unknown>) {
  const c = validateConfig({ integration: { sinks: { [type]: { s: config } } } }).integration.sinks;
  return (c[type] as Record<string, never>).s;
}

function messages(payloads: string[], firstId = 1): BufferedMessage[] {
  return payloads.map((p, i) => ({
    seq: i + 1,
    msgId: firstId + i,
    rule: 'r',
    topic: `devices/d${i}/telemetry`,
    payload: Buffer.from(p),
    publisher: `d${i}`,
    receivedAt: 1_700_000_000_000 + i,
  }));
}

describe('postgres sink', () => {
  it('inserts a batch into the mapped table, ignores a redelivered batch, rejects only the bad row', async (t) => {
    if (!(await requireService(t, 'PostgreSQL', '127.0.0.1', 5432))) return;
    const schema = `bw_sink_${tag}`;
    const admin = new pg.Client({ connectionString: PG_URL });
    await admin.connect();
    after(async () => {
      await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      await admin.end();
    });
    await admin.query(`CREATE SCHEMA ${schema}`);
    await admin.query(
      `CREATE TABLE ${schema}.telemetry (msg_id bigint PRIMARY KEY, device text, topic text, level1 text, body jsonb, temp double precision, at timestamptz)`,
    );
    const sink = new PostgresSink(
      'pg',
      sinkConfig('postgres', {
        url: PG_URL,
        table: `${schema}.telemetry`,
        columns: {
          msg_id: '$id',
          device: '$publisher',
          topic: '$topic',
          level1: '$topic.1',
          body: '$json',
          temp: '$json.temp',
          at: '$receivedAt',
        },
        onConflict: 'ignore',
      }),
    );
    after(() => sink.close());
    const batch = messages(['{"temp":21.5}', '{"temp":22}', '{"temp":23}']);
    assert.deepEqual(await sink.deliver(batch), { rejected: [] });
    assert.deepEqual(await sink.deliver(batch), { rejected: [] }, 'redelivery: ON CONFLICT DO NOTHING');
    const rows = await admin.query(
      `SELECT msg_id, device, topic, level1, body, temp, at FROM ${schema}.telemetry ORDER BY msg_id`,
    );
    assert.equal(rows.rowCount, 3);
    assert.deepEqual(rows.rows[0], {
      msg_id: '1',
      device: 'd0',
      topic: 'devices/d0/telemetry',
      level1: 'd0',
      body: { temp: 21.5 },
      temp: 21.5,
      at: new Date(1_700_000_000_000),
    });
    // A payload jsonb refuses (22P02) among good ones: only that one is rejected.
    const mixed = messages(['{"temp":1}', 'not json {', '{"temp":3}', '{"temp":4}'], 10);
    const out = await sink.deliver(mixed);
    assert.equal(out.rejected.length, 1);
    assert.equal(out.rejected[0]!.index, 1);
    assert.equal((out.rejected[0]!.error as Error & { code?: string }).code, 'BW_ERR_SINK_REJECTED');
    const count = await admin.query(`SELECT count(*)::int AS n FROM ${schema}.telemetry`);
    assert.equal(count.rows[0].n, 6);
  });

  it('is unavailable (not rejecting) while the table does not exist or the server is unreachable', async (t) => {
    if (!(await requireService(t, 'PostgreSQL', '127.0.0.1', 5432))) return;
    const missing = new PostgresSink(
      'pg',
      sinkConfig('postgres', { url: PG_URL, table: `no_such_table_${tag}`, columns: { a: '$id' } }),
    );
    after(() => missing.close());
    await assert.rejects(
      missing.deliver(messages(['x'])),
      (err: Error & { code?: string }) => err.code === 'BW_ERR_SINK_UNAVAILABLE',
    );
    const down = new PostgresSink(
      'pg',
      sinkConfig('postgres', {
        url: 'postgres://postgres@127.0.0.1:1/test',
        table: 't',
        columns: { a: '$id' },
        timeoutMs: 1000,
      }),
    );
    after(() => down.close());
    await assert.rejects(
      down.deliver(messages(['x'])),
      (err: Error & { code?: string }) => err.code === 'BW_ERR_SINK_UNAVAILABLE',
    );
  });
});

describe('nats jetstream sink', () => {
  it('publishes each message to the stream once, even when a batch is delivered twice', async (t) => {
    if (!(await requireService(t, 'NATS', '127.0.0.1', 4222))) return;
    const nc = await connect({ servers: '127.0.0.1:4222' });
    const jsm = await jetstreamManager(nc);
    const stream = `BW_SINK_${tag}`;
    await jsm.streams.add({ name: stream, subjects: [`bwtest.${tag}.>`] });
    after(async () => {
      await jsm.streams.delete(stream).catch(() => {});
      await nc.close();
    });
    const sink = new NatsSink(
      'js',
      sinkConfig('nats', { servers: ['nats://127.0.0.1:4222'], subject: `bwtest.${tag}.{topic}` }),
    );
    after(() => sink.close());
    const batch = messages(['a', 'b', 'c']);
    assert.deepEqual(await sink.deliver(batch), { rejected: [] });
    assert.deepEqual(await sink.deliver(batch), { rejected: [] });
    const info = await jsm.streams.info(stream);
    assert.equal(info.state.messages, 3, 'Nats-Msg-Id deduplicated the second delivery');
    const first = await jsm.streams.getMessage(stream, { seq: 1 });
    assert.ok(first);
    assert.equal(first.subject, `bwtest.${tag}.devices.d0.telemetry`);
    assert.equal(first.header.get('bw-topic'), 'devices/d0/telemetry');
    assert.equal(Buffer.from(first.data).toString(), 'a');
  });

  it('is unavailable when no stream takes the subject, or the server is unreachable', async (t) => {
    if (!(await requireService(t, 'NATS', '127.0.0.1', 4222))) return;
    const nostream = new NatsSink(
      'js',
      sinkConfig('nats', { subject: `nostream.${tag}.{topic}`, timeoutMs: 1000 }),
    );
    after(() => nostream.close());
    await assert.rejects(
      nostream.deliver(messages(['x'])),
      (err: Error & { code?: string }) => err.code === 'BW_ERR_SINK_UNAVAILABLE',
    );
    const down = new NatsSink('js', sinkConfig('nats', { servers: ['nats://127.0.0.1:1'], timeoutMs: 500 }));
    after(() => down.close());
    await assert.rejects(
      down.deliver(messages(['x'])),
      (err: Error & { code?: string }) => err.code === 'BW_ERR_SINK_UNAVAILABLE',
    );
  });

  it('maps MQTT topics to subject tokens', () => {
    assert.equal(natsTokens('devices/d 1/temp.c'), 'devices.d_1.temp_c');
    assert.equal(natsTokens('/a//b/'), '_.a._.b._');
  });
});

describe('redis streams sink', () => {
  it('XADDs every message with its id, topic and publisher; a key of the wrong type rejects its entries only', async (t) => {
    if (!(await requireService(t, 'Redis', '127.0.0.1', 6379))) return;
    const prefix = `bwtest:${tag}:`;
    const redis = new Redis('redis://127.0.0.1:6379');
    after(async () => {
      const keys = await redis.keys(`${prefix}*`);
      if (keys.length > 0) await redis.del(...keys);
      redis.disconnect();
    });
    const sink = new RedisSink(
      'rs',
      sinkConfig('redis', { url: 'redis://127.0.0.1:6379', stream: `${prefix}{topic}`, maxLen: 1000 }),
    );
    after(() => sink.close());
    assert.deepEqual(await sink.deliver(messages(['a', 'b'])), { rejected: [] });
    const entries = await redis.xrange(`${prefix}devices/d0/telemetry`, '-', '+');
    assert.equal(entries.length, 1);
    const flat = entries[0]![1] as string[];
    const fields: Record<string, string> = {};
    for (let i = 0; i < flat.length; i += 2) fields[flat[i]!] = flat[i + 1]!;
    assert.deepEqual(fields, {
      id: '1',
      topic: 'devices/d0/telemetry',
      publisher: 'd0',
      receivedAt: '1700000000000',
      payload: 'a',
    });
    await redis.set(`${prefix}devices/d1/telemetry`, 'not a stream');
    const out = await sink.deliver(messages(['x', 'y', 'z']));
    assert.deepEqual(
      out.rejected.map((r) => r.index),
      [1],
    );
    assert.equal(await redis.xlen(`${prefix}devices/d2/telemetry`), 1);
  });

  it('is unavailable at once while Redis is unreachable (no offline queue in memory)', async (t) => {
    if (!(await requireService(t, 'Redis', '127.0.0.1', 6379))) return;
    const down = new RedisSink('rs', sinkConfig('redis', { url: 'redis://127.0.0.1:1', timeoutMs: 500 }));
    after(() => down.close());
    await assert.rejects(
      down.deliver(messages(['x'])),
      (err: Error & { code?: string }) => err.code === 'BW_ERR_SINK_UNAVAILABLE',
    );
  });
});
