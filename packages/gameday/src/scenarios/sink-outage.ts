/**
 * Sink outage (DESIGN.md §1, "cloud region outage"; issue 16): the database the fleet's telemetry
 * flows into goes away for 10 minutes (full scale) under load, then comes back. The broker keeps
 * taking telemetry: every QoS 1 message the rule matched is in the integration's durable buffer
 * before its PUBACK; when the database answers again the buffer drains by itself, at the sink's
 * bounded rate, while new telemetry keeps arriving. Nobody touches anything.
 *
 * Sink: a real PostgreSQL table behind a fault proxy (sink-backend.ts): the outage resets every
 * connection and refuses new ones. A latency probe publishes QoS 1 10 times a second and times the
 * PUBACK, so the broker's publish latency is reported side by side: sink healthy, sink down,
 * backlog draining, after.
 */
import type { SinkStatus } from '@breakwater/integration';
import type { MqttClient } from 'mqtt';
import { admissionFor, anonymousGuard, atFraction, policyFor, scaled, telemetryFor } from './common.js';
import type { SinkControl } from './sink-control.js';
import type { RunContext, ScenarioDefinition, ScenarioParams, ScoredRun } from './types.js';

type Phase = 'healthy' | 'outage' | 'draining' | 'after';
const PHASES: readonly Phase[] = ['healthy', 'outage', 'draining', 'after'];
const FILTER = 'devices/+/telemetry';
const PROBE_ID = 'latency-probe';
/**
 * The delivery rate is measured over windows of at least this much wall time: the status comes
 * over IPC, whose latency on a loaded machine would otherwise dominate a 1 s window.
 */
const RATE_WINDOW_MS = 5_000;
/** The sink's batch size (sink-backend.ts): the token bucket's burst. */
const BATCH = 500;

interface OutageState {
  phase: Phase;
  latencies: Record<Phase, number[]>;
  second: number[];
  probeAcked: number;
  probe: MqttClient | null;
  probeTimer: NodeJS.Timeout | null;
  lastDelivered: number;
  peakDeliveredPerSec: number;
  peakQueued: number;
  restoredAtS: number | null;
  drainedAtS: number | null;
  downAtMs: number | null;
  /** The sink's status, polled every 250 ms (the per-second series read it synchronously). */
  status: SinkStatus | null;
  poller: NodeJS.Timeout | null;
  /** Resolves when the sink is back (the fault step's timer). */
  restored: Promise<void> | null;
  /** 99 % of the fleet connected: the healthy latency baseline counts from here. */
  settled: boolean;
}

function stateOf(ctx: RunContext): OutageState {
  let s = ctx.state.get('sink-outage') as OutageState | undefined;
  if (!s) {
    s = {
      phase: 'healthy',
      latencies: { healthy: [], outage: [], draining: [], after: [] },
      second: [],
      probeAcked: 0,
      probe: null,
      probeTimer: null,
      lastDelivered: 0,
      peakDeliveredPerSec: 0,
      peakQueued: 0,
      restoredAtS: null,
      drainedAtS: null,
      downAtMs: null,
      status: null,
      poller: null,
      restored: null,
      settled: false,
    };
    ctx.state.set('sink-outage', s);
  }
  return s;
}

/** The drain bound: three times the offered telemetry rate (net drain twice the offered rate). */
export function drainRate(p: ScenarioParams): number {
  const offered = (p.devices * 1000) / (telemetryFor(p).intervalMs ?? 10_000);
  return Math.max(200, Math.round(offered * 3));
}

function quantile(xs: number[], q: number): number | null {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  return Math.round(s[Math.min(s.length - 1, Math.floor(q * s.length))]! * 10) / 10;
}

function sinkOf(ctx: RunContext): SinkControl {
  const c = ctx.env.sinkControl;
  if (!c) throw new Error('sink-outage needs its own broker with the integration (no --target)');
  return c;
}

/**
 * Polls the sink's status every 250 ms: the per-second series read it synchronously, the delivery
 * rate is measured over windows of at least RATE_WINDOW_MS of wall time (a late sampler on a loaded
 * machine must not turn two seconds of deliveries into one), and the drain ends when no message older than
 * 2 s waits (new telemetry keeps arriving, so the queue is rarely exactly empty).
 */
