/**
 * Throughput under flood and latency at a fixed offered load, for each broker, per scenario:
 *   fan-in      100 publishers -> 1 subscriber on `bench/+/data`, QoS 0
 *   fan-out     1 publisher -> 1,000 subscribers on one topic, QoS 0
 *   qos1-pairs  50 publisher -> own subscriber pairs, QoS 1 both ways
 * Pass 1 floods every broker and measures delivered msgs/s at the subscribers over a window after
 * a warm-up. Pass 2 offers a fixed load (a fraction of the slowest broker's flood rate) and
 * measures end-to-end latency from a send timestamp in the payload. Under flood, latency would only
 * measure queue depth, so it is not reported there.
 * Each (broker, scenario, pass) gets a fresh broker process and fresh load-generator processes.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { type BreakwaterLaunch, type BrokerName, type RunningBroker, startBroker } from '../brokers.js';
import { WorkerPool } from '../loadgen/pool.js';
import type { ClientSpec, Stats } from '../loadgen/protocol.js';
import { fmtNumber, fmtRatio, type MachineInfo, machineMarkdown, table } from '../report.js';

export const ScenarioIds = ['fan-in', 'fan-out', 'qos1-pairs'] as const;
export type ScenarioId = (typeof ScenarioIds)[number];

interface Scenario {
  readonly id: ScenarioId;
  readonly title: string;
  /** Clients per worker process; publishers and subscribers live in different processes. */
  readonly assignment: ClientSpec[][];
  /** Deliveries per publish (the fan-out factor). */
  readonly fanOut: number;
}

function scenario(id: ScenarioId): Scenario {
  switch (id) {
    case 'fan-in': {
      const pubs: ClientSpec[] = Array.from({ length: 100 }, (_, i) => ({
        id: `fi-pub-${i}`,
        publish: { topic: `bench/${i}/data`, qos: 0 },
      }));
      const sub: ClientSpec = { id: 'fi-sub', subscribe: { filter: 'bench/+/data', qos: 0 } };
      return {
        id,
        title: 'fan-in: 100 publishers -> 1 subscriber on bench/+/data, QoS 0',
        assignment: [pubs, [sub]],
        fanOut: 1,
      };
    }
    case 'fan-out': {
      const pub: ClientSpec = { id: 'fo-pub', publish: { topic: 'bench/fanout', qos: 0 } };
      const subs: ClientSpec[] = Array.from({ length: 1000 }, (_, i) => ({
        id: `fo-sub-${i}`,
        subscribe: { filter: 'bench/fanout', qos: 0 },
      }));
      return {
        id,
        title: 'fan-out: 1 publisher -> 1,000 subscribers, QoS 0',
        assignment: [[pub], subs],
        fanOut: 1000,
      };
    }
    case 'qos1-pairs': {
      const pubs: ClientSpec[] = [];
      const subs: ClientSpec[] = [];
      for (let i = 0; i < 50; i++) {
        pubs.push({ id: `q1-pub-${i}`, publish: { topic: `bench/pair/${i}`, qos: 1 } });
        subs.push({ id: `q1-sub-${i}`, subscribe: { filter: `bench/pair/${i}`, qos: 1 } });
      }
      return {
        id,
        title: '50 QoS 1 pairs: publisher -> own subscriber, QoS 1 both ways',
        assignment: [pubs, subs],
        fanOut: 1,
      };
    }
  }
}

export interface ThroughputOptions {
  readonly brokers: readonly BrokerName[];
  readonly scenarios: readonly ScenarioId[];
  readonly breakwater: BreakwaterLaunch;
  readonly warmupMs: number;
  readonly windowMs: number;
  /** Offered load for the latency pass, as a fraction of the slowest broker's flood rate. */
  readonly latencyLoad: number;
  readonly payloadSize: number;
  readonly qos1Window: number;
  /** Hard limit for one (broker, scenario, pass) run. */
  readonly runTimeoutMs: number;
  /** `breakwater up --config` content (the integration bench runs fan-in with rules on and off). */
  readonly breakwaterConfig?: string;
}

