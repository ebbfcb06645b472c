/**
 * The auth backend storm of DESIGN.md §1, as the matrix of issue 11: protections {on, off} ×
 * device firmware {fleet, naive} × auth cache {cold, warm}. One run per (protections, firmware),
 * in phases, sampled once a second:
 *
 * 1. **cold** — t=0: the fleet boots (first connects spread over `spreadMs`) against a healthy
 *    Postgres and a broker that knows nobody (fresh data dir: the known-good store is empty).
 *    Ends `settleS` after every device is connected, at `coldMaxS` at the latest.
 * 2. **outage** (warm cache) — the broker's Postgres credential breaks (REVOKE SELECT from its
 *    role) and the broker drops every client (`broker.disconnectClient`). Whatever the broker
 *    knows by now it learnt from the cold phase's successful connects. Lasts `outageS`.
 * 3. **fixed** — GRANT SELECT; at the same moment `newDevices` devices that were never seen
 *    before (rows in Postgres since the start) boot. Ends `settleS` after every device is
 *    connected, at `afterFixMaxS` at the latest.
 *
 * Plus, with `slowMs > 0`, one more run (protections on, naive firmware, cold only, `slowS`
 * long): every lookup goes through a function that sleeps `slowMs` in Postgres, and the gate's
 * limit is sampled every 250 ms to see when it settles.
 *
 * Scores come from the devices' own timelines (each device process notes, per device, when it
 * started wanting in, when it got CONNACK 0 and when it lost the connection), from the query
 * counter at the broker's pg pool, and from the broker's metrics.
 */
import { readdirSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { ReasonCode } from '@breakwater/broker';
import {
  type GuardCounters,
  type GuardGauges,
  LISTENER,
  Protection,
  type ProtectionValue,
  type StormBroker,
  startStormBroker,
  tempDataDir,
} from './broker.js';
import { EMPTY_STATS, Fleet, type FleetStats } from './devices.js';
import { BenchDatabase, drainLatencies } from './postgres.js';
import { type DeviceSpec, type DeviceTimeline, Firmware, type FirmwareValue } from './protocol.js';

export interface AuthStormOptions {
  /** Devices of the cold start (they are the "known" fleet of the outage). */
  devices: number;
  /** Devices that boot for the first time when the credential is fixed. */
  newDevices: number;
  /** Device processes (each well under the per-process FD limit). */
  processes: number;
  /** Naive firmware's fixed retry period. */
  retryMs: number;
  /** First connects (cold start, and the new devices after the fix) spread over this window. */
  spreadMs: number;
  coldMaxS: number;
  /** Seconds with every device connected before the next phase starts. */
  settleS: number;
  outageS: number;
  afterFixMaxS: number;
  protections: ProtectionValue[];
  firmwares: FirmwareValue[];
  /** Injected Postgres delay per lookup for the slow run (ms); 0: no slow run. */
  slowMs: number;
  /** Length of the slow run (s). */
  slowS: number;
  /** Only the slow run. */
  slowOnly: boolean;
}

export const Phase = { Cold: 'cold', Outage: 'outage', Fixed: 'fixed' } as const;
export type PhaseValue = (typeof Phase)[keyof typeof Phase];

/** One second of a run; counts are deltas over the second that ends at `t`. */
export interface Second {
  t: number;
  phase: PhaseValue;
  attempts: number;
  accepted: number;
  /** Refusing CONNACKs by reason code ("0x88") plus `no_connack` (closed before any answer). */
  refused: Record<string, number>;
  /** Devices connected at the end of the second (client side). */
  connected: number;
  /** Connections the broker holds at the end of the second. */
  brokerConnected: number;
  /** Backend calls: queries the broker issued (`pool.query`). */
  issued: number;
  /** Of those, got a pool connection and went to the server. */
  sent: number;
  /** Issued queries that failed: server error, or no pool connection within the connect timeout. */
  failed: number;
  /** Server connections the auth pool opened. */
  pgConnections: number;
  /** pg_stat_database commits + rollbacks of database `test` (server side, whole database). */
  serverXacts: number;
  /** Latency of the queries that settled in this second, at the pool.query wrapper (ms). */
  latencyP50Ms: number | null;
  latencyP99Ms: number | null;
  /** Coordinator (= broker) process CPU over the second, in % of one core. */
  brokerCpuPct: number;
  /** Open FDs of the broker process at the end of the second. */
  fds: number;
  /** Guard decisions by outcome (cache_hit, success, busy, ...); empty with protections off. */
  auth: Record<string, number>;
  /** Backend calls the gate did not make, by reason; empty with protections off. */
  rejected: Record<string, number>;
  /** Admission refusals by reason; empty with protections off. */
  admission: Record<string, number>;
  /** Gate and admission gauges at the end of the second; null with protections off. */
  gauges: GuardGauges | null;
}

export interface PhaseTotals {
  phase: PhaseValue;
  fromS: number;
  toS: number;
  attempts: number;
  accepted: number;
  refused: Record<string, number>;
  issued: number;
  sent: number;
  failed: number;
  pgConnections: number;
  peakCallsPerSec: number;
  peakCallsAtS: number;
  /** Over every query that settled in the phase, at the pool.query wrapper. */
  latencyP50Ms: number | null;
  latencyP99Ms: number | null;
  latencyMaxMs: number | null;
  /** The broker histogram's p99, as the upper bound of its bucket (s); protections on only. */
  histogramP99LeS: number | null;
  auth: Record<string, number>;
  rejected: Record<string, number>;
  admission: Record<string, number>;
  maxLimit: number | null;
  maxWaiting: number | null;
  maxHandshakes: number | null;
  maxTarpitSlots: number | null;
}

export interface Scores {
  /** Seconds from the start until 99 % of the cold fleet had connected (null: not in the run). */
  cold99S: number | null;
  coldConnected: number;
  /** Backend queries issued in the cold phase per device of the cold fleet. */
  coldQueriesPerDevice: number;
  /** Known devices connected at the break (the drop takes them all). */
  marked: number;
  dropped: number;
  /** Seconds from the drop until 99 % of them were back (null: not in the run). */
  outage99S: number | null;
  outageBackWithin10s: number;
  outageBackBeforeFix: number;
  /** Backend requests per connection attempt during the outage. */
  outageRequestsPerAttempt: number | null;
  /** Seconds from the fix until 99 % of all devices (known and new) were connected. */
  fixed99S: number | null;
  /** Seconds from the fix (= their boot) until 99 % of the never-seen devices had connected. */
  new99S: number | null;
  newConnected: number;
  /** Connected at the end of the run, of devices + newDevices. */
  finalConnected: number;
  /**
   * Longest time one device spent wanting in (from its first attempt after boot or after a lost
   * connection until CONNACK 0) while the backend was healthy (cold and fixed phases), in s.
   */
  longestRefusedHealthyS: number;
  longestRefusedDevice: string | null;
  /** Whether that device was still out at the end of the run. */
  longestStillOut: boolean;
  /** Devices that spent more than 60 s wanting in while the backend was healthy. */
  refusedOver60s: number;
  /** Per device firmware: auth breakers opened (3 auth refusals in a row). */
  authStoppedAtEnd: number;
}

export interface SlowResult {
  slowMs: number;
  /** The gate's limit every 250 ms: [ms since start, limit, in flight, waiting]. */
  trace: [number, number, number, number][];
  /** First time from which the limit stayed within ±max(1, 10 %) of its final value; null: never. */
  settledAtS: number | null;
  settledLimit: number | null;
  limitRange: [number, number] | null;
  latencyP99Ms: number | null;
  latencyP50Ms: number | null;
  latencyMaxMs: number | null;
  /** Queries/s completed in the second half of the run (what the slowed backend served). */
  servedPerSec: number;
}

export interface RunResult {
  kind: 'matrix' | 'slow';
  protection: ProtectionValue;
  firmware: FirmwareValue;
  limits: StormBroker['limits'];
  /** Seconds (from the start) at which the credential broke and was fixed; null: not in this run. */
  breakAtS: number | null;
  fixAtS: number | null;
  endAtS: number;
  seconds: Second[];
  phases: PhaseTotals[];
  scores: Scores;
  slow: SlowResult | null;
  /** Device-side totals at the end (errors by code, hints seen). */
  deviceTotals: FleetStats;
  /** The coordinator's sample timing (event-loop lag under load shows up here). */
  maxSampleLagMs: number;
  maxFds: number;
  durationS: number;
}

export function makeDevices(n: number, offset = 0): DeviceSpec[] {
  return Array.from({ length: n }, (_, k) => {
    const i = k + offset;
    const id = `dev-${String(i).padStart(5, '0')}`;
    return { clientId: id, username: id, password: `pw-${id}-${(i * 7919) % 100_003}` };
  });
}

function diff(a: Record<string, number>, b: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(a)) {
    const d = v - (b[k] ?? 0);
    if (d !== 0) out[k] = d;
  }
  return out;
}

