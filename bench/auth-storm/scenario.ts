/**
 * The incident of issue 3, replayed (DESIGN.md §1, "Auth backend storm"): a fleet with
 * Postgres-backed credentials on one listener; at `breakAt` the broker's Postgres credential
 * breaks and every client is dropped; devices retry on a fixed 1 s period; at `fixAt` the
 * credential is repaired. Run once with the guard's defaults and once with every protection off,
 * sampling once a second.
 */
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { ReasonCode } from '../../packages/broker/src/reason-codes.js';
import {
  LISTENER,
  Protection,
  type ProtectionValue,
  seedKnownGood,
  startStormBroker,
  tempDataDir,
} from './broker.js';
import { Fleet, type FleetStats } from './devices.js';
import { BenchDatabase } from './postgres.js';
import type { DeviceSpec } from './protocol.js';

export interface AuthStormOptions {
  devices: number;
  /** Device processes (each well under the per-process FD limit). */
  processes: number;
  breakAtS: number;
  fixAtS: number;
  endAtS: number;
  retryMs: number;
  /** First connects spread over this window. */
  spreadMs: number;
  /**
   * How long ago (minutes) the fleet last authenticated against the backend in the defaults run:
   * past the positive TTL (1 h) and within stale-if-error (24 h), so every reconnect needs the
   * backend or the stale-if-error rule — the cache alone cannot answer.
   */
  seedAgeMin: number;
  protections: ProtectionValue[];
}

/** One second of the run; counts are deltas over the second that ends at `t`. */
export interface Second {
  t: number;
  attempts: number;
  accepted: number;
  /** Refusing CONNACKs by reason code ("0x88") plus `no_connack` (closed before any answer). */
  refused: Record<string, number>;
  /** Devices connected at the end of the second (client side). */
  connected: number;
  /** Connections the broker holds at the end of the second. */
  brokerConnected: number;
  /** Auth queries that reached PostgreSQL (got a pool connection). */
  queries: number;
  /** Auth queries the broker issued (with protections off some of them time out in the pool queue). */
  queriesIssued: number;
  /** Issued queries that failed: server error, or no pool connection within the connect timeout. */
  queryErrors: number;
  /** Server connections the auth pool opened. */
  pgConnections: number;
  /** pg_stat_database commits + rollbacks of database `test` (server side, whole database). */
  serverXacts: number;
  /** Broker (coordinator) process CPU over the second, in % of one core. */
  brokerCpuPct: number;
  /** Guard decisions by outcome (cache_hit, stale_admit, ...); empty with protections off. */
  auth: Record<string, number>;
  /** Backend calls the guard's gate did not make, by reason; empty with protections off. */
  gateRejected: Record<string, number>;
  /** Admission refusals by reason (rate, handshakes, flapping, ...); empty with protections off. */
  admissionRefused: Record<string, number>;
  /** Breaker state at the end of the second: 0 closed, 1 half-open, 2 open; null when off. */
  breaker: number | null;
}

export interface RunTotals {
  attempts: number;
  queries: number;
  queriesIssued: number;
  queryErrors: number;
  pgConnections: number;
  serverXacts: number;
  queriesPerAttempt: number | null;
  /** Over the broken window only (breakAt..fixAt). */
  brokenAttempts: number;
  brokenQueries: number;
  brokenQueriesPerAttempt: number | null;
  peakQueriesPerSec: number;
  peakQueriesAtS: number;
  /** Seconds whose query count exceeded the cap's rate (defaults only). */
  secondsAboveRate: number;
  /**
   * The token bucket's own promise, checked on 1 s bins: the largest excess, over any run of
   * consecutive seconds, of queries above `burst + ratePerSec × seconds` (≤ 0: the bound held).
   * Null with protections off.
   */
  capBoundExcess: number | null;
  refused: Record<string, number>;
  /** Devices connected just before the drop. */
  connectedBeforeDrop: number;
  dropped: number;
  /** Of those, back within 10 s of the drop. */
  backWithin10s: number;
  backWithin10sPct: number;
  /** Seconds from the drop until 99 % of them were connected again (null: never in the run). */
  recover99S: number | null;
  recover99BeforeFix: boolean;
  /** Seconds from the start until 99 % of the fleet was first connected. */
  initial99S: number | null;
  finalConnected: number;
}

export interface RunResult {
  protection: ProtectionValue;
  limits: { ratePerSec: number; burst: number; maxInFlight: number } | null;
  seed: { devices: number; ageMin: number; durationS: number } | null;
  seconds: Second[];
  totals: RunTotals;
  /** The coordinator's sample timing (event-loop lag under load shows up here). */
  maxSampleLagMs: number;
}