export interface FloodResult {
  readonly ok: boolean;
  readonly note: string | null;
  /** Messages received per second by all subscribers together. */
  readonly receivedPerSec: number | null;
  readonly sentPerSec: number | null;
  readonly brokerCpuPercent: number | null;
  readonly brokerRssKiB: number | null;
  readonly loadgenCpuPercent: number | null;
}

export interface LatencyResult {
  readonly ok: boolean;
  readonly note: string | null;
  readonly offeredPublishPerSec: number;
  readonly receivedPerSec: number | null;
  readonly p50Ms: number | null;
  readonly p99Ms: number | null;
  readonly samples: number;
  readonly skippedPublishes: number;
  readonly brokerCpuPercent: number | null;
}

export interface ScenarioResult {
  readonly id: ScenarioId;
  readonly title: string;
  readonly flood: Partial<Record<BrokerName, FloodResult>>;
  readonly latency: Partial<Record<BrokerName, LatencyResult>>;
}

export interface BrokerInfo {
  readonly version: string;
  readonly launch: string;
}

function sum(stats: Stats[], f: (s: Stats) => number): number {
  return stats.reduce((a, s) => a + f(s), 0);
}

/** Rate per second over a window, summed over workers (each measured on its own clock). */
function ratePerSec(a: Stats[], b: Stats[], f: (s: Stats) => number): number {
  let total = 0;
  for (let i = 0; i < a.length; i++) {
    const dt = ((b[i] as Stats).atMs - (a[i] as Stats).atMs) / 1000;
    if (dt > 0) total += (f(b[i] as Stats) - f(a[i] as Stats)) / dt;
  }
  return total;
}

/** Runs `body` against a fresh broker and load generator, tearing both down whatever happens. */
async function withSetup<T>(
  name: BrokerName,
  sc: Scenario,
  opts: ThroughputOptions,
  infos: Partial<Record<BrokerName, BrokerInfo>>,
  body: (broker: RunningBroker, pool: WorkerPool) => Promise<T>,
): Promise<T> {
  let broker: RunningBroker | null = null;
  let pool: WorkerPool | null = null;
  let timer: NodeJS.Timeout | undefined;
  try {
    broker = await startBroker(
      name,
      opts.breakwater,
      opts.breakwaterConfig !== undefined ? { breakwaterConfig: opts.breakwaterConfig } : {},
    );
    infos[name] ??= { version: broker.version, launch: broker.launch };
    pool = new WorkerPool(sc.assignment.length);
    const b = broker;
    const p = pool;
    const run = (async () => {
      const setup = await p.setup(sc.assignment, {
        host: b.host,
        port: b.port,
        keepalive: 600,
        payloadSize: opts.payloadSize,
        concurrency: 100,
        qos1Window: opts.qos1Window,
        deadlineMs: 30_000,
      });
      if (setup.failed > 0)
        throw new Error(`${setup.failed} clients failed to connect/subscribe (${setup.firstError})`);
      // SUBACK means the subscription is in place, but give the broker a moment to settle.
      await sleep(300);
      return body(b, p);
    })();
    // If the timeout wins, `run` still settles later (its requests fail once the pool closes).
    run.catch(() => {});
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`timed out after ${opts.runTimeoutMs} ms`)),
        opts.runTimeoutMs,
      );
    });
    return await Promise.race([run, timeout]);
  } finally {
    clearTimeout(timer);
    await pool?.close();
    await broker?.stop();
  }
}

async function flood(
  name: BrokerName,
  sc: Scenario,
  opts: ThroughputOptions,
  infos: Partial<Record<BrokerName, BrokerInfo>>,
): Promise<FloodResult> {
  try {
    return await withSetup(name, sc, opts, infos, async (broker, pool) => {
      await pool.all({ op: 'flood' });
      await sleep(opts.warmupMs);
      const cpu0 = broker.cpuMs();
      const t0 = performance.now();
      const s0 = await pool.stats();
      await sleep(opts.windowMs);
      const s1 = await pool.stats();
      const cpu1 = broker.cpuMs();
      const wall = performance.now() - t0;
      const rss = broker.rssKiB();
      await pool.all({ op: 'halt' });
      if (!broker.alive()) throw new Error('broker exited during the flood');
      const closed = sum(s1, (s) => s.closedUnexpectedly);
      const received = ratePerSec(s0, s1, (s) => s.received);
      const notes: string[] = [];
      if (closed > 0) notes.push(`${closed} connections closed by the broker`);
      if (received === 0) notes.push('no messages delivered in the window');
      return {
        ok: received > 0,
        note: notes.length ? notes.join('; ') : null,
        receivedPerSec: received,
        sentPerSec: ratePerSec(s0, s1, (s) => s.sent),
        brokerCpuPercent: ((cpu1 - cpu0) / wall) * 100,
        brokerRssKiB: rss,
        loadgenCpuPercent: ((sum(s1, (s) => s.cpuMs) - sum(s0, (s) => s.cpuMs)) / wall) * 100,
      };
    });
  } catch (err) {
    return {
      ok: false,
      note: (err as Error).message,
      receivedPerSec: null,
      sentPerSec: null,
      brokerCpuPercent: null,
      brokerRssKiB: null,
      loadgenCpuPercent: null,
    };
  }
}