function addInto(into: Record<string, number>, m: Record<string, number>): void {
  for (const [k, v] of Object.entries(m)) into[k] = (into[k] ?? 0) + v;
}

/** p-quantile of `values` (null entries count as never: +∞); null when that quantile is never. */
export function percentile(values: readonly (number | null)[], p: number): number | null {
  if (values.length === 0) return null;
  const sorted = values.map((v) => (v === null ? Number.POSITIVE_INFINITY : v)).sort((a, b) => a - b);
  const v = sorted[Math.max(0, Math.ceil(p * sorted.length) - 1)] as number;
  return Number.isFinite(v) ? v : null;
}

/** Upper bound (s) of the histogram bucket holding the p99 of the observations between two snapshots. */
function histogramP99(
  from: GuardCounters['histogram'] | undefined,
  to: GuardCounters['histogram'] | undefined,
): number | null {
  if (!to) return null;
  const base = new Map((from ?? []).map((b) => [b.le, b.count]));
  const buckets = to.map((b) => ({ le: b.le, count: b.count - (base.get(b.le) ?? 0) }));
  const total = buckets.at(-1)?.count ?? 0;
  if (total === 0) return null;
  return buckets.find((b) => b.count >= 0.99 * total)?.le ?? null;
}

function openFds(): number {
  try {
    return readdirSync('/proc/self/fd').length;
  } catch {
    return 0;
  }
}

// ---- timelines ----

function firstOkAtOrAfter(tl: DeviceTimeline, at: number): number | null {
  for (const ok of tl.ok) if (ok >= at) return ok;
  return null;
}

function connectedAt(tl: DeviceTimeline, at: number): boolean {
  for (let i = tl.ok.length - 1; i >= 0; i--) {
    if ((tl.ok[i] as number) <= at) return tl.lost[i] === undefined || (tl.lost[i] as number) > at;
  }
  return false;
}

function overlap(a0: number, a1: number, b0: number, b1: number): number {
  return Math.max(0, Math.min(a1, b1) - Math.max(a0, b0));
}

interface Moments {
  t0: number;
  breakAt: number | null;
  fixAt: number | null;
  end: number;
}