export function makeDevices(n: number): DeviceSpec[] {
  return Array.from({ length: n }, (_, i) => {
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

async function labelled(
  metric: { get(): Promise<{ values: { labels: Record<string, string | number>; value: number }[] }> },
  label: string,
): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const v of (await metric.get()).values) {
    const k = String(v.labels[label]);
    out[k] = (out[k] ?? 0) + v.value;
  }
  return out;
}

function percentileTime(values: (number | null)[], p: number): number | null {
  if (values.length === 0) return null;
  const sorted = values.map((v) => (v === null ? Number.POSITIVE_INFINITY : v)).sort((a, b) => a - b);
  const v = sorted[Math.ceil(p * sorted.length) - 1] as number;
  return Number.isFinite(v) ? v : null;
}

async function runOnce(
  protection: ProtectionValue,
  db: BenchDatabase,
  devices: readonly DeviceSpec[],
  o: AuthStormOptions,
  log: (line: string) => void,
): Promise<RunResult> {
  const data = tempDataDir();
  let seed: RunResult['seed'] = null;
  if (protection === Protection.Defaults) {
    const started = performance.now();
    const n = await seedKnownGood(db, data.dir, devices, o.seedAgeMin * 60_000);
    seed = { devices: n, ageMin: o.seedAgeMin, durationS: (performance.now() - started) / 1000 };
    log(`  seeded ${n} known-good entries ${o.seedAgeMin} min old in ${seed.durationS.toFixed(1)} s`);
  }
  const sb = await startStormBroker(protection, db, data.dir);
  const fleet = new Fleet(o.processes);
  const seconds: Second[] = [];
  let connectedBeforeDrop = 0;
  let dropped = 0;
  let initial99S: number | null = null;
  let maxSampleLagMs = 0;
  try {
    let prevFleet: FleetStats = {
      attempts: 0,
      connackOk: 0,
      refused: {},
      noConnack: 0,
      errors: {},
      connected: 0,
      serverDisconnects: 0,
      marked: 0,
      markedBack: 0,
    };
    let prevQueries = { ...sb.queries };
    let prevXacts = await db.serverTransactions();
    let prevAuth: Record<string, number> = {};
    let prevGate: Record<string, number> = {};
    let prevAdmission: Record<string, number> = {};
    let prevCpu = process.cpuUsage();
    let prevAt = performance.now();

    // Forked processes take a while to load; t=0 is when the devices are told to start, not when
    // the last process came up (early starters would otherwise fall before t=0).
    await fleet.stats();
    prevCpu = process.cpuUsage();
    prevAt = performance.now();
    const t0 = prevAt;
    await fleet.start(devices, {
      host: '127.0.0.1',
      port: sb.port,
      retryMs: o.retryMs,
      connectTimeoutMs: 30_000,
      keepalive: 600,
      spreadMs: o.spreadMs,
    });
    for (let s = 1; s <= o.endAtS; s++) {
      const due = t0 + s * 1000;
      await sleep(Math.max(0, due - performance.now()));
      maxSampleLagMs = Math.max(maxSampleLagMs, performance.now() - due);
      const now = performance.now();
      const q = { ...sb.queries };
      const [f, xacts] = await Promise.all([fleet.stats(), db.serverTransactions()]);
      const cpu = process.cpuUsage();
      const auth = sb.guardMetrics ? await labelled(sb.guardMetrics.authTotal, 'outcome') : {};
      const gate = sb.guardMetrics ? await labelled(sb.guardMetrics.backendRejected, 'reason') : {};
      const admission = sb.admissionMetrics ? await labelled(sb.admissionMetrics.refused, 'reason') : {};
      const breaker = sb.guardMetrics
        ? ((await sb.guardMetrics.breakerState.get()).values[0]?.value ?? 0)
        : null;
      const refused = diff(f.refused, prevFleet.refused);
      const noConnack = f.noConnack - prevFleet.noConnack;
      if (noConnack) refused.no_connack = noConnack;
      const second: Second = {
        t: s,
        attempts: f.attempts - prevFleet.attempts,
        accepted: f.connackOk - prevFleet.connackOk,
        refused,
        connected: f.connected,
        brokerConnected: sb.broker.connectedClients,
        queries: q.sent - prevQueries.sent,
        queriesIssued: q.issued - prevQueries.issued,
        pgConnections: q.connections - prevQueries.connections,
        queryErrors: q.failed - prevQueries.failed,
        // Minus one: the previous sample's own query.
        serverXacts: Math.max(0, xacts - prevXacts - 1),
        brokerCpuPct: Math.round(
          ((cpu.user - prevCpu.user + cpu.system - prevCpu.system) / 1000 / (now - prevAt)) * 100,
        ),
        auth: diff(auth, prevAuth),
        gateRejected: diff(gate, prevGate),
        admissionRefused: diff(admission, prevAdmission),
        breaker,
      };
      seconds.push(second);
      prevFleet = f;
      prevQueries = q;
      prevXacts = xacts;
      prevAuth = auth;
      prevGate = gate;
      prevAdmission = admission;
      prevCpu = cpu;
      prevAt = now;
      if (initial99S === null && f.connected >= 0.99 * devices.length) initial99S = s;
      if (s % 5 === 0 || s === o.breakAtS + 1 || s === o.fixAtS + 1) {
        log(
          `  t=${s}s connected ${f.connected} attempts/s ${second.attempts} queries/s ${second.queries} refused ${JSON.stringify(second.refused)}`,
        );
      }

      if (s === o.breakAtS) {
        await db.breakCredential();
        const dropAt = Date.now();
        connectedBeforeDrop = await fleet.mark(dropAt);
        for (const d of devices) {
          if (sb.broker.disconnectClient(d.clientId, ReasonCode.AdministrativeAction, 'bench: drop'))
            dropped++;
        }
        log(`  t=${s}s credential broken (REVOKE SELECT); dropped ${dropped} clients`);
      } else if (s === o.fixAtS) {
        await db.fixCredential();
        log(`  t=${s}s credential fixed (GRANT SELECT)`);
      }
    }
    const recovery = await fleet.recovery();
    const sum = (xs: Second[], f: (x: Second) => number) => xs.reduce((a, x) => a + f(x), 0);
    const broken = seconds.filter((x) => x.t > o.breakAtS && x.t <= o.fixAtS);
    const attempts = sum(seconds, (x) => x.attempts);
    const queries = sum(seconds, (x) => x.queries);
    const brokenAttempts = sum(broken, (x) => x.attempts);
    const brokenQueries = sum(broken, (x) => x.queries);
    const peak = seconds.reduce((a, x) => (x.queries > a.queries ? x : a), seconds[0] as Second);
    const refusedTotal: Record<string, number> = {};
    for (const x of seconds)
      for (const [k, v] of Object.entries(x.refused)) refusedTotal[k] = (refusedTotal[k] ?? 0) + v;
    const backWithin10s = recovery.filter((ms) => ms !== null && ms <= 10_000).length;
    const r99 = percentileTime(recovery, 0.99);
    let capBoundExcess: number | null = null;
    if (sb.limits) {
      const { ratePerSec, burst } = sb.limits;
      capBoundExcess = Number.NEGATIVE_INFINITY;
      for (let i = 0; i < seconds.length; i++) {
        let q = 0;
        for (let j = i; j < seconds.length; j++) {
          q += (seconds[j] as Second).queries;
          capBoundExcess = Math.max(capBoundExcess, q - burst - ratePerSec * (j - i + 1));
        }
      }
    }
    const totals: RunTotals = {
      attempts,
      queries,
      queriesIssued: sum(seconds, (x) => x.queriesIssued),
      queryErrors: sum(seconds, (x) => x.queryErrors),
      pgConnections: sum(seconds, (x) => x.pgConnections),
      serverXacts: sum(seconds, (x) => x.serverXacts),
      queriesPerAttempt: attempts ? queries / attempts : null,
      brokenAttempts,
      brokenQueries,
      brokenQueriesPerAttempt: brokenAttempts ? brokenQueries / brokenAttempts : null,
      peakQueriesPerSec: peak.queries,
      peakQueriesAtS: peak.t,
      capBoundExcess,
      secondsAboveRate: sb.limits
        ? seconds.filter((x) => x.queries > (sb.limits?.ratePerSec ?? 0)).length
        : 0,
      refused: refusedTotal,
      connectedBeforeDrop,
      dropped,
      backWithin10s,
      backWithin10sPct: connectedBeforeDrop ? (backWithin10s / connectedBeforeDrop) * 100 : 0,
      recover99S: r99 === null ? null : r99 / 1000,
      recover99BeforeFix: r99 !== null && r99 / 1000 < o.fixAtS - o.breakAtS,
      initial99S,
      finalConnected: seconds.at(-1)?.connected ?? 0,
    };
    return {
      protection,
      limits: sb.limits,
      seed,
      seconds,
      totals,
      maxSampleLagMs: Math.round(maxSampleLagMs),
    };
  } finally {
    await fleet.close();
    await sb.close();
    data.remove();
  }
}

export async function runAuthStorm(
  o: AuthStormOptions,
  log: (line: string) => void,
): Promise<{ runs: RunResult[]; listener: string }> {
  const devices = makeDevices(o.devices);
  const db = new BenchDatabase();
  await db.connect();
  const runs: RunResult[] = [];
  try {
    await db.create(devices);
    log(`created ${db.name}.mqtt_user with ${devices.length} devices (salted sha256)`);
    for (const protection of o.protections) {
      log(`run: protections ${protection}`);
      await db.fixCredential();
      runs.push(await runOnce(protection, db, devices, o, log));
    }
  } finally {
    await db.drop();
    await db.close();
    log(`dropped schema and role ${db.name}`);
  }
  return { runs, listener: LISTENER };
}