function startPolling(ctx: RunContext, s: OutageState): void {
  const sink = sinkOf(ctx);
  let busy = false;
  let windowAt = Date.now();
  let windowDelivered = 0;
  s.poller = setInterval(() => {
    if (busy) return;
    busy = true;
    sink.status().then(
      (st) => {
        busy = false;
        s.status = st;
        const now = Date.now();
        if (now - windowAt >= RATE_WINDOW_MS) {
          const rate = (st.delivered - windowDelivered) / ((now - windowAt) / 1000);
          s.peakDeliveredPerSec = Math.max(s.peakDeliveredPerSec, Math.round(rate));
          windowAt = now;
          windowDelivered = st.delivered;
        }
        s.peakQueued = Math.max(s.peakQueued, st.queued);
        if (
          s.phase === 'draining' &&
          st.state === 'healthy' &&
          (st.queued === 0 || (st.oldestAgeSec ?? 0) < 2)
        ) {
          s.drainedAtS = Math.round(ctx.now() * 10) / 10;
          s.phase = 'after';
          ctx.note(
            `backlog drained ${Math.round((s.drainedAtS - (s.restoredAtS ?? 0)) * 10) / 10} s after the sink came back`,
          );
        }
      },
      () => {
        busy = false;
      },
    );
  }, 250);
}

async function restoreSink(ctx: RunContext, s: OutageState): Promise<void> {
  await sinkOf(ctx).restore();
  ctx.measure('outageS', s.downAtMs === null ? null : Math.round((Date.now() - s.downAtMs) / 100) / 10);
  s.phase = 'draining';
  s.restoredAtS = Math.round(ctx.now() * 10) / 10;
  ctx.note('sink restored (fault proxy open again)');
  ctx.measure('backlogAtRestore', (await sinkOf(ctx).status()).queued);
}

async function startProbe(ctx: RunContext, s: OutageState): Promise<void> {
  // Loaded here only: every `breakwater` command imports this package (MQTT.js is not small).
  const { default: mqtt } = await import('mqtt');
  const client = await mqtt.connectAsync(`mqtt://${ctx.env.mqtt.host}:${ctx.env.mqtt.port}`, {
    clientId: PROBE_ID,
    protocolVersion: 5,
    reconnectPeriod: 1_000,
  });
  s.probe = client;
  let seq = 0;
  s.probeTimer = setInterval(() => {
    const n = seq++;
    // The healthy baseline starts once the fleet is connected: a 10,000-device ramp is not "healthy".
    if (s.phase === 'healthy' && !s.settled)
      s.settled = ctx.fleet.stats().connected >= ctx.params.devices * 0.99;
    const phase = s.phase === 'healthy' && !s.settled ? null : s.phase;
    const t0 = performance.now();
    client
      .publishAsync(`devices/${PROBE_ID}/telemetry`, JSON.stringify({ id: PROBE_ID, seq: n, temp: 20 }), {
        qos: 1,
      })
      .then(
        () => {
          const ms = performance.now() - t0;
          s.probeAcked++;
          if (phase !== null) s.latencies[phase].push(ms);
          s.second.push(ms);
        },
        () => {},
      );
  }, 100);
}

async function stopProbe(s: OutageState): Promise<void> {
  if (s.probeTimer) clearInterval(s.probeTimer);
  s.probeTimer = null;
  await s.probe?.endAsync().catch(() => {});
  s.probe = null;
}