function scoreTimelines(
  timelines: readonly DeviceTimeline[],
  known: ReadonlySet<string>,
  m: Moments,
  o: AuthStormOptions,
): Omit<Scores, 'coldQueriesPerDevice' | 'outageRequestsPerAttempt' | 'dropped' | 'authStoppedAtEnd'> {
  const cold: (number | null)[] = [];
  const back: (number | null)[] = [];
  const afterFix: (number | null)[] = [];
  const fresh: (number | null)[] = [];
  let marked = 0;
  let backWithin10s = 0;
  let backBeforeFix = 0;
  let finalConnected = 0;
  let longest = 0;
  let longestId: string | null = null;
  let longestOpen = false;
  let over60 = 0;
  const healthy: [number, number][] = [[m.t0, m.breakAt ?? m.end]];
  if (m.fixAt !== null) healthy.push([m.fixAt, m.end]);
  for (const tl of timelines) {
    const isKnown = known.has(tl.id);
    if (isKnown) {
      const first = tl.ok[0];
      cold.push(
        first === undefined || (m.breakAt !== null && first > m.breakAt) ? null : (first - m.t0) / 1000,
      );
      if (m.breakAt !== null && connectedAt(tl, m.breakAt)) {
        marked++;
        const ok = firstOkAtOrAfter(tl, m.breakAt);
        const s = ok === null ? null : (ok - m.breakAt) / 1000;
        back.push(s);
        if (s !== null && s <= 10) backWithin10s++;
        if (ok !== null && m.fixAt !== null && ok < m.fixAt) backBeforeFix++;
      }
    } else if (m.fixAt !== null) {
      const first = tl.ok[0];
      fresh.push(first === undefined ? null : (first - m.fixAt) / 1000);
    }
    if (m.fixAt !== null) {
      if (connectedAt(tl, m.fixAt)) afterFix.push(0);
      else {
        const ok = firstOkAtOrAfter(tl, m.fixAt);
        afterFix.push(ok === null ? null : (ok - m.fixAt) / 1000);
      }
    }
    if (connectedAt(tl, m.end)) finalConnected++;
    let worst = 0;
    let worstOpen = false;
    for (let i = 0; i < tl.want.length; i++) {
      const from = tl.want[i] as number;
      const open = tl.ok[i] === undefined;
      const to = open ? m.end : (tl.ok[i] as number);
      let h = 0;
      for (const [a, b] of healthy) h += overlap(from, to, a, b);
      if (h > worst) {
        worst = h;
        worstOpen = open;
      }
    }
    if (worst > 60_000) over60++;
    if (worst > longest) {
      longest = worst;
      longestId = tl.id;
      longestOpen = worstOpen;
    }
  }
  return {
    cold99S: percentile(cold, 0.99),
    coldConnected: cold.filter((v) => v !== null).length,
    marked,
    outage99S: percentile(back, 0.99),
    outageBackWithin10s: backWithin10s,
    outageBackBeforeFix: backBeforeFix,
    fixed99S: m.fixAt === null ? null : percentile(afterFix, 0.99),
    new99S: m.fixAt === null || o.newDevices === 0 ? null : percentile(fresh, 0.99),
    newConnected: fresh.filter((v) => v !== null).length,
    finalConnected,
    longestRefusedHealthyS: longest / 1000,
    longestRefusedDevice: longestId,
    longestStillOut: longestOpen,
    refusedOver60s: over60,
  };
}

// ---- one run ----

interface RunSpec {
  kind: 'matrix' | 'slow';
  protection: ProtectionValue;
  firmware: FirmwareValue;
  query: string;
  seed: number;
}

