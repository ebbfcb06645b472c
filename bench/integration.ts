/**
 * Data-integration benchmark (issue 16). Not a test.
 *
 *   npm run bench -- integration [--messages 100000] [--skip-fan-in]
 *
 * 1. Messages/s through one rule into each sink (webhook, PostgreSQL, NATS JetStream, Redis
 *    streams), each against its real service on this machine: the sink is paused, `--messages`
 *    QoS 0 messages (64-byte JSON) are published through a real broker and buffered, then the sink
 *    is resumed with no rate bound (maxPerSec 10^6, batches of 1,000) and the drain is timed. The
 *    broker, the engine and (for the webhook) the HTTP receiver share this process.
 * 2. The cost to the broker's fan-in throughput: the throughput bench's fan-in flood (100
 *    publishers -> 1 subscriber, QoS 0, `breakwater up` in its own process) with no rules, then
 *    with one rule matching every message into a PostgreSQL sink (durable buffer + delivery).
 *
 * Results: bench/results/integration.json and .md.
 */
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { type IntegrationConfig, MemoryStorage, validateConfig } from '@breakwater/broker';
import { Integration } from '@breakwater/integration';
import { startBroker as startTestBroker } from '@breakwater/testkit';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { Redis } from 'ioredis';
import mqtt from 'mqtt';
import pg from 'pg';
import { Registry } from 'prom-client';
import { machineInfo, writeResults } from './report.js';
import { runThroughput } from './scenarios/throughput.js';

const PG_URL = 'postgres://postgres@127.0.0.1:5432/test';
const SCHEMA = `bw_bench_integration_${process.pid}`;

interface SinkResult {
  sink: string;
  messages: number;
  bufferSeconds: number;
  drainSeconds: number;
  deliveredPerSec: number;
  note?: string;
}

