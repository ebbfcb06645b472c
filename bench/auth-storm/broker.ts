/**
 * The broker under test, in the coordinator's process (so the run can break the backend, drop
 * every client with `broker.disconnectClient` and count queries at the pool without IPC), served
 * on one TCP listener on a free loopback port.
 *
 * Two set-ups, same PostgresAuthenticator (same query, pool, hash check) in both:
 * - `on`: wired as `breakwater up` wires it (packages/cli/src/up.ts): `Broker` with the `Guard` as
 *   its hooks and an `AdmissionGate`, `Listeners` with the same gate, the guard told about the
 *   gate (slow start on breaker recovery). Every config is the default: `{}` for admission, and
 *   for the guard only what an operator must write (the postgres connection, its query, and the
 *   listener's authn chain). Its data dir is fresh for every run: nothing is known at start.
 * - `off`: the authenticator called directly for every CONNECT — no positive or negative cache,
 *   no stale-if-error, no single-flight, no adaptive limit, wait queue, rate ceiling or breaker,
 *   and no admission gate (so no tarpit, no flapping detector). Single-flight has no config
 *   switch in the Guard, so "everything off" is this thin hook rather than a Guard config;
 *   its answers map like the Guard's (error → 0x88, deny / unknown user → 0x86).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  AdmissionGate,
  AdmissionMetrics,
  Broker,
  type BrokerHooks,
  BrokerMetrics,
  type ConnectDecision,
  type ConnectRequest,
  Guard,
  GuardMetrics,
  type ListenerAddress,
  Listeners,
  MemoryStorage,
  procFdUsage,
  ReasonCode,
  resolveAdmissionConfig,
  resolveGuardConfig,
  systemClock,
} from '@breakwater/broker';
import pino from 'pino';
import { PostgresAuthenticator } from '../../packages/broker/src/guard/authenticators/postgres.js';
import { KeyedHasher } from '../../packages/broker/src/guard/keyed-hash.js';
import { type BenchDatabase, countQueries, PG, type QueryCounter } from './postgres.js';

export const Protection = { On: 'on', Off: 'off' } as const;
export type ProtectionValue = (typeof Protection)[keyof typeof Protection];

export const LISTENER = 'mqtt';
const AUTHENTICATOR = 'pg';

/** What the guard's backend gate and admission look like right now (protections on). */
export interface GuardGauges {
  /** breakwater_auth_backend_limit: calls allowed in flight. */
  limit: number;
  /** breakwater_auth_backend_waiting. */
  waiting: number;
  /** breakwater_auth_backend_inflight. */
  inflight: number;
  /** Breaker: 0 closed, 1 half-open, 2 open. */
  breaker: number;
  /** breakwater_handshakes_in_progress of the listener. */
  handshakes: number;
  /** breakwater_tarpit_slots_in_use. */
  tarpitSlots: number;
  /** breakwater_admission_overloaded. */
  overloaded: number;
  /** breakwater_admission_event_loop_delay_seconds, in ms. */
  eventLoopDelayMs: number;
}

/** Cumulative counters read from the broker's registry (protections on). */
export interface GuardCounters {
  /** breakwater_auth_total by outcome. */
  auth: Record<string, number>;
  /** breakwater_auth_backend_rejected_total by reason. */
  rejected: Record<string, number>;
  /** breakwater_admission_refused_total by reason. */
  admission: Record<string, number>;
  /** breakwater_flapping_bans_total. */
  bans: number;
  /** breakwater_auth_backend_duration_seconds: cumulative bucket counts by upper bound (s). */
  histogram: { le: number; count: number }[];
}

export interface StormBroker {
  readonly protection: ProtectionValue;
  readonly broker: Broker;
  readonly port: number;
  readonly queries: QueryCounter;
  /** Effective backend limits and pool size (protections on), for the report. */
  readonly limits: {
    initial: number;
    maxInFlight: number;
    poolSize: number;
    maxWaiting: number;
    maxWaitMs: number;
    ratePerSec: number;
  } | null;
  gauges(): Promise<GuardGauges | null>;
  counters(): Promise<GuardCounters | null>;
  close(): Promise<void>;
}

function guardConfig(db: BenchDatabase, query: string): Record<string, unknown> {
  return {
    authenticators: {
      postgres: {
        [AUTHENTICATOR]: { host: PG.host, port: PG.port, database: PG.database, user: db.name, query },
      },
    },
    listeners: { [LISTENER]: { authn: [AUTHENTICATOR] } },
  };
}

class UnguardedPostgres {
  readonly authenticator: PostgresAuthenticator;
  constructor(authenticator: PostgresAuthenticator) {
    this.authenticator = authenticator;
  }

  async authenticate(request: ConnectRequest): Promise<ConnectDecision> {
    const r = await this.authenticator.authenticate({
      listener: request.info.listener,
      clientId: request.clientId,
      username: request.username,
      password: request.password,
      peerAddress: request.info.remoteAddress,
      peerCertificate: undefined,
    });
    if (r.outcome === 'allow') return { ok: true };
    if (r.outcome === 'error')
      return {
        ok: false,
        reasonCode: ReasonCode.ServerUnavailable,
        reasonString: 'authentication backend unavailable',
      };
    return {
      ok: false,
      reasonCode: ReasonCode.BadUserNameOrPassword,
      reasonString: 'bad user name or password',
    };
  }
}