async function runOnce(
  spec: RunSpec,
  db: BenchDatabase,
  known: readonly DeviceSpec[],
  fresh: readonly DeviceSpec[],
  o: AuthStormOptions,
  log: (line: string) => void,
): Promise<RunResult> {
  const started = performance.now();
  const data = tempDataDir();
  const sb = await startStormBroker(spec.protection, db, data.dir, spec.query);
  const fleet = new Fleet(o.processes);
  const seconds: Second[] = [];
  const phaseLatencies: Record<PhaseValue, number[]> = { cold: [], outage: [], fixed: [] };
  const histAt: Partial<Record<PhaseValue | 'end', GuardCounters['histogram']>> = {};
  const trace: [number, number, number, number][] = [];
  let traceTimer: NodeJS.Timeout | null = null;
  let maxSampleLagMs = 0;
  let maxFds = 0;
  let dropped = 0;
  const slow = spec.kind === 'slow';
  try {
    await fleet.configure({
      host: '127.0.0.1',
      port: sb.port,
      firmware: spec.firmware,
      retryMs: o.retryMs,
      connectTimeoutMs: 30_000,
      keepalive: 600,
      seed: spec.seed,
    });
    let prevFleet: FleetStats = EMPTY_STATS;
    let prevQ = { ...sb.queries };
    let prevXacts = await db.serverTransactions();
    let prevCounters = await sb.counters();
    histAt.cold = prevCounters?.histogram;
    let prevCpu = process.cpuUsage();
    let prevAt = performance.now();
    const t0 = prevAt;
    const t0Epoch = Date.now();
    const moments: Moments = { t0: t0Epoch, breakAt: null, fixAt: null, end: t0Epoch };
    let breakAtS: number | null = null;
    let fixAtS: number | null = null;
    await fleet.start(known, o.spreadMs);
    if (slow) {
      traceTimer = setInterval(() => {
        void sb.gauges().then((g) => {
          if (g) trace.push([Math.round(performance.now() - t0), g.limit, g.inflight, g.waiting]);
        });
      }, 250);
    }
    let phase: PhaseValue = Phase.Cold;
    let settled = 0;
    const total = known.length + fresh.length;
    for (let s = 1; ; s++) {
      const due = t0 + s * 1000;
      await sleep(Math.max(0, due - performance.now()));
      maxSampleLagMs = Math.max(maxSampleLagMs, performance.now() - due);
      const now = performance.now();
      const q = { ...sb.queries };
      const lat = drainLatencies(sb.queries).sort((a, b) => a - b);
      phaseLatencies[phase].push(...lat);
      const [f, xacts, counters, gauges] = await Promise.all([
        fleet.stats(),
        db.serverTransactions(),
        sb.counters(),
        sb.gauges(),
      ]);
      const cpu = process.cpuUsage();
      const fds = openFds();
      maxFds = Math.max(maxFds, fds);
      const refused = diff(f.refused, prevFleet.refused);
      const noConnack = f.noConnack - prevFleet.noConnack;
      if (noConnack) refused.no_connack = noConnack;
      const second: Second = {
        t: s,
        phase,
        attempts: f.attempts - prevFleet.attempts,
        accepted: f.connackOk - prevFleet.connackOk,
        refused,
        connected: f.connected,
        brokerConnected: sb.broker.connectedClients,
        issued: q.issued - prevQ.issued,
        sent: q.sent - prevQ.sent,
        failed: q.failed - prevQ.failed,
        pgConnections: q.connections - prevQ.connections,
        // Minus one: the previous sample's own query.
        serverXacts: Math.max(0, xacts - prevXacts - 1),
        latencyP50Ms: percentile(lat, 0.5),
        latencyP99Ms: percentile(lat, 0.99),
        brokerCpuPct: Math.round(
          ((cpu.user - prevCpu.user + cpu.system - prevCpu.system) / 1000 / (now - prevAt)) * 100,
        ),
        fds,
        auth: counters && prevCounters ? diff(counters.auth, prevCounters.auth) : {},
        rejected: counters && prevCounters ? diff(counters.rejected, prevCounters.rejected) : {},
        admission: counters && prevCounters ? diff(counters.admission, prevCounters.admission) : {},
        gauges,
      };
      seconds.push(second);
      prevFleet = f;
      prevQ = q;
      prevXacts = xacts;
      prevCounters = counters;
      prevCpu = cpu;
      prevAt = now;
      if (s % 5 === 0 || (breakAtS !== null && s === breakAtS + 1) || (fixAtS !== null && s === fixAtS + 1)) {
        const g = gauges ? ` limit ${gauges.limit} waiting ${gauges.waiting}` : '';
        log(
          `  t=${s}s ${phase} connected ${f.connected} attempts/s ${second.attempts} calls/s ${second.issued}${g} refused ${JSON.stringify(second.refused)}`,
        );
      }

      // Phase transitions, at whole seconds.
      if (slow) {
        if (s >= o.slowS) {
          moments.end = Date.now();
          break;
        }
        continue;
      }
      if (phase === Phase.Cold) {
        settled = f.connected >= known.length ? settled + 1 : 0;
        if (settled >= o.settleS || s >= o.coldMaxS) {
          await db.breakCredential();
          histAt.outage = counters?.histogram;
          moments.breakAt = Date.now();
          breakAtS = s;
          for (const d of known) {
            if (sb.broker.disconnectClient(d.clientId, ReasonCode.AdministrativeAction, 'bench: drop'))
              dropped++;
          }
          phase = Phase.Outage;
          log(`  t=${s}s credential broken (REVOKE SELECT); dropped ${dropped} clients`);
        }
      } else if (phase === Phase.Outage) {
        if (s - (breakAtS as number) >= o.outageS) {
          await db.fixCredential();
          histAt.fixed = counters?.histogram;
          moments.fixAt = Date.now();
          fixAtS = s;
          phase = Phase.Fixed;
          settled = 0;
          if (fresh.length) await fleet.start(fresh, o.spreadMs);
          log(`  t=${s}s credential fixed (GRANT SELECT); ${fresh.length} never-seen devices boot`);
        }
      } else {
        settled = f.connected >= total ? settled + 1 : 0;
        if (settled >= o.settleS || s - (fixAtS as number) >= o.afterFixMaxS) {
          moments.end = Date.now();
          break;
        }
      }
    }
    if (traceTimer) clearInterval(traceTimer);
    const final = await sb.counters();
    histAt.end = final?.histogram;
    phaseLatencies[phase].push(...drainLatencies(sb.queries));
    const timelines = await fleet.timelines();
    const deviceTotals = await fleet.stats();
    const endAtS = seconds.at(-1)?.t ?? 0;

    // Phase totals.
    const bounds: [PhaseValue, number, number][] = [[Phase.Cold, 0, breakAtS ?? endAtS]];
    if (breakAtS !== null) bounds.push([Phase.Outage, breakAtS, fixAtS ?? endAtS]);
    if (fixAtS !== null) bounds.push([Phase.Fixed, fixAtS, endAtS]);
    const histKeys: Record<PhaseValue, [PhaseValue | 'end', PhaseValue | 'end']> = {
      cold: ['cold', breakAtS !== null ? 'outage' : 'end'],
      outage: ['outage', fixAtS !== null ? 'fixed' : 'end'],
      fixed: ['fixed', 'end'],
    };
    const phases: PhaseTotals[] = bounds.map(([ph, from, to]) => {
      const xs = seconds.filter((x) => x.phase === ph);
      const sum = (g: (x: Second) => number) => xs.reduce((a, x) => a + g(x), 0);
      const refusedP: Record<string, number> = {};
      const authP: Record<string, number> = {};
      const rejP: Record<string, number> = {};
      const admP: Record<string, number> = {};
      for (const x of xs) {
        addInto(refusedP, x.refused);
        addInto(authP, x.auth);
        addInto(rejP, x.rejected);
        addInto(admP, x.admission);
      }
      const peak = xs.reduce((a, x) => (x.issued > a.issued ? x : a), xs[0] as Second);
      const lat = phaseLatencies[ph].sort((a, b) => a - b);
      const [hk0, hk1] = histKeys[ph];
      const g = (k: keyof GuardGauges) =>
        sb.limits ? Math.max(0, ...xs.map((x) => (x.gauges ? x.gauges[k] : 0))) : null;
      return {
        phase: ph,
        fromS: from,
        toS: to,
        attempts: sum((x) => x.attempts),
        accepted: sum((x) => x.accepted),
        refused: refusedP,
        issued: sum((x) => x.issued),
        sent: sum((x) => x.sent),
        failed: sum((x) => x.failed),
        pgConnections: sum((x) => x.pgConnections),
        peakCallsPerSec: peak?.issued ?? 0,
        peakCallsAtS: peak?.t ?? 0,
        latencyP50Ms: percentile(lat, 0.5),
        latencyP99Ms: percentile(lat, 0.99),
        latencyMaxMs: lat.at(-1) ?? null,
        histogramP99LeS: histogramP99(histAt[hk0], histAt[hk1]),
        auth: authP,
        rejected: rejP,
        admission: admP,
        maxLimit: g('limit'),
        maxWaiting: g('waiting'),
        maxHandshakes: g('handshakes'),
        maxTarpitSlots: g('tarpitSlots'),
      };
    });
    const cold = phases.find((p) => p.phase === Phase.Cold) as PhaseTotals;
    const outage = phases.find((p) => p.phase === Phase.Outage);
    const knownIds = new Set(known.map((d) => d.clientId));
    const scores: Scores = {
      ...scoreTimelines(timelines, knownIds, moments, o),
      coldQueriesPerDevice: cold.issued / known.length,
      dropped,
      outageRequestsPerAttempt: outage?.attempts ? outage.issued / outage.attempts : null,
      authStoppedAtEnd: deviceTotals.authStopped,
    };
    let slowResult: SlowResult | null = null;
    if (slow) {
      const all = phaseLatencies.cold.sort((a, b) => a - b);
      const half = seconds.slice(Math.floor(seconds.length / 2));
      slowResult = {
        slowMs: o.slowMs,
        trace,
        ...settling(trace),
        latencyP50Ms: percentile(all, 0.5),
        latencyP99Ms: percentile(all, 0.99),
        latencyMaxMs: all.at(-1) ?? null,
        servedPerSec: half.reduce((a, x) => a + x.sent, 0) / Math.max(1, half.length),
      };
    }
    return {
      kind: spec.kind,
      protection: spec.protection,
      firmware: spec.firmware,
      limits: sb.limits,
      breakAtS,
      fixAtS,
      endAtS,
      seconds,
      phases,
      scores,
      slow: slowResult,
      deviceTotals,
      maxSampleLagMs: Math.round(maxSampleLagMs),
      maxFds,
      durationS: (performance.now() - started) / 1000,
    };
  } finally {
    if (traceTimer) clearInterval(traceTimer);
    await fleet.close();
    await sb.close();
    data.remove();
  }
}

