/**
 * Soak (issue 13, part 5): Breakwater (`breakwater up`, default configuration) holds N connections
 * for an hour while they churn — devices drop without DISCONNECT and come back, churner clients
 * connect/subscribe/publish/leave with and without DISCONNECT, every device re-SUBSCRIBEs on each
 * connect and publishes QoS 1 telemetry that one sink subscriber receives. Every `sampleEveryS`
 * the broker's RSS and FD count (from /proc), heap and gauges (from its /metrics) and msgs/s are
 * sampled; the report states the slope of RSS, heap and FDs after warm-up (a leak shows as a
 * slope, not as a level) and checks that every acknowledged telemetry message reached the sink.
 *
 * The load runs in `workers` forked processes (one process may hold 20,000 FDs) over source
 * addresses 127.0.0.1-8, like the storms.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import mqtt from 'mqtt';
import { ADMISSION_OFF_CONFIG, freePort, type RunningBroker, startBroker } from '../brokers.js';
import { liveChildren } from '../loadgen/pool.js';
import { fmtNumber, type MachineInfo, machineMarkdown, RESULTS_DIR, table } from '../report.js';
import type { SoakWorkerConfig, SoakWorkerStats } from '../soak/worker.js';

const WORKER = fileURLToPath(new URL('../soak/worker.ts', import.meta.url));
const SOURCES = Array.from({ length: 8 }, (_, i) => `127.0.0.${i + 1}`);

export interface SoakOptions {
  /**
   * Admission limits off (`ADMISSION_OFF_CONFIG`, `--admission off`) instead of the defaults: for a
   * shared host whose neighbours starve the broker, where overload admission refuses reconnects by
   * design and the soak would measure the neighbours (first attempt: load 37, 4,400 devices left).
   */
  readonly admissionOff: boolean;
  readonly connections: number;
  readonly durationMin: number;
  readonly workers: number;
  readonly sampleEveryS: number;
  /** Samples before this are the ramp and warm-up: not in the slope. */
  readonly warmupMin: number;
  readonly telemetryIntervalMs: number;
  /** Devices that drop and come back per second, whole fleet. */
  readonly rebootsPerSec: number;
  /** Churner loops per worker. */
  readonly churnersPerWorker: number;
  readonly rampPerSec: number;
  readonly keepaliveSec: number;
  /** Scheduling priority (nice) the load generators ran at; absent in reports before it was kept. */
  readonly loadNice?: number;
}

export interface SoakSample {
  /** Seconds since the fleet started. */
  readonly t: number;
  readonly rssMiB: number;
  readonly heapUsedMiB: number | null;
  readonly fds: number;
  readonly connections: number | null;
  readonly sessions: number | null;
  readonly subscriptions: number | null;
  /** Broker: PUBLISH received / sent per second since the previous sample. */
  readonly msgsInPerSec: number | null;
  readonly msgsOutPerSec: number | null;
  /** breakwater_messages_dropped_total, all reasons (queue_full: a slow QoS 1 subscriber). */
  readonly droppedTotal?: number | null;
  /** The simulated side. */
  readonly devicesConnected: number;
  readonly attempts: number;
  readonly churnCycles: number;
  readonly churnFailures: number;
}

export interface Slope {
  /** Least-squares slope per hour. */
  readonly perHour: number;
  readonly first: number;
  readonly last: number;
  readonly min: number;
  readonly max: number;
}

export interface SoakResult {
  readonly ok: boolean;
  readonly notes: string[];
  readonly durationS: number;
  readonly samples: SoakSample[];
  readonly slopes: { rssMiB: Slope; heapUsedMiB: Slope | null; fds: Slope; connections: Slope | null };
  readonly totals: {
    readonly deviceAttempts: number;
    readonly deviceConnacks: number;
    readonly reboots: number;
    readonly refusals: Record<string, number>;
    readonly networkErrors: number;
    readonly disconnectsByServer: Record<string, number>;
    readonly telemetryPublished: number;
    readonly telemetryAcked: number;
    readonly sinkUnique: number;
    readonly sinkDuplicates: number;
    readonly churnCycles: number;
    readonly churnCleanDisconnects: number;
    readonly churnDrops: number;
    readonly churnFailures: number;
    readonly churnLastError: string | null;
  };
  /** Broker before the load and after it ended (everyone disconnected). */
  readonly idle: { before: IdleReading; after: IdleReading | null };
}