async function sinkThroughput(
  type: 'webhook' | 'postgres' | 'nats' | 'redis',
  sinkConfig: Record<string, unknown>,
  n: number,
  log: (l: string) => void,
): Promise<SinkResult> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-integration-'));
  try {
    const config = validateConfig(
      {
        dataDir: dir,
        integration: {
          sinks: {
            [type]: {
              s: {
                ...sinkConfig,
                paused: true,
                batchSize: 1000,
                maxPerSec: 1_000_000,
                buffer: { maxMessages: n * 2 },
              },
            },
          },
          rules: [{ id: 'all', filter: 'bench/#', sinks: ['s'] }],
        },
      },
      { baseDir: dir },
    ).integration as IntegrationConfig;
    const integration = new Integration({ config, registry: new Registry() });
    const tb = await startTestBroker({ storage: integration.joinFlush(new MemoryStorage()) });
    integration.attach(tb.broker);
    const client = await mqtt.connectAsync(tb.url, { clientId: 'bench-pub' });
    const payload = Buffer.from(
      JSON.stringify({ id: 'dev-000001', seq: 123456, temp: 21.5, ok: true }).padEnd(64, ' '),
    );
    const t0 = performance.now();
    for (let i = 0; i < n; i++) {
      client.publish(`bench/d${i % 100}/data`, payload, { qos: 0 });
      if (i % 1000 === 999) await new Promise((r) => setImmediate(r));
    }
    while (integration.sink('s').queued < n) await new Promise((r) => setTimeout(r, 20));
    const bufferSeconds = (performance.now() - t0) / 1000;
    const t1 = performance.now();
    integration.resumeSink('s');
    while (integration.sink('s').queued > 0) await new Promise((r) => setTimeout(r, 10));
    const drainSeconds = (performance.now() - t1) / 1000;
    const s = integration.sink('s');
    await client.endAsync();
    await tb.close();
    await integration.close();
    const result = {
      sink: type,
      messages: n,
      bufferSeconds: round(bufferSeconds),
      drainSeconds: round(drainSeconds),
      deliveredPerSec: Math.round(s.delivered / drainSeconds),
      ...(s.failedAttempts > 0
        ? { note: `${s.failedAttempts} failed attempts (${s.lastError?.message})` }
        : {}),
    };
    log(
      `${type}: ${result.deliveredPerSec} msgs/s delivered (${n} in ${result.drainSeconds} s; buffered in ${result.bufferSeconds} s)`,
    );
    return result;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function round(x: number): number {
  return Math.round(x * 100) / 100;
}

export async function integrationCommand(argv: string[], log: (l: string) => void): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      messages: { type: 'string', default: '100000' },
      'skip-fan-in': { type: 'boolean', default: false },
    },
  });
  const n = Number(values.messages);
  const started = new Date();
  const admin = new pg.Client({ connectionString: PG_URL });
  await admin.connect();
  await admin.query(`DROP SCHEMA IF EXISTS ${SCHEMA} CASCADE; CREATE SCHEMA ${SCHEMA}`);
  await admin.query(
    `CREATE TABLE ${SCHEMA}.t (msg_id bigint PRIMARY KEY, device text, topic text, body jsonb, at timestamptz)`,
  );
  await admin.query(`CREATE TABLE ${SCHEMA}.fanin (msg_id bigint PRIMARY KEY, topic text, body bytea)`);
  const nc = await connect({ servers: '127.0.0.1:4222' });
  const jsm = await jetstreamManager(nc);
  const stream = `BW_BENCH_${process.pid}`;
  await jsm.streams.add({ name: stream, subjects: [`bwbench.${process.pid}.>`] });
  const redis = new Redis('redis://127.0.0.1:6379');
  const hook = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => res.writeHead(200).end());
  });
  hook.listen(0, '127.0.0.1');
  await once(hook, 'listening');
  const hookUrl = `http://127.0.0.1:${(hook.address() as AddressInfo).port}/in`;
  const sinks: SinkResult[] = [];
  try {
    sinks.push(await sinkThroughput('webhook', { url: hookUrl, secret: 'bench-secret-0123456789' }, n, log));
    sinks.push(
      await sinkThroughput(
        'postgres',
        {
          url: PG_URL,
          table: `${SCHEMA}.t`,
          columns: { msg_id: '$id', device: '$publisher', topic: '$topic', body: '$json', at: '$receivedAt' },
          onConflict: 'ignore',
          poolSize: 4,
        },
        n,
        log,
      ),
    );
    sinks.push(await sinkThroughput('nats', { subject: `bwbench.${process.pid}.{topic}` }, n, log));
    sinks.push(
      await sinkThroughput(
        'redis',
        { url: 'redis://127.0.0.1:6379', stream: `bwbench:${process.pid}`, maxLen: n * 2 },
        n,
        log,
      ),
    );
  } finally {
    hook.close();
    await jsm.streams.delete(stream).catch(() => {});
    await nc.close();
    await redis.del(`bwbench:${process.pid}`);
    redis.disconnect();
  }

  const fanIn: Array<{ rules: string; receivedPerSec: number | null; brokerCpuPercent: number | null }> = [];
  if (!values['skip-fan-in']) {
    const base = {
      brokers: ['breakwater'] as const,
      scenarios: ['fan-in'] as const,
      breakwater: 'auto' as const,
      warmupMs: 2_000,
      windowMs: 6_000,
      latencyLoad: 0.5,
      payloadSize: 64,
      qos1Window: 64,
      runTimeoutMs: 120_000,
    };
    const rulesOn = [
      'integration:',
      '  sinks:',
      '    postgres:',
      '      warehouse:',
      `        url: ${PG_URL}`,
      `        table: ${SCHEMA}.fanin`,
      '        columns: { msg_id: $id, topic: $topic, body: $payload }',
      '        onConflict: ignore',
      '        maxPerSec: 50000',
      '        batchSize: 1000',
      '        poolSize: 4',
      '  rules:',
      "    - { id: all, filter: 'bench/#', sinks: [warehouse] }",
      '',
    ].join('\n');
    for (const [label, breakwaterConfig] of [
      ['off', undefined],
      ['on (1 rule → PostgreSQL)', rulesOn],
    ] as const) {
      const out = await runThroughput({ ...base, ...(breakwaterConfig ? { breakwaterConfig } : {}) }, log);
      const r = out.scenarios[0]?.flood.breakwater;
      fanIn.push({
        rules: label,
        receivedPerSec: r?.receivedPerSec ?? null,
        brokerCpuPercent: r?.brokerCpuPercent ?? null,
      });
      log(`fan-in, rules ${label}: ${r?.receivedPerSec ?? 'n/a'} msgs/s received`);
    }
  }
  const rows = await admin.query(`SELECT count(*)::int AS n FROM ${SCHEMA}.fanin`);
  await admin.query(`DROP SCHEMA IF EXISTS ${SCHEMA} CASCADE`);
  await admin.end();

  const md = [
    '# Data integration benchmark',
    '',
    `Run ${started.toISOString()}. Not a test; numbers from one run on a shared machine (see the machine line).`,
    '',
    '## Messages/s through one rule into each sink',
    '',
    `${n} QoS 0 messages (64-byte JSON) buffered with the sink paused, then drained with no rate bound (batches of 1,000); broker, engine and webhook receiver in one process; each service on this machine.`,
    '',
    '| sink | delivered msgs/s | drain (s) | buffering (s) | note |',
    '|---|---|---|---|---|',
    ...sinks.map(
      (s) =>
        `| ${s.sink} | ${s.deliveredPerSec} | ${s.drainSeconds} | ${s.bufferSeconds} | ${s.note ?? ''} |`,
    ),
    '',
    '## Cost to the broker’s fan-in throughput',
    '',
    'The throughput bench’s fan-in flood (100 publishers → 1 subscriber on `bench/+/data`, QoS 0, 64 bytes; `breakwater up` in its own process), rules off and on (one rule matching every message into a PostgreSQL sink, maxPerSec 50,000).',
    '',
    '| rules | subscriber msgs/s | broker CPU % |',
    '|---|---|---|',
    ...fanIn.map((f) => `| ${f.rules} | ${f.receivedPerSec ?? 'n/a'} | ${f.brokerCpuPercent ?? 'n/a'} |`),
    '',
    `Rows the PostgreSQL sink inserted during the rules-on flood: ${rows.rows[0].n}.`,
    '',
  ].join('\n');
  writeResults(
    'integration',
    {
      machine: machineInfo(),
      startedAt: started.toISOString(),
      messages: n,
      sinks,
      fanIn,
      fanInRows: rows.rows[0].n,
    },
    md,
  );
  log('results: bench/results/integration.json, bench/results/integration.md');
  return 0;
}