async function latency(
  name: BrokerName,
  sc: Scenario,
  opts: ThroughputOptions,
  infos: Partial<Record<BrokerName, BrokerInfo>>,
  publishPerSec: number,
): Promise<LatencyResult> {
  try {
    return await withSetup(name, sc, opts, infos, async (broker, pool) => {
      // Publishers live in worker 0.
      await pool.rate([publishPerSec]);
      await sleep(opts.warmupMs);
      await pool.all({ op: 'latency-reset' });
      const cpu0 = broker.cpuMs();
      const t0 = performance.now();
      const s0 = await pool.stats();
      await sleep(opts.windowMs);
      const s1 = await pool.stats();
      const cpu1 = broker.cpuMs();
      const wall = performance.now() - t0;
      await pool.all({ op: 'halt' });
      const h = await pool.latency();
      if (!broker.alive()) throw new Error('broker exited during the run');
      const p50 = h.quantile(0.5);
      const p99 = h.quantile(0.99);
      const skipped = sum(s1, (s) => s.skipped) - sum(s0, (s) => s.skipped);
      const received = ratePerSec(s0, s1, (s) => s.received);
      const expected = publishPerSec * sc.fanOut;
      const notes: string[] = [];
      if (skipped > 0) notes.push(`${skipped} publishes skipped (QoS 1 window full)`);
      if (received < expected * 0.95)
        notes.push(`received ${fmtNumber(received)}/s of ${fmtNumber(expected)}/s offered`);
      return {
        ok: h.total > 0,
        note: notes.length ? notes.join('; ') : null,
        offeredPublishPerSec: publishPerSec,
        receivedPerSec: received,
        p50Ms: p50 === null ? null : p50 / 1000,
        p99Ms: p99 === null ? null : p99 / 1000,
        samples: h.total,
        skippedPublishes: skipped,
        brokerCpuPercent: ((cpu1 - cpu0) / wall) * 100,
      };
    });
  } catch (err) {
    return {
      ok: false,
      note: (err as Error).message,
      offeredPublishPerSec: publishPerSec,
      receivedPerSec: null,
      p50Ms: null,
      p99Ms: null,
      samples: 0,
      skippedPublishes: 0,
      brokerCpuPercent: null,
    };
  }
}

export async function runThroughput(
  opts: ThroughputOptions,
  log: (line: string) => void,
): Promise<{ scenarios: ScenarioResult[]; brokers: Partial<Record<BrokerName, BrokerInfo>> }> {
  const infos: Partial<Record<BrokerName, BrokerInfo>> = {};
  const results: ScenarioResult[] = [];
  for (const id of opts.scenarios) {
    const sc = scenario(id);
    const result: ScenarioResult = { id, title: sc.title, flood: {}, latency: {} };
    results.push(result);
    for (const name of opts.brokers) {
      const r = await flood(name, sc, opts, infos);
      result.flood[name] = r;
      log(
        `${id} flood ${name}: ${r.ok ? `${fmtNumber(r.receivedPerSec)} msgs/s received, broker CPU ${fmtNumber(r.brokerCpuPercent)}%` : 'n/a'}${r.note ? ` (${r.note})` : ''}`,
      );
    }
    const rates = opts.brokers
      .map((n) => result.flood[n])
      .filter((r): r is FloodResult => r?.ok === true)
      .map((r) => r.receivedPerSec as number);
    if (rates.length === 0) {
      log(`${id}: no broker completed the flood; skipping latency`);
      continue;
    }
    // Offered publish rate: a fraction of the slowest broker's delivered rate, per publish.
    const publishPerSec = Math.max(1, Math.round((Math.min(...rates) * opts.latencyLoad) / sc.fanOut));
    for (const name of opts.brokers) {
      const r = await latency(name, sc, opts, infos, publishPerSec);
      result.latency[name] = r;
      log(
        `${id} latency ${name} @ ${publishPerSec} publishes/s: ${r.ok ? `p50 ${fmtNumber(r.p50Ms, 2)} ms, p99 ${fmtNumber(r.p99Ms, 2)} ms` : 'n/a'}${r.note ? ` (${r.note})` : ''}`,
      );
    }
  }
  return { scenarios: results, brokers: infos };
}