interface IdleReading {
  readonly rssMiB: number;
  readonly fds: number;
  readonly connections: number | null;
  readonly sessions: number | null;
}

/** Sum of a metric's samples over all label sets in a Prometheus text exposition. */
function metric(text: string, name: string): number | null {
  let sum = 0;
  let found = false;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const rest = line.slice(name.length);
    if (rest[0] !== ' ' && rest[0] !== '{') continue;
    const value = Number(line.slice(line.lastIndexOf(' ') + 1));
    if (Number.isFinite(value)) {
      sum += value;
      found = true;
    }
  }
  return found ? sum : null;
}

async function scrape(httpPort: number): Promise<string> {
  try {
    const res = await fetch(`http://127.0.0.1:${httpPort}/metrics`, { signal: AbortSignal.timeout(20_000) });
    return res.ok ? await res.text() : '';
  } catch {
    return '';
  }
}

function fdCount(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

export function slope(points: readonly { t: number; y: number }[]): Slope | null {
  if (points.length < 2) return null;
  const n = points.length;
  let sx = 0;
  let sy = 0;
  for (const p of points) {
    sx += p.t;
    sy += p.y;
  }
  const mx = sx / n;
  const my = sy / n;
  let num = 0;
  let den = 0;
  for (const p of points) {
    num += (p.t - mx) * (p.y - my);
    den += (p.t - mx) ** 2;
  }
  const ys = points.map((p) => p.y);
  return {
    perHour: den === 0 ? 0 : (num / den) * 3600,
    first: ys[0]!,
    last: ys[n - 1]!,
    min: Math.min(...ys),
    max: Math.max(...ys),
  };
}

class WorkerHandle {
  readonly child: ChildProcess;
  readonly #waiting = new Map<string, (v: unknown) => void>();
  constructor() {
    // Lower priority than the broker: the load generator must not starve what it measures.
    this.child = fork(WORKER, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    liveChildren.add(this.child);
    this.child.on('exit', () => liveChildren.delete(this.child));
    this.child.on('message', (msg: { op: string; value: unknown }) => {
      const w = this.#waiting.get(msg.op);
      this.#waiting.delete(msg.op);
      w?.(msg.value);
    });
  }
  request<T>(op: string, extra: object = {}, timeoutMs = 120_000): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`soak worker: no answer to ${op}`)), timeoutMs);
      this.#waiting.set(op, (v) => {
        clearTimeout(timer);
        const err = (v as { error?: string } | null)?.error;
        if (err !== undefined) reject(new Error(`soak worker ${op}: ${err}`));
        else resolve(v as T);
      });
      this.child.send({ op, ...extra });
    });
  }
}

/** The sink: one QoS 1 subscriber to all telemetry; counts unique (device, seq) and duplicates. */
class Sink {
  readonly lastSeq = new Map<string, number>();
  unique = 0;
  duplicates = 0;
  client: mqtt.MqttClient | null = null;
  async start(broker: RunningBroker): Promise<void> {
    // A persistent session: if a starved host lets the sink's own keepalive lapse, the broker
    // queues for it while it reconnects (a clean session would lose those messages: not the
    // broker's fault, and it made the first run's loss check meaningless).
    this.client = await mqtt.connectAsync(`mqtt://${broker.host}:${broker.port}`, {
      clientId: 'soak-sink',
      protocolVersion: 5,
      clean: false,
      keepalive: 120,
      reconnectPeriod: 1000,
      properties: { sessionExpiryInterval: 3600 },
    });
    this.client.on('message', (topic, payload) => {
      const m = /"seq":(\d+)/.exec(payload.toString());
      if (m === null) return;
      const seq = Number(m[1]);
      const last = this.lastSeq.get(topic) ?? 0;
      if (seq > last) {
        this.unique++;
        this.lastSeq.set(topic, seq);
      } else this.duplicates++;
    });
    const granted = await this.client.subscribeAsync('devices/+/telemetry', { qos: 1 });
    if (granted[0]?.qos !== 1) throw new Error(`sink subscription refused: ${JSON.stringify(granted)}`);
  }
}