type Metric = {
  get(): Promise<{
    values: { labels: Partial<Record<string, string | number>>; value: number; metricName?: string }[];
  }>;
};

async function byLabel(metric: Metric, label: string): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const v of (await metric.get()).values) {
    const k = String(v.labels[label]);
    out[k] = (out[k] ?? 0) + v.value;
  }
  return out;
}

async function first(metric: Metric): Promise<number> {
  return (await metric.get()).values[0]?.value ?? 0;
}

export async function startStormBroker(
  protection: ProtectionValue,
  db: BenchDatabase,
  dataDir: string,
  query: string,
): Promise<StormBroker> {
  const metrics = new BrokerMetrics({ defaultMetrics: false });
  let hooks: BrokerHooks;
  let queries: QueryCounter;
  let admission: AdmissionGate | undefined;
  let limits: StormBroker['limits'] = null;
  let closeAuth: () => Promise<void>;
  let gauges: StormBroker['gauges'] = async () => null;
  let counters: StormBroker['counters'] = async () => null;
  if (protection === Protection.On) {
    const guardMetrics = new GuardMetrics(metrics.registry);
    const admissionMetrics = new AdmissionMetrics(metrics.registry);
    const fdUsage = procFdUsage();
    admission = new AdmissionGate(resolveAdmissionConfig({}), {
      clock: systemClock,
      metrics: admissionMetrics,
      ...(fdUsage ? { fdUsage } : {}),
    });
    const guard = new Guard(guardConfig(db, query), { dataDir, metrics: guardMetrics, admission });
    await guard.start();
    const pgAuth = guard.authenticator(AUTHENTICATOR) as PostgresAuthenticator;
    queries = countQueries(pgAuth.pool);
    const pgConfig = guard.config.authenticators.postgres[AUTHENTICATOR]!;
    const l = pgConfig.limits;
    limits = {
      initial: l.adaptive.initial,
      maxInFlight: l.maxInFlight,
      poolSize: pgConfig.poolSize,
      maxWaiting: l.queue.maxWaiting,
      maxWaitMs: l.queue.maxWaitMs,
      ratePerSec: l.ratePerSec,
    };
    hooks = guard;
    closeAuth = () => guard.close();
    const gm = guardMetrics;
    const am = admissionMetrics;
    gauges = async () => ({
      limit: await first(gm.backendLimit),
      waiting: await first(gm.backendWaiting),
      inflight: await first(gm.backendInflight),
      breaker: await first(gm.breakerState),
      handshakes: (await byLabel(am.handshakesInProgress, 'listener'))[LISTENER] ?? 0,
      tarpitSlots: await first(am.tarpitSlotsInUse),
      overloaded: await first(am.overloaded),
      eventLoopDelayMs: (await first(am.eventLoopDelay)) * 1000,
    });
    counters = async () => {
      const hist = (await (gm.backendDuration as unknown as Metric).get()).values
        .filter((v) => v.metricName?.endsWith('_bucket'))
        .map((v) => ({
          le: Number(v.labels.le === '+Inf' ? Number.POSITIVE_INFINITY : v.labels.le),
          count: v.value,
        }))
        .sort((a, b) => a.le - b.le);
      return {
        auth: await byLabel(gm.authTotal, 'outcome'),
        rejected: await byLabel(gm.backendRejected, 'reason'),
        admission: await byLabel(am.refused, 'reason'),
        bans: Object.values(await byLabel(am.flappingBans, 'scope')).reduce((a, b) => a + b, 0),
        histogram: hist,
      };
    };
  } else {
    const config = resolveGuardConfig(guardConfig(db, query)).authenticators.postgres[AUTHENTICATOR]!;
    const auth = new PostgresAuthenticator(AUTHENTICATOR, config, {
      clock: systemClock,
      logger: pino({ level: 'silent' }),
      hasher: KeyedHasher.fromDataDir(dataDir),
    });
    queries = countQueries(auth.pool);
    const unguarded = new UnguardedPostgres(auth);
    hooks = { authenticate: (r) => unguarded.authenticate(r) };
    closeAuth = () => auth.close();
  }
  const broker = new Broker({
    storage: new MemoryStorage(),
    metrics,
    hooks,
    ...(admission ? { admission } : {}),
  });
  await broker.start();
  const listeners = new Listeners(
    broker,
    [{ name: LISTENER, type: 'tcp', host: '127.0.0.1', port: 0 }],
    admission ? { admission } : {},
  );
  const [address] = await listeners.start();
  return {
    protection,
    broker,
    port: (address as ListenerAddress).port,
    queries,
    limits,
    gauges,
    counters,
    async close() {
      listeners.stopAccepting();
      await broker.close();
      await listeners.close({ graceMs: 0 });
      await closeAuth();
    },
  };
}

export function tempDataDir(): { dir: string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'bw-auth-storm-'));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}