export const sinkOutage: ScenarioDefinition = {
  name: 'sink-outage',
  title: 'Sink outage: the telemetry database is down for 10 minutes',
  incident: 'region-outage',
  summary:
    'The PostgreSQL database the telemetry rule writes to goes down for 10 minutes at full scale (every connection reset, new ones refused) while 10,000 devices keep publishing, then comes back. The broker must lose nothing it acknowledged (durable buffer before PUBACK), resume by itself, drain the backlog at the sink’s bounded rate while new telemetry keeps coming, and keep its own publish latency where it was with the sink healthy.',
  weakened: 'same run (the buffer is not optional); shows the same numbers',
  defaults: { devices: 10_000, durationS: 1_080, ci: { devices: 200, durationS: 40 } },
  requiresInProcess: true,
  build(p) {
    const outageAt = atFraction(p, 0.05);
    const outageS = scaled(p, 600, 5);
    const restoreAt = Math.round((outageAt + outageS) * 10) / 10;
    const rate = drainRate(p);
    // Backlog = offered × outage; it drains at (rate − offered) = 2 × offered: half the outage, plus slack.
    const drainWindowS = Math.ceil(outageS * 0.75 + 10);
    return {
      // The broker runs in a child process: 10,000 devices need both ends of their connections,
      // more than one process may hold under a 20,000-FD limit.
      broker: {
        guard: anonymousGuard(),
        admission: admissionFor(p),
        postgres: false,
        integration: {
          filter: FILTER,
          maxPerSec: rate,
          retryMaxMs: Math.max(500, Math.round(30_000 * p.timeScale)),
        },
        process: 'child',
      },
      fleet: { policy: policyFor(p), timeScale: p.timeScale, telemetry: telemetryFor(p) },
      viaProxy: false,
      controlPlane: false,
      phaseLabels: { fault: 'sink down', repair: 'sink back' },
      extraSeries(ctx) {
        const s = stateOf(ctx);
        const status = s.status;
        const out: Record<string, number> = {};
        if (status) {
          out.sinkQueued = status.queued;
          out.sinkDeliveredPerSec = status.delivered - s.lastDelivered;
          s.lastDelivered = status.delivered;
          out.sinkUp = status.state === 'healthy' ? 1 : 0;
        }
        out.publishP50Ms = quantile(s.second, 0.5) ?? 0;
        out.publishP99Ms = quantile(s.second, 0.99) ?? 0;
        s.second = [];
        return out;
      },
      timeline: [
        {
          atS: 1,
          kind: 'action',
          label: 'latency probe: QoS 1 publish every 100 ms, PUBACK timed',
          run: (ctx) => {
            startPolling(ctx, stateOf(ctx));
            return startProbe(ctx, stateOf(ctx));
          },
        },
        {
          atS: outageAt,
          kind: 'fault',
          label: `sink down: the PostgreSQL fault proxy resets every connection and refuses new ones for ${outageS} s`,
          async run(ctx) {
            const s = stateOf(ctx);
            s.phase = 'outage';
            await sinkOf(ctx).cut();
            s.downAtMs = Date.now();
            // The repair is timed here, not by the runner's per-second loop, which a loaded machine
            // makes late: the outage lasts its length in wall time, give or take a timer.
            s.restored = new Promise<void>((resolve, reject) => {
              setTimeout(() => {
                restoreSink(ctx, s).then(resolve, reject);
              }, outageS * 1000);
            });
            ctx.background(s.restored);
          },
        },
        {
          atS: restoreAt,
          kind: 'repair',
          label: 'sink back (no operator action: the integration retries by itself)',
          async run(ctx) {
            // Marks the timeline; the fault step's timer restores the sink on time.
            await stateOf(ctx).restored;
          },
        },
        {
          atS: p.durationS,
          kind: 'action',
          label: 'telemetry stops; wait for the buffer to drain; count the rows',
          async run(ctx) {
            const s = stateOf(ctx);
            const sink = sinkOf(ctx);
            // A drain still going on runs to its end under load (within its window) before the
            // telemetry stops: the drain time is measured with new messages arriving.
            while (
              s.drainedAtS === null &&
              s.restoredAtS !== null &&
              ctx.now() - s.restoredAtS < drainWindowS + 5
            )
              await new Promise((r) => setTimeout(r, 200));
            ctx.fleet.setTelemetry(null);
            await stopProbe(s);
            // Acks in flight land; then the buffer empties at the bounded rate.
            await new Promise((r) => setTimeout(r, 1_000));
            const deadline = Date.now() + Math.max(60, drainWindowS) * 1000;
            while ((await sink.status()).queued > 0 && Date.now() < deadline)
              await new Promise((r) => setTimeout(r, 200));
            if (s.poller) clearInterval(s.poller);
            const status = await sink.status();
            const { distinct, rows } = await sink.counts();
            const acked = ctx.fleet.stats().qos1Acked + s.probeAcked;
            ctx.measure('acked', acked);
            ctx.measure('rowsDistinct', distinct);
            ctx.measure('rows', rows);
            // Lost: acknowledged, yet neither in the table nor still in the buffer. (Still buffered
            // is not lost — it is delivered when the drain ends — but fails auto-resume below.)
            ctx.measure('lost', Math.max(0, acked - distinct - status.queued));
            ctx.measure('queuedAtEnd', status.queued);
            ctx.measure('deadLettered', status.deadLettered);
            ctx.measure('dropped', status.dropped);
            ctx.measure('failedAttempts', status.failedAttempts);
            ctx.measure('maxPerSec', rate);
            ctx.measure('peakDeliveredPerSec', s.peakDeliveredPerSec);
            ctx.measure('peakQueued', s.peakQueued);
            ctx.measure('restoredAtS', s.restoredAtS);
            ctx.measure('drainedAtS', s.drainedAtS);
            ctx.measure(
              'drainS',
              s.drainedAtS !== null && s.restoredAtS !== null
                ? Math.round((s.drainedAtS - s.restoredAtS) * 10) / 10
                : null,
            );
            for (const ph of PHASES) {
              ctx.measure(`publishP50Ms_${ph}`, quantile(s.latencies[ph], 0.5));
              ctx.measure(`publishP99Ms_${ph}`, quantile(s.latencies[ph], 0.99));
              ctx.measure(`publishSamples_${ph}`, s.latencies[ph].length);
            }
          },
        },
      ],
      expectations: [
        {
          id: 'no-loss',
          name: 'every QoS 1 message the broker acknowledged is in the database (or still in the buffer)',
          compare: '<=',
          evaluate: (r) => ({
            value: (r.measurements.lost as number | null) ?? null,
            threshold: 0,
            unit: 'messages',
            detail: `${r.measurements.acked} acked, ${r.measurements.rowsDistinct} distinct rows (${r.measurements.rows} rows), ${r.measurements.queuedAtEnd} still buffered, ${r.measurements.dropped} dropped, ${r.measurements.deadLettered} dead-lettered`,
          }),
        },
        {
          id: 'auto-resume',
          name: `the backlog drains by itself within ${drainWindowS} s of the sink coming back`,
          compare: '<=',
          evaluate: (r) => ({
            value: (r.measurements.drainS as number | null) ?? null,
            threshold: drainWindowS,
            unit: 's',
            detail: `${r.measurements.backlogAtRestore} buffered at the restore, peak ${r.measurements.peakQueued}, ${r.measurements.queuedAtEnd} left at the end; outage ${r.measurements.outageS} s`,
          }),
        },
        {
          id: 'bounded-drain',
          name: `the sink is never sent more than its bound (${rate} msg/s, + one batch of burst, over ${RATE_WINDOW_MS / 1000} s windows)`,
          compare: '<=',
          evaluate: (r) => ({
            value: (r.measurements.peakDeliveredPerSec as number | null) ?? null,
            threshold: Math.ceil(rate * 1.1 + BATCH / (RATE_WINDOW_MS / 1000)),
            unit: 'msg/s',
          }),
        },
        {
          id: 'publish-latency',
          name: 'the broker’s publish latency (PUBACK p99) with the sink down or draining stays within 2× (or +20 ms of) the healthy one',
          compare: '<=',
          notJudged: (params) =>
            params.devices < 1_000 ? 'too few samples at test scale: reported, not judged' : null,
          evaluate: (r: ScoredRun) => {
            const healthy = (r.measurements.publishP99Ms_healthy as number | null) ?? null;
            const worst = Math.max(
              (r.measurements.publishP99Ms_outage as number | null) ?? 0,
              (r.measurements.publishP99Ms_draining as number | null) ?? 0,
            );
            return {
              value: healthy === null ? null : worst,
              threshold: healthy === null ? 0 : Math.max(healthy * 2, healthy + 20),
              unit: 'ms',
              detail: PHASES.map(
                (ph) =>
                  `${ph} p50 ${r.measurements[`publishP50Ms_${ph}`] ?? '-'} / p99 ${r.measurements[`publishP99Ms_${ph}`] ?? '-'} ms (${r.measurements[`publishSamples_${ph}`] ?? 0})`,
              ).join('; '),
            };
          },
        },
      ],
    };
  },
};