export async function runSoak(
  opts: SoakOptions,
  log: (line: string) => void,
  progress: (partial: SoakResult) => void,
): Promise<{ result: SoakResult; broker: { version: string; launch: string } }> {
  const httpPort = await freePort();
  // Protections on (the defaults) unless told otherwise: see SoakOptions.admissionOff.
  const broker = await startBroker('breakwater', 'auto', {
    httpPort,
    ...(opts.admissionOff ? { breakwaterConfig: ADMISSION_OFF_CONFIG } : {}),
  });
  const info = { version: broker.version, launch: broker.launch };
  const workers: WorkerHandle[] = [];
  const notes: string[] = [];
  const samples: SoakSample[] = [];
  const sink = new Sink();
  const t0 = performance.now();
  const idleReading = async (): Promise<IdleReading> => {
    const text = await scrape(httpPort);
    return {
      rssMiB: broker.rssKiB() / 1024,
      fds: fdCount(broker.pid),
      connections: metric(text, 'breakwater_connections'),
      sessions: metric(text, 'breakwater_sessions'),
    };
  };
  let idleAfter: IdleReading | null = null;
  let finalStats: SoakWorkerStats[] = [];
  const build = (done: boolean): SoakResult => {
    const warm = samples.filter((s) => s.t >= opts.warmupMin * 60);
    const series = (get: (s: SoakSample) => number | null) =>
      slope(warm.flatMap((s) => (get(s) === null ? [] : [{ t: s.t, y: get(s)! }])));
    const sum = (get: (s: SoakWorkerStats) => number) => finalStats.reduce((a, s) => a + get(s), 0);
    const merge = (get: (s: SoakWorkerStats) => Record<string, number>) => {
      const out: Record<string, number> = {};
      for (const s of finalStats) for (const [k, v] of Object.entries(get(s))) out[k] = (out[k] ?? 0) + v;
      return out;
    };
    const empty: Slope = { perHour: 0, first: 0, last: 0, min: 0, max: 0 };
    return {
      ok: done && notes.length === 0,
      notes: done ? notes : [...notes, 'in progress'],
      durationS: (performance.now() - t0) / 1000,
      samples,
      slopes: {
        rssMiB: series((s) => s.rssMiB) ?? empty,
        heapUsedMiB: series((s) => s.heapUsedMiB),
        fds: series((s) => s.fds) ?? empty,
        connections: series((s) => s.connections),
      },
      totals: {
        deviceAttempts: sum((s) => s.fleet.attempts),
        deviceConnacks: sum((s) => s.fleet.connacksOk),
        reboots: sum((s) => s.fleet.reboots ?? 0),
        refusals: merge((s) => s.fleet.refusals),
        networkErrors: sum((s) => s.fleet.networkErrors),
        disconnectsByServer: merge((s) => s.fleet.disconnectsByServer),
        telemetryPublished: sum((s) => s.fleet.published),
        telemetryAcked: sum((s) => s.fleet.qos1Acked),
        sinkUnique: sink.unique,
        sinkDuplicates: sink.duplicates,
        churnCycles: sum((s) => s.churn.cycles),
        churnCleanDisconnects: sum((s) => s.churn.cleanDisconnects),
        churnDrops: sum((s) => s.churn.drops),
        churnFailures: sum((s) => s.churn.failures),
        churnLastError: finalStats.find((s) => s.churn.lastError !== null)?.churn.lastError ?? null,
      },
      idle: { before: idleBefore, after: idleAfter },
    };
  };
  await sleep(2000);
  const idleBefore = await idleReading();
  try {
    await sink.start(broker);
    const per = Math.ceil(opts.connections / opts.workers);
    const tickMs = 10_000;
    for (let i = 0; i < opts.workers; i++) {
      const w = new WorkerHandle();
      workers.push(w);
      const config: SoakWorkerConfig = {
        index: i,
        host: broker.host,
        port: broker.port,
        devices: Math.min(per, opts.connections - i * per),
        // Each worker its own source addresses (ephemeral ports per address), round robin.
        sources: SOURCES.filter((_, k) => k % opts.workers === i % SOURCES.length || opts.workers > 8),
        rampPerSec: Math.max(1, Math.floor(opts.rampPerSec / opts.workers)),
        keepaliveSec: opts.keepaliveSec,
        telemetryIntervalMs: opts.telemetryIntervalMs,
        rebootPerTick: Math.round((opts.rebootsPerSec * (tickMs / 1000)) / opts.workers),
        churnEveryMs: tickMs,
        rebootDownMs: [1000, 3000],
        churners: opts.churnersPerWorker,
        churnerIds: opts.churnersPerWorker * 5,
        churnerPauseMs: 1000,
      };
      await w.request('start', { config });
    }
    log(
      `soak: ${workers.length} workers started, ${opts.connections} devices ramping at ${opts.rampPerSec}/s`,
    );
    const end = t0 + opts.durationMin * 60_000;
    let lastIn: number | null = null;
    let lastOut: number | null = null;
    let lastT = performance.now();
    while (performance.now() < end) {
      const next = performance.now() + opts.sampleEveryS * 1000;
      if (!broker.alive()) {
        notes.push('the broker process exited during the soak');
        break;
      }
      const stats = await Promise.all(workers.map((w) => w.request<SoakWorkerStats>('stats')));
      const text = await scrape(httpPort);
      const now = performance.now();
      const msgIn = metric(text, 'breakwater_messages_received_total');
      const msgOut = metric(text, 'breakwater_messages_sent_total');
      const dt = (now - lastT) / 1000;
      const rate = (v: number | null, prev: number | null) =>
        v !== null && prev !== null ? Math.round((v - prev) / dt) : null;
      const heap = metric(text, 'nodejs_heap_size_used_bytes');
      const sample: SoakSample = {
        t: Math.round((now - t0) / 1000),
        rssMiB: broker.rssKiB() / 1024,
        heapUsedMiB: heap === null ? null : heap / 1024 / 1024,
        fds: fdCount(broker.pid),
        connections: metric(text, 'breakwater_connections'),
        sessions: metric(text, 'breakwater_sessions'),
        subscriptions: metric(text, 'breakwater_subscriptions'),
        msgsInPerSec: rate(msgIn, lastIn),
        msgsOutPerSec: rate(msgOut, lastOut),
        droppedTotal: metric(text, 'breakwater_messages_dropped_total'),
        devicesConnected: stats.reduce((a, s) => a + s.fleet.connected, 0),
        attempts: stats.reduce((a, s) => a + s.fleet.attempts, 0),
        churnCycles: stats.reduce((a, s) => a + s.churn.cycles, 0),
        churnFailures: stats.reduce((a, s) => a + s.churn.failures, 0),
      };
      lastIn = msgIn;
      lastOut = msgOut;
      lastT = now;
      samples.push(sample);
      finalStats = stats;
      if (samples.length % 6 === 1) {
        log(
          `  t=${sample.t}s rss ${fmtNumber(sample.rssMiB, 1)} MiB heap ${fmtNumber(sample.heapUsedMiB, 1)} MiB ` +
            `fds ${sample.fds} conns ${sample.connections} devices ${sample.devicesConnected} ` +
            `in ${sample.msgsInPerSec}/s out ${sample.msgsOutPerSec}/s churn ${sample.churnCycles} (${sample.churnFailures} failed)`,
        );
        progress(build(false));
      }
      await sleep(Math.max(0, next - performance.now()));
    }
    log('soak: quiescing (no more churn or telemetry)');
    await Promise.all(workers.map((w) => w.request('quiesce')));
    await sleep(10_000);
    finalStats = await Promise.all(workers.map((w) => w.request<SoakWorkerStats>('stats')));
    const acked = finalStats.reduce((a, s) => a + s.fleet.qos1Acked, 0);
    if (sink.unique < acked)
      notes.push(
        `the sink received ${sink.unique} unique telemetry messages, fewer than the ${acked} acknowledged`,
      );
    await Promise.all(workers.map((w) => w.request('stop')));
    await sink.client?.endAsync();
    // Everyone is gone: connections and FDs must come back to the idle level.
    await sleep(15_000);
    idleAfter = await idleReading();
    if ((idleAfter.connections ?? 0) > 0)
      notes.push(`${idleAfter.connections} connections left after the load ended`);
    if (idleAfter.fds > idleBefore.fds + 5)
      notes.push(`broker FDs ${idleAfter.fds} after the load vs ${idleBefore.fds} before it`);
  } catch (err) {
    notes.push(`aborted: ${(err as Error).message}`);
  } finally {
    for (const w of workers) if (w.child.exitCode === null) w.child.kill('SIGKILL');
    sink.client?.end(true);
    await broker.stop();
  }
  return { result: build(true), broker: info };
}