/**
 * A broker well below one core during the flood was probably not limited by its own CPU (loopback
 * per-segment cost, the load generator, or other work on the host), so its msgs/s may understate it.
 */
function cpuNote(f: FloodResult): string | null {
  if (!f.ok || f.brokerCpuPercent === null || f.brokerCpuPercent >= 80) return null;
  return `broker used only ${fmtNumber(f.brokerCpuPercent)} % of a core: probably not CPU-bound`;
}

export function throughputMarkdown(
  machine: MachineInfo,
  brokers: Partial<Record<BrokerName, BrokerInfo>>,
  scenarios: readonly ScenarioResult[],
  opts: ThroughputOptions,
): string {
  const out: string[] = ['# Throughput and latency', '', machineMarkdown(machine)];
  for (const [name, info] of Object.entries(brokers))
    out.push(`- ${name} ${info.version}: \`${info.launch}\``);
  out.push(
    '',
    `Load generator: raw sockets (mqtt-packet), MQTT 3.1.1, ${opts.payloadSize}-byte payloads, publishers and subscribers in separate processes on the same host as the broker. ` +
      `Flood: ${opts.warmupMs / 1000} s warm-up, then received msgs/s (all subscribers together) over ${opts.windowMs / 1000} s. ` +
      `Latency: fixed offered load of ${Math.round(opts.latencyLoad * 100)} % of the slowest broker's flood rate, send timestamp in the payload; under flood latency would only measure queue depth, so it is not reported. ` +
      `QoS 1 publishers keep at most ${opts.qos1Window} unacknowledged messages each. ` +
      'Ratios are Breakwater / peer: above 1 is better for msgs/s, below 1 is better for latency.',
  );
  for (const sc of scenarios) {
    out.push('', `## ${sc.title}`, '');
    const bw = sc.flood.breakwater;
    const bwLat = sc.latency.breakwater;
    const offered = Object.values(sc.latency)[0]?.offeredPublishPerSec;
    const rows = Object.entries(sc.flood).map(([name, f]) => {
      const l = sc.latency[name as BrokerName];
      const peer = name !== 'breakwater';
      return [
        name,
        f.ok ? fmtNumber(f.receivedPerSec) : 'n/a',
        fmtNumber(f.brokerCpuPercent),
        l?.ok ? fmtNumber(l.p50Ms, 2) : 'n/a',
        l?.ok ? fmtNumber(l.p99Ms, 2) : 'n/a',
        peer && bw?.ok && f.ok ? fmtRatio(bw.receivedPerSec, f.receivedPerSec) : '',
        peer && bwLat?.ok && l?.ok ? fmtRatio(bwLat.p99Ms, l.p99Ms) : '',
        [f.note, cpuNote(f), l?.note].filter(Boolean).join('; '),
      ];
    });
    out.push(
      table(
        [
          'broker',
          'flood msgs/s',
          'broker CPU % (flood)',
          'p50 ms',
          'p99 ms',
          'msgs/s ratio BW/peer',
          'p99 ratio BW/peer',
          'notes',
        ],
        rows,
      ),
    );
    if (offered !== undefined) {
      out.push(
        '',
        `Latency at ${fmtNumber(offered)} publishes/s offered (${fmtNumber(offered * scenario(sc.id).fanOut)} deliveries/s).`,
      );
    }
  }
  return out.join('\n');
}
