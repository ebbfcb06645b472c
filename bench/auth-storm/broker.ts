/**
 * The broker under test, in the coordinator's process (so the run can break the backend, drop
 * every client with `broker.disconnectClient` and count queries at the pool without IPC), served
 * on one TCP listener on a free loopback port the way testkit's startBroker does.
 *
 * Two auth set-ups, same PostgresAuthenticator (same query, pool, hash check) in both:
 * - `defaults`: the Guard with its default limits and cache (issue 3, DESIGN.md §3);
 * - `off`: the authenticator called directly for every CONNECT — no positive or negative cache,
 *   no stale-if-error, no single-flight, no rate cap, bulkhead or breaker. Single-flight has no
 *   config switch in the Guard, so "everything off" is this thin hook rather than a Guard config;
 *   its answers map like the Guard's (error → 0x88, deny / unknown user → 0x86).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import {
  AdmissionGate,
  AdmissionMetrics,
  procFdUsage,
  resolveAdmissionConfig,
} from '../../packages/broker/src/guard/admission/index.js';
import { PostgresAuthenticator } from '../../packages/broker/src/guard/authenticators/postgres.js';
import { Guard, GuardMetrics, resolveGuardConfig } from '../../packages/broker/src/guard/index.js';
import { KeyedHasher } from '../../packages/broker/src/guard/keyed-hash.js';
import {
  Broker,
  type BrokerHooks,
  BrokerMetrics,
  type Clock,
  type ConnectDecision,
  type ConnectRequest,
  type ListenerAddress,
  Listeners,
  MemoryStorage,
  systemClock,
} from '../../packages/broker/src/index.js';
import { ReasonCode } from '../../packages/broker/src/reason-codes.js';
import { type BenchDatabase, countQueries, PG, type QueryCounter } from './postgres.js';
import type { DeviceSpec } from './protocol.js';

export const Protection = { Defaults: 'defaults', Off: 'off' } as const;
export type ProtectionValue = (typeof Protection)[keyof typeof Protection];

export const LISTENER = 'mqtt';
/** Authenticator name: part of the guard's cache key, so warm-up and run must agree. */
const AUTHENTICATOR = 'pg';

export interface StormBroker {
  readonly broker: Broker;
  readonly port: number;
  readonly queries: QueryCounter;
  /** The guard's metrics (auth outcomes, gate refusals, breaker), null with protections off. */
  readonly guardMetrics: GuardMetrics | null;
  /** Admission refusals by reason, null with protections off. */
  readonly admissionMetrics: AdmissionMetrics | null;
  /** The guard's backend limits as configured, null with protections off. */
  readonly limits: { ratePerSec: number; burst: number; maxInFlight: number } | null;
  close(): Promise<void>;
}

function guardConfig(db: BenchDatabase, limits?: Record<string, unknown>): Record<string, unknown> {
  return {
    authenticators: {
      postgres: {
        [AUTHENTICATOR]: {
          host: PG.host,
          port: PG.port,
          database: PG.database,
          user: db.name,
          query: db.query,
          ...(limits ? { limits } : {}),
        },
      },
    },
    listeners: { [LISTENER]: { authn: [AUTHENTICATOR] } },
  };
}

/**
 * Puts every device in the guard's known-good store as if it had authenticated `ageMs` ago: a
 * Guard on the same data dir, with a clock running `ageMs` behind and a lifted rate cap (this is
 * set-up, not the run), authenticates each device once against the healthy backend.
 */
export async function seedKnownGood(
  db: BenchDatabase,
  dataDir: string,
  devices: readonly DeviceSpec[],
  ageMs: number,
): Promise<number> {
  const past: Clock = { ...systemClock, now: () => Date.now() - ageMs };
  const guard = new Guard(guardConfig(db, { ratePerSec: 1_000_000, burst: 1_000_000, maxInFlight: 64 }), {
    dataDir,
    clock: past,
  });
  let ok = 0;
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < devices.length) {
      const d = devices[next++] as DeviceSpec;
      const r = await guard.authenticate({
        clientId: d.clientId,
        username: d.username,
        password: Buffer.from(d.password),
        protocolVersion: 5,
        keepalive: 0,
        clean: true,
        info: { listener: LISTENER, transport: 'tcp', remoteAddress: '127.0.0.1' },
      });
      if (r.ok) ok++;
    }
  };
  await Promise.all(Array.from({ length: 32 }, lane));
  await guard.close();
  return ok;
}

class UnguardedPostgres implements BrokerHooks {
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

export async function startStormBroker(
  protection: ProtectionValue,
  db: BenchDatabase,
  dataDir: string,
): Promise<StormBroker> {
  const metrics = new BrokerMetrics({ defaultMetrics: false });
  let hooks: BrokerHooks;
  let queries: QueryCounter;
  let guardMetrics: GuardMetrics | null = null;
  let admissionMetrics: AdmissionMetrics | null = null;
  let admission: AdmissionGate | undefined;
  let limits: StormBroker['limits'] = null;
  let closeAuth: () => Promise<void>;
  if (protection === Protection.Defaults) {
    guardMetrics = new GuardMetrics(metrics.registry);
    const guard = new Guard(guardConfig(db), { dataDir, metrics: guardMetrics });
    await guard.start();
    const pgAuth = guard.authenticator(AUTHENTICATOR) as PostgresAuthenticator;
    queries = countQueries(pgAuth.pool);
    const l = guard.config.authenticators.postgres[AUTHENTICATOR]!.limits;
    limits = { ratePerSec: l.ratePerSec, burst: l.burst, maxInFlight: l.maxInFlight };
    // Bound: the engine calls hook methods as plain functions (handlers/connect.ts `hook(request)`),
    // so passing the Guard itself would lose `this`.
    hooks = {
      authenticate: (r) => guard.authenticate(r),
      authorizePublish: (id, topic) => guard.authorizePublish(id, topic),
      authorizeSubscribe: (id, filter) => guard.authorizeSubscribe(id, filter),
      verifiesLocally: (r) => guard.verifiesLocally(r),
      onClientDisconnected: (id) => guard.onClientDisconnected(id),
      attach: (b) => guard.attach(b),
    };
    admissionMetrics = new AdmissionMetrics(metrics.registry);
    // Admission defaults, as `breakwater up` builds it (admission README, "Integration").
    admission = new AdmissionGate(resolveAdmissionConfig({}), {
      clock: systemClock,
      fdUsage: procFdUsage(),
      metrics: admissionMetrics,
    });
    closeAuth = () => guard.close();
  } else {
    const config = resolveGuardConfig(guardConfig(db)).authenticators.postgres[AUTHENTICATOR]!;
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
    broker,
    port: (address as ListenerAddress).port,
    queries,
    guardMetrics,
    admissionMetrics,
    limits,
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