// ---- report ----

/**
 * y = a + b·connections + c·t by least squares: `perHour` (c·3600) is the drift at a constant
 * connection count, `perConnection` (b) what each connection costs. When a starved host lets the
 * connection count wander, a plain slope of RSS over time mixes the two; this separates them.
 */
export function fitWithConnections(
  points: readonly { t: number; conns: number; y: number }[],
): { perHour: number; perConnection: number } | null {
  const n = points.length;
  if (n < 3) return null;
  const mt = points.reduce((a, p) => a + p.t, 0) / n;
  const mx = points.reduce((a, p) => a + p.conns, 0) / n;
  const my = points.reduce((a, p) => a + p.y, 0) / n;
  let stt = 0;
  let sxx = 0;
  let stx = 0;
  let sty = 0;
  let sxy = 0;
  for (const p of points) {
    const dt = p.t - mt;
    const dx = p.conns - mx;
    const dy = p.y - my;
    stt += dt * dt;
    sxx += dx * dx;
    stx += dt * dx;
    sty += dt * dy;
    sxy += dx * dy;
  }
  const det = stt * sxx - stx * stx;
  if (det === 0) return null;
  return { perHour: ((sty * sxx - sxy * stx) / det) * 3600, perConnection: (sxy * stt - sty * stx) / det };
}