/**
 * When the limit settled: the final value is the median of the last quarter of the trace; settled
 * from the first sample after which every sample stays within ±max(1, 10 %) of it.
 */
export function settling(
  trace: readonly [number, number, number, number][],
): Pick<SlowResult, 'settledAtS' | 'settledLimit' | 'limitRange'> {
  if (trace.length === 0) return { settledAtS: null, settledLimit: null, limitRange: null };
  const limits = trace.map((x) => x[1]);
  const tail = limits.slice(Math.floor(limits.length * 0.75)).sort((a, b) => a - b);
  const ref = tail[Math.floor(tail.length / 2)] as number;
  const tol = Math.max(1, ref * 0.1);
  let from = trace.length;
  for (let i = trace.length - 1; i >= 0; i--) {
    if (Math.abs((trace[i] as [number, number, number, number])[1] - ref) > tol) break;
    from = i;
  }
  return {
    settledAtS: from < trace.length ? (trace[from] as [number, number, number, number])[0] / 1000 : null,
    settledLimit: ref,
    limitRange: [Math.min(...limits), Math.max(...limits)],
  };
}

export async function runAuthStorm(
  o: AuthStormOptions,
  log: (line: string) => void,
): Promise<{ runs: RunResult[]; listener: string }> {
  const known = makeDevices(o.devices);
  const fresh = makeDevices(o.newDevices, o.devices);
  const db = new BenchDatabase();
  await db.connect();
  const runs: RunResult[] = [];
  try {
    await db.create([...known, ...fresh]);
    log(`created ${db.name}.mqtt_user with ${known.length + fresh.length} devices (salted sha256)`);
    let seed = 1;
    if (!o.slowOnly) {
      for (const protection of o.protections) {
        for (const firmware of o.firmwares) {
          log(`run: protections ${protection}, firmware ${firmware}`);
          await db.fixCredential();
          const spec = { kind: 'matrix' as const, protection, firmware, query: db.query, seed: seed++ };
          runs.push(await runOnce(spec, db, known, fresh, o, log));
          // Between runs: let TIME_WAIT sockets and the previous pool's server processes go.
          await sleep(3000);
        }
      }
    }
    if (o.slowMs > 0) {
      log(`run: Postgres slowed to ${o.slowMs} ms per lookup (protections on, naive firmware, cold start)`);
      await db.fixCredential();
      const spec = {
        kind: 'slow' as const,
        protection: Protection.On,
        firmware: Firmware.Naive,
        query: db.slowQuery(o.slowMs),
        seed: seed++,
      };
      runs.push(await runOnce(spec, db, known, [], o, log));
    }
  } finally {
    await db.drop();
    await db.close();
    log(`dropped schema and role ${db.name}`);
  }
  return { runs, listener: LISTENER };
}