export interface SoakAnalysis {
  /** FDs the broker holds beyond its connections (listeners, files): a leak shows as a slope. */
  fdsBeyondConnections: Slope | null;
  rss: { perHour: number; perConnection: number } | null;
  heap: { perHour: number; perConnection: number } | null;
  connections: { min: number; max: number; mean: number } | null;
}

export function analyse(samples: readonly SoakSample[], warmupMin: number): SoakAnalysis {
  const warm = samples.filter((s) => s.t >= warmupMin * 60 && s.connections !== null);
  const conns = warm.map((s) => s.connections!);
  return {
    fdsBeyondConnections: slope(warm.map((s) => ({ t: s.t, y: s.fds - s.connections! }))),
    rss: fitWithConnections(warm.map((s) => ({ t: s.t, conns: s.connections!, y: s.rssMiB }))),
    heap: fitWithConnections(
      warm
        .filter((s) => s.heapUsedMiB !== null)
        .map((s) => ({ t: s.t, conns: s.connections!, y: s.heapUsedMiB! })),
    ),
    connections: conns.length
      ? {
          min: Math.min(...conns),
          max: Math.max(...conns),
          mean: conns.reduce((a, b) => a + b, 0) / conns.length,
        }
      : null,
  };
}

function fmtSlope(s: Slope | null, unit: string, digits = 1): string {
  if (s === null) return 'n/a';
  const sign = s.perHour >= 0 ? '+' : '';
  return `${sign}${fmtNumber(s.perHour, digits)} ${unit}/h (${fmtNumber(s.first, digits)} → ${fmtNumber(s.last, digits)}, range ${fmtNumber(s.min, digits)}–${fmtNumber(s.max, digits)})`;
}

export function soakMarkdown(
  note: string | undefined,
  name: string,
  machine: MachineInfo,
  broker: { version: string; launch: string },
  r: SoakResult,
  opts: SoakOptions,
): string {
  const t = r.totals;
  const an = analyse(r.samples, opts.warmupMin);
  const warm = r.samples.filter((s) => s.t >= opts.warmupMin * 60);
  const avg = (get: (s: SoakSample) => number | null) => {
    const xs = warm.map(get).filter((x): x is number => x !== null);
    return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : null;
  };
  const every = Math.max(1, Math.round(300 / opts.sampleEveryS));
  const rows = r.samples
    .filter((_, i) => i % every === 0 || i === r.samples.length - 1)
    .map((s) => [
      fmtNumber(s.t / 60, 1),
      fmtNumber(s.rssMiB, 1),
      fmtNumber(s.heapUsedMiB, 1),
      String(s.fds),
      fmtNumber(s.connections),
      fmtNumber(s.sessions),
      fmtNumber(s.subscriptions),
      fmtNumber(s.msgsInPerSec),
      fmtNumber(s.msgsOutPerSec),
    ]);
  return [
    `# Soak: ${fmtNumber(opts.durationMin)} min at ${fmtNumber(opts.connections)} connections with churn`,
    '',
    'Generated by `npm run bench -- soak` (bench/scenarios/soak.ts); do not edit by hand.',
    '',
    machineMarkdown(machine),
    ...(note ? [`- ${note}`] : []),
    `- broker: Breakwater ${broker.version}, \`${broker.launch}\` (${opts.admissionOff ? 'admission limits off, as in the storms: `ADMISSION_OFF_CONFIG`' : 'default configuration, admission protections on'})`,
    `- load: ${opts.connections} simulated devices in ${opts.workers} processes (MQTT 3.1.1 and 5 alternating by process), ` +
      `keepalive ${opts.keepaliveSec} s, QoS 1 telemetry every ${opts.telemetryIntervalMs / 1000} s per device, SUBSCRIBE to 2 fleet topics on ` +
      `every connect; churn: ${opts.rebootsPerSec} devices/s drop without DISCONNECT and return after 1-3 s, ` +
      `${opts.churnersPerWorker * opts.workers} churner loops (connect with a persistent session, SUBSCRIBE, PUBLISH QoS 1, ` +
      'receive it, then DISCONNECT or drop, alternately); one QoS 1 sink subscribed to all telemetry',
    `- sampled every ${opts.sampleEveryS} s; slopes are least-squares fits over the samples after ${opts.warmupMin} min (ramp and warm-up excluded); ${opts.loadNice === undefined ? 'the load ran nice -n 10' : `the load ran at nice ${opts.loadNice}`} on a shared 2-core host`,
    '',
    `## Result: ${r.ok ? 'flat' : 'NOT OK'}`,
    '',
    ...(r.notes.length ? r.notes.map((n) => `- ${n}`) : ['- no findings']),
    '',
    table(
      ['measure', 'slope after warm-up'],
      [
        ['broker RSS', fmtSlope(r.slopes.rssMiB, 'MiB')],
        ['broker heap used', fmtSlope(r.slopes.heapUsedMiB, 'MiB')],
        ['broker open FDs', fmtSlope(r.slopes.fds, 'FDs', 0)],
        ['connections (broker gauge)', fmtSlope(r.slopes.connections, 'conns', 0)],
      ],
    ),
    '',
    '',
    '### Separating drift from the connection count',
    '',
    'On a starved host the connection count wanders (devices that drop reconnect as fast as the broker gets CPU), and',
    'RSS follows it. Fitting RSS = a + b·connections + c·time separates the two: c is the drift at a constant',
    'connection count, the number a leak would show in. FDs beyond connections (FDs − connections) must stay constant.',
    '',
    table(
      ['measure', 'value'],
      [
        [
          'connections after warm-up (min / mean / max)',
          an.connections
            ? `${fmtNumber(an.connections.min)} / ${fmtNumber(an.connections.mean)} / ${fmtNumber(an.connections.max)}`
            : 'n/a',
        ],
        ['broker FDs beyond connections', fmtSlope(an.fdsBeyondConnections, 'FDs', 0)],
        [
          'broker RSS drift at constant connections',
          an.rss
            ? `${an.rss.perHour >= 0 ? '+' : ''}${fmtNumber(an.rss.perHour, 1)} MiB/h (${fmtNumber(an.rss.perConnection * 1024, 2)} KiB per connection)`
            : 'n/a',
        ],
        [
          'broker heap drift at constant connections',
          an.heap
            ? `${an.heap.perHour >= 0 ? '+' : ''}${fmtNumber(an.heap.perHour, 1)} MiB/h (${fmtNumber(an.heap.perConnection * 1024, 2)} KiB per connection)`
            : 'n/a',
        ],
      ],
    ),
    '',
    `Averages after warm-up: ${fmtNumber(avg((s) => s.connections))} connections, ` +
      `${fmtNumber(avg((s) => s.msgsInPerSec))} PUBLISH in/s, ${fmtNumber(avg((s) => s.msgsOutPerSec))} out/s.`,
    '',
    `![RSS, heap, FDs and connections over the run](${name}.svg)`,
    '',
    '## Traffic and churn',
    '',
    table(
      ['what', 'count'],
      [
        ['run length', `${fmtNumber(r.durationS / 60, 1)} min`],
        [
          'device connect attempts / CONNACK 0',
          `${fmtNumber(t.deviceAttempts)} / ${fmtNumber(t.deviceConnacks)}`,
        ],
        ['device reboots (drop without DISCONNECT)', fmtNumber(t.reboots)],
        ['refusals seen by devices', JSON.stringify(t.refusals)],
        ['device network errors', fmtNumber(t.networkErrors)],
        ['server-side disconnects of devices', JSON.stringify(t.disconnectsByServer)],
        [
          'churner cycles (clean DISCONNECT / drop)',
          `${fmtNumber(t.churnCycles)} (${fmtNumber(t.churnCleanDisconnects)} / ${fmtNumber(t.churnDrops)})`,
        ],
        [
          'churner failures',
          `${fmtNumber(t.churnFailures)}${t.churnLastError ? ` (last: ${t.churnLastError})` : ''}`,
        ],
        [
          'telemetry published / acknowledged (PUBACK)',
          `${fmtNumber(t.telemetryPublished)} / ${fmtNumber(t.telemetryAcked)}`,
        ],
        [
          'telemetry received by the sink (unique / duplicates)',
          `${fmtNumber(t.sinkUnique)} / ${fmtNumber(t.sinkDuplicates)}`,
        ],
      ],
    ),
    '',
    'An acknowledged message counts as lost if the sink received fewer unique messages than the devices got PUBACKs for ' +
      '(a message routed just before its publisher dropped can arrive without a PUBACK, so unique ≥ acknowledged is the check).',
    '',
    '## Idle broker before and after the load',
    '',
    table(
      ['', 'RSS MiB', 'FDs', 'connections', 'sessions'],
      [
        [
          'before',
          fmtNumber(r.idle.before.rssMiB, 1),
          String(r.idle.before.fds),
          fmtNumber(r.idle.before.connections),
          fmtNumber(r.idle.before.sessions),
        ],
        ...(r.idle.after
          ? [
              [
                'after (15 s after every client left)',
                fmtNumber(r.idle.after.rssMiB, 1),
                String(r.idle.after.fds),
                fmtNumber(r.idle.after.connections),
                fmtNumber(r.idle.after.sessions),
              ],
            ]
          : []),
      ],
    ),
    '',
    "Sessions left after the load are the churners' persistent sessions (a bounded pool of client ids; v3.1.1 ones never expire).",
    '',
    '## Samples (every 5 min)',
    '',
    table(
      ['min', 'RSS MiB', 'heap MiB', 'FDs', 'connections', 'sessions', 'subscriptions', 'in/s', 'out/s'],
      rows,
    ),
    '',
  ].join('\n');
}

export function soakSvg(r: SoakResult): string {
  const W = 900;
  const PH = 220;
  const M = { left: 60, right: 60, top: 28, bottom: 30 };
  const s = r.samples;
  const tMax = Math.max(1, ...s.map((x) => x.t));
  const xs = (t: number) => M.left + (t / tMax) * (W - M.left - M.right);
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${PH * 2 + 20}" viewBox="0 0 ${W} ${PH * 2 + 20}" font-family="sans-serif">`,
    '<!-- Generated by bench/scenarios/soak.ts; do not edit. -->',
    `<rect width="${W}" height="${PH * 2 + 20}" fill="white" />`,
  ];
  const panel = (
    y0: number,
    title: string,
    left: { label: string; color: string; get: (x: SoakSample) => number | null }[],
    right: { label: string; color: string; get: (x: SoakSample) => number | null } | null,
  ) => {
    const h = PH - M.top - M.bottom;
    const axisMax = (gets: ((x: SoakSample) => number | null)[]) => {
      const m = Math.max(1, ...s.flatMap((x) => gets.map((g) => g(x) ?? 0)));
      const mag = 10 ** Math.floor(Math.log10(m));
      return Math.ceil((m * 1.1) / mag) * mag;
    };
    const lMax = axisMax(left.map((l) => l.get));
    const rMax = right ? axisMax([right.get]) : 1;
    const ly = (v: number) => y0 + M.top + h - (v / lMax) * h;
    const ry = (v: number) => y0 + M.top + h - (v / rMax) * h;
    parts.push(
      `<text x="${M.left}" y="${y0 + 16}" font-size="13" font-weight="bold">${title}</text>`,
      `<line x1="${M.left}" x2="${W - M.right}" y1="${y0 + M.top + h}" y2="${y0 + M.top + h}" stroke="#999" />`,
      `<line x1="${M.left}" x2="${M.left}" y1="${y0 + M.top}" y2="${y0 + M.top + h}" stroke="#999" />`,
    );
    for (let k = 0; k <= 4; k++) {
      const v = (lMax * k) / 4;
      parts.push(
        `<text x="${M.left - 6}" y="${ly(v) + 4}" font-size="10" text-anchor="end">${fmtNumber(v)}</text>`,
        `<line x1="${M.left}" x2="${W - M.right}" y1="${ly(v)}" y2="${ly(v)}" stroke="#eee" />`,
      );
      if (right) {
        const rv = (rMax * k) / 4;
        parts.push(
          `<text x="${W - M.right + 6}" y="${ry(rv) + 4}" font-size="10" fill="${right.color}">${fmtNumber(rv)}</text>`,
        );
      }
    }
    for (let m = 0; m <= tMax / 60; m += 10) {
      parts.push(
        `<text x="${xs(m * 60)}" y="${y0 + M.top + h + 14}" font-size="10" text-anchor="middle">${m} min</text>`,
      );
    }
    const line = (get: (x: SoakSample) => number | null, y: (v: number) => number, color: string) => {
      const pts = s.flatMap((x) => {
        const v = get(x);
        return v === null ? [] : [`${xs(x.t).toFixed(1)},${y(v).toFixed(1)}`];
      });
      parts.push(`<polyline fill="none" stroke="${color}" stroke-width="1.6" points="${pts.join(' ')}" />`);
    };
    let lx = M.left + 260;
    for (const l of left) {
      line(l.get, ly, l.color);
      parts.push(
        `<line x1="${lx}" x2="${lx + 20}" y1="${y0 + 12}" y2="${y0 + 12}" stroke="${l.color}" stroke-width="3" />`,
        `<text x="${lx + 24}" y="${y0 + 16}" font-size="11">${l.label}</text>`,
      );
      lx += 40 + l.label.length * 6;
    }
    if (right) {
      line(right.get, ry, right.color);
      parts.push(
        `<line x1="${lx}" x2="${lx + 20}" y1="${y0 + 12}" y2="${y0 + 12}" stroke="${right.color}" stroke-width="3" stroke-dasharray="4 2" />`,
        `<text x="${lx + 24}" y="${y0 + 16}" font-size="11">${right.label} (right axis)</text>`,
      );
    }
  };
  panel(
    0,
    'Broker memory, MiB',
    [
      { label: 'RSS', color: '#1f77b4', get: (x) => x.rssMiB },
      { label: 'heap used', color: '#2ca02c', get: (x) => x.heapUsedMiB },
    ],
    null,
  );
  panel(
    PH + 20,
    'Broker FDs and connections',
    [
      { label: 'open FDs', color: '#d62728', get: (x) => x.fds },
      { label: 'connections', color: '#ff7f0e', get: (x) => x.connections },
    ],
    { label: 'PUBLISH out/s', color: '#9467bd', get: (x) => x.msgsOutPerSec },
  );
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}

export function writeSoakSvg(name: string, svg: string): string {
  const path = join(RESULTS_DIR, `${name}.svg`);
  writeFileSync(path, svg);
  return path;
}
