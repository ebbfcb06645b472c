import type { Logger } from 'pino';
import pino from 'pino';
import type { Counter, Registry } from 'prom-client';
import { type Clock, systemClock, type TimerHandle } from '../clock.js';
import type { AuditEntry } from '../http/audit-log.js';
import type { BrokerControl, BrokerHooks, ConnectDecision, ConnectRequest } from '../options.js';
import { ReasonCode } from '../reason-codes.js';
import { type AuthDecision, AuthEngine } from './auth-engine.js';
import { AnonymousAuthenticator } from './authenticators/anonymous.js';
import { HttpAuthenticator } from './authenticators/http.js';
import { JwtAuthenticator } from './authenticators/jwt.js';
import { MtlsAuthenticator, readCertificate } from './authenticators/mtls.js';
import { PasswordFileAuthenticator } from './authenticators/password-file.js';
import { PostgresAuthenticator } from './authenticators/postgres.js';
import type { Authenticator, AuthenticatorContext, AuthRequest } from './authenticators/types.js';
import { type AuthzExplanation, type AuthzOptions, TopicAuthorizer } from './authz.js';
import {
  type AuthzRule,
  type CompiledRule,
  compileRule,
  compileRules,
  type ParsedRule,
  type Principal,
} from './authz-rules.js';
import { AuthzRulesFile, defaultRulesFile, type RulesFileError } from './authz-rules-file.js';
import { BackendGate } from './backend-gate.js';
import {
  defaultAuthzRules,
  type GuardConfig,
  type ListenerGuardConfig,
  resolveGuardConfig,
} from './config.js';
import { GuardError } from './errors.js';
import { KeyedHasher } from './keyed-hash.js';
import { KnownGoodStore } from './known-good-store.js';
import { GuardMetrics } from './metrics.js';
import { normalizeSerial, type RevocationEntry, RevocationList } from './revocation.js';

export interface GuardDeps {
  /** Holds the per-install secret and the known-good store. */
  dataDir: string;
  clock?: Clock;
  logger?: Logger;
  /** A GuardMetrics, or anything with a prom-client `registry` (BrokerMetrics) to register into. */
  metrics?: GuardMetrics | { registry: Registry };
  /** Where a bypass that expires by itself is recorded (the admin API records the others). */
  auditLog?: { append(entry: AuditEntry): void };
  /**
   * Admission slow start after a recovery: when a backend's breaker closes again or a bypass ends,
   * the whole fleet that was kept out comes back at once; slow start ramps it in.
   */
  admission?: { beginSlowStart(): void };
}

/**
 * What `authenticate` resolves to: a ConnectDecision (so a Guard is a BrokerHooks) plus what the
 * engine may use — `expiresAt` (epoch ms, JWT `exp`): end the session then; `superuser`.
 */
export type GuardDecision =
  | (Extract<ConnectDecision, { ok: true }> & {
      identity: string;
      superuser: boolean;
      expiresAt?: number;
      tokenId?: string;
    })
  | Extract<ConnectDecision, { ok: false }>;

export interface BypassState {
  until: number;
  reason: string;
  actor: string;
}

/** A listener's authorizer; replaced (not mutated) when the live rules change. */
interface ListenerAuthz {
  current: TopicAuthorizer;
  readonly config: AuthzOptions;
  readonly path: string;
}

/** What `breakwater authz check` asks: a principal, an action, a topic. */
export interface AuthzQuery {
  clientId: string;
  username?: string;
  certCn?: string;
  listener?: string;
  source?: string;
  superuser?: boolean;
  action: 'publish' | 'subscribe';
  topic: string;
}

/** The live rules as the API shows them. */
export interface AuthzRulesView {
  file: string;
  /** The rules in force from the rules file / API, with their line in the file. */
  rules: Array<AuthzRule & { line: number }>;
  /** guard.authz.rules from the config file (checked after the live rules). */
  configRules: AuthzRule[];
  /** The last problem with the file: its rules are not in force, the previous ones are. */
  error: RulesFileError | null;
}

// Per-session decision cache bits (one small int per topic: publish and subscribe answers).
const PUB_KNOWN = 1;
const PUB_ALLOWED = 2;
const SUB_KNOWN = 4;
const SUB_ALLOWED = 8;
/**
 * Topics cached per connection. A device publishes to a handful; for one that uses more, the
 * first 64 stay cached and the rest are decided by the rules each time (no LRU bookkeeping on
 * the hot path, bounded memory).
 */
const MAX_CACHED_DECISIONS = 64;
/** Sessions re-checked per event-loop turn after a rule change. */
const RECHECK_BATCH = 1_000;

interface Session {
  principal: Principal;
  authz: ListenerAuthz;
  refs: number;
  /** Decisions by topic, allocated on the first check; valid while `decisionsGen` is current. */
  decisions: Map<string, number> | null;
  decisionsGen: number;
  /** What a revocation may name, so `revoke` can find the live sessions it must end. */
  tokenId: string | undefined;
  certSerial: string | undefined;
  /** Token `iat` (epoch ms) for token credentials, for "issued before T" revocation. */
  issuedAt: number | undefined;
}

const PRUNE_INTERVAL_MS = 10 * 60 * 1000;

/**
 * The guard's authentication and authorization entry point (issue 3): pass it as `hooks` to the
 * Broker. One AuthEngine per listener (an ordered authn chain with caches and backend gates);
 * gates are per backend and shared by the listeners that use it, so the query cap holds for the
 * backend as a whole.
 *
 * Lifecycle: `await guard.start()` loads keys and files (it never throws because a backend is
 * down; `authenticate` also starts it lazily); `clientDisconnected(id)` when a session's
 * connection ends; `close()` at shutdown.
 */
export class Guard implements BrokerHooks {
  readonly config: GuardConfig;
  readonly metrics: GuardMetrics | undefined;
  readonly #clock: Clock;
  readonly #logger: Logger;
  readonly #hasher: KeyedHasher;
  readonly #store: KnownGoodStore | null;
  readonly #authenticators = new Map<string, Authenticator>();
  readonly #gates = new Map<string, BackendGate>();
  readonly #engines = new Map<string, AuthEngine | null>();
  readonly #authorizers = new Map<string, ListenerAuthz>();
  /** For a client without a session here (a will that fires after its connection ended). */
  readonly #defaultAuthz: ListenerAuthz;
  /** guard.authz.rules, compiled once. */
  readonly #configRules: readonly CompiledRule[];
  /** The rules file's rules in force. */
  #liveRules: readonly CompiledRule[] = [];
  #liveParsed: readonly ParsedRule[] = [];
  /** Bumped on every rule change: cached decisions of an older generation are stale. */
  #authzGen = 0;
  readonly rulesFile: AuthzRulesFile;
  readonly #deniedPublish: Counter.Internal | null;
  readonly #deniedSubscribe: Counter.Internal | null;
  readonly #sessions = new Map<string, Session>();
  readonly #bypass = new Map<string, BypassState>();
  readonly #bypassTimers = new Map<string, TimerHandle>();
  readonly #auditLog: GuardDeps['auditLog'] | undefined;
  readonly #admission: GuardDeps['admission'] | undefined;
  readonly #onRecovered = (): void => this.#admission?.beginSlowStart();
  readonly revocations: RevocationList;

  /** The persisted known-good store (null when it could not be opened): a cluster shares it. */
  get knownGood(): KnownGoodStore | null {
    return this.#store;
  }
  #started: Promise<void> | null = null;
  #pruneTimer: TimerHandle | null = null;
  #closed = false;
  /** The broker, once it has attached this guard (BrokerHooks.attach): revocation ends sessions. */
  #broker: BrokerControl | null = null;

  constructor(config: unknown, deps: GuardDeps) {
    // The engine reads hooks once and calls them detached (no `this`): bind the hook methods.
    this.authenticate = this.authenticate.bind(this);
    this.authorizePublish = this.authorizePublish.bind(this);
    this.authorizeSubscribe = this.authorizeSubscribe.bind(this);
    this.config = resolveGuardConfig(config);
    this.#clock = deps.clock ?? systemClock;
    this.#auditLog = deps.auditLog;
    this.#admission = deps.admission;
    this.#logger = (deps.logger ?? pino({ level: 'silent' })).child({ component: 'guard' });
    const m = deps.metrics;
    this.metrics = m ? (m instanceof GuardMetrics ? m : new GuardMetrics(m.registry)) : undefined;
    this.#hasher = KeyedHasher.fromDataDir(deps.dataDir);
    this.revocations = new RevocationList(this.config.revoked);
    let store: KnownGoodStore | null = null;
    try {
      store = new KnownGoodStore(deps.dataDir);
    } catch (err) {
      // Without the store the guard still works; it just forgets known-good devices on restart.
      this.#logger.error(
        { err, dataDir: deps.dataDir },
        'known-good store unavailable; stale-if-error is memory-only',
      );
    }
    this.#store = store;

    const ctx: AuthenticatorContext = { clock: this.#clock, logger: this.#logger, hasher: this.#hasher };
    const a = this.config.authenticators;
    for (const [name, c] of Object.entries(a.jwt))
      this.#authenticators.set(name, new JwtAuthenticator(name, c, ctx));
    for (const [name, c] of Object.entries(a.passwordFile)) {
      this.#authenticators.set(name, new PasswordFileAuthenticator(name, c, ctx));
    }
    for (const [name, c] of Object.entries(a.postgres)) {
      this.#authenticators.set(name, new PostgresAuthenticator(name, c, ctx));
      // More calls in flight than pool connections would only wait inside pg-pool, adding latency
      // the limiter would then read as a slow backend.
      this.#gates.set(
        name,
        new BackendGate(name, c.limits, this.#clock, this.metrics, this.#onRecovered, c.poolSize),
      );
    }
    for (const [name, c] of Object.entries(a.http)) {
      this.#authenticators.set(name, new HttpAuthenticator(name, c, ctx));
      this.#gates.set(name, new BackendGate(name, c.limits, this.#clock, this.metrics, this.#onRecovered));
    }
    for (const [name, c] of Object.entries(a.mtls))
      this.#authenticators.set(name, new MtlsAuthenticator(name, c));
    for (const name of Object.keys(a.anonymous))
      this.#authenticators.set(name, new AnonymousAuthenticator(name));

    this.#deniedPublish = this.metrics?.authzDenied.labels('publish') ?? null;
    this.#deniedSubscribe = this.metrics?.authzDenied.labels('subscribe') ?? null;
    this.#configRules = compileRules(this.config.authz.rules, 'guard.authz.rules');
    // For a will whose client is gone: the `*` entry's rules, else the only listener's, else the
    // built-in defaults (which listener the client used is not kept after it disconnects).
    const names = Object.keys(this.config.listeners);
    const fallbackKey = this.config.listeners['*'] ? '*' : names.length === 1 ? names[0]! : null;
    const fallbackAuthz = fallbackKey === null ? null : this.config.listeners[fallbackKey]!.authz;
    const fallback: AuthzOptions = {
      rules: fallbackAuthz?.rules ?? [...defaultAuthzRules],
      superuserBypass: false,
      default: fallbackAuthz?.default ?? 'deny',
    };
    const fallbackPath =
      fallbackKey === null ? 'default rules' : `guard.listeners.${fallbackKey}.authz.rules`;
    this.#defaultAuthz = {
      config: fallback,
      path: fallbackPath,
      current: new TopicAuthorizer(fallback, this.#configRules, fallbackPath),
    };
    const path = this.config.authz.rulesFile ?? defaultRulesFile(deps.dataDir);
    this.rulesFile = new AuthzRulesFile(path, {
      clock: this.#clock,
      logger: this.#logger,
      debounceMs: this.config.authz.reloadDebounceMs,
      events: {
        loaded: (rules) => this.#liveRulesLoaded(rules),
        failed: (error) => {
          this.metrics?.authzReloads.inc({ outcome: 'error' });
          this.metrics?.authzRulesFileError.reset();
          this.metrics?.authzRulesFileError.set({ line: String(error.line ?? 0) }, 1);
        },
      },
    });
    if (!this.rulesFile.load(true)) {
      // Starting without the live rules could open what their deny rules close: refuse, like a
      // bad config key (config/load.ts reports the same at `breakwater up`).
      this.#store?.close();
      const e = this.rulesFile.error!;
      throw new GuardError('BW_ERR_GUARD_CONFIG', `guard.authz.rulesFile: ${path} ${e.message}`);
    }
  }

  #liveRulesLoaded(rules: readonly ParsedRule[]): void {
    const where = `rules file ${this.rulesFile.path}`;
    this.#liveParsed = rules;
    this.#liveRules = rules.map((r) => compileRule(r.rule, `${where} line ${r.line}`));
    const prefix = [...this.#liveRules, ...this.#configRules];
    for (const la of [...this.#authorizers.values(), this.#defaultAuthz])
      la.current = new TopicAuthorizer(la.config, prefix, la.path);
    // Every connection's cached decisions are now stale (checked lazily: no walk over sessions).
    this.#authzGen++;
    this.metrics?.authzReloads.inc({ outcome: 'ok' });
    this.metrics?.authzRules.set(rules.length);
    this.metrics?.authzRulesFileError.reset();
    this.#logger.info({ path: this.rulesFile.path, rules: rules.length }, 'authorization rules loaded');
    this.#recheckSubscriptions();
  }

  /**
   * After a rule change, the subscriptions of connected clients that the new rules deny are
   * removed (a deny added during an incident must cut existing readers too, as Mosquitto's check
   * at delivery does). In batches, so 100,000 sessions do not stall the event loop; a newer
   * change stops this walk and starts its own. Offline sessions are not walked: the guard knows
   * a client's principal only while it is connected.
   */
  #recheckSubscriptions(): void {
    const broker = this.#broker;
    if (broker?.dropSubscriptions === undefined || this.#sessions.size === 0) return;
    const gen = this.#authzGen;
    const ids = [...this.#sessions.keys()];
    let i = 0;
    let dropped = 0;
    const step = (): void => {
      if (this.#closed || gen !== this.#authzGen) return;
      const end = Math.min(i + RECHECK_BATCH, ids.length);
      for (; i < end; i++) {
        const s = this.#sessions.get(ids[i]!);
        if (s !== undefined) dropped += broker.dropSubscriptions!(ids[i]!, (f) => this.#decide(s, f, false));
      }
      if (i < ids.length) setImmediate(step);
      else if (dropped > 0)
        this.#logger.warn({ dropped }, 'subscriptions denied by the new authorization rules removed');
    };
    step();
  }

  /** The listener's authorizer, created on first use; null when the guard has no config for it. */
  #listenerAuthz(listener: string): ListenerAuthz | null {
    let la = this.#authorizers.get(listener);
    if (la !== undefined) return la;
    const key = this.config.listeners[listener] ? listener : '*';
    const lc = this.config.listeners[key];
    if (!lc) return null;
    const path = `guard.listeners.${key}.authz.rules`;
    la = {
      config: lc.authz,
      path,
      current: new TopicAuthorizer(lc.authz, [...this.#liveRules, ...this.#configRules], path),
    };
    this.#authorizers.set(listener, la);
    return la;
  }

  /** Loads keys and password files, and starts background refreshes. Idempotent. */
  start(): Promise<void> {
    this.#started ??= (async () => {
      await Promise.all([...this.#authenticators.values()].map((a) => a.start()));
      if (!this.#closed) this.rulesFile.watch();
      this.#prune();
      this.#pruneTimer = this.#clock.setInterval(() => this.#prune(), PRUNE_INTERVAL_MS);
    })();
    return this.#started;
  }

  /** An authenticator by configured name (tests, admin API). */
  authenticator(name: string): Authenticator | undefined {
    return this.#authenticators.get(name);
  }

  /** A backend's gate by authenticator name (admin API: breaker state, in-flight). */
  gate(name: string): BackendGate | undefined {
    return this.#gates.get(name);
  }

  /** The engine for a listener, or null when the guard has no config for it (refuse all). */
  engine(listener: string): AuthEngine | null {
    let e = this.#engines.get(listener);
    if (e !== undefined) return e;
    const lc = this.config.listeners[listener] ?? this.config.listeners['*'];
    e = lc ? this.#createEngine(listener, lc) : null;
    this.#engines.set(listener, e);
    return e;
  }

  #createEngine(listener: string, lc: ListenerGuardConfig): AuthEngine {
    return new AuthEngine({
      listener,
      chain: lc.authn.map((n) => this.#authenticators.get(n)!),
      gates: this.#gates,
      cache: lc.cache,
      maxCredentialBytes: lc.maxCredentialBytes,
      clock: this.#clock,
      hasher: this.#hasher,
      logger: this.#logger,
      metrics: this.metrics,
      store: this.#store,
      revocations: this.revocations,
      bypass: () => this.#bypassReason(listener),
    });
  }

  async authenticate(request: ConnectRequest): Promise<GuardDecision> {
    await this.start();
    const listener = request.info.listener;
    const engine = this.engine(listener);
    let d: AuthDecision;
    if (!engine) {
      this.metrics?.authTotal.inc({ listener, method: 'none', outcome: 'failure' });
      this.#logger.warn({ listener }, 'no guard configuration for listener; refusing');
      d = { ok: false, reasonCode: 0x87, reasonString: 'not authorized', method: 'none', outcome: 'failure' };
    } else {
      const req: AuthRequest = {
        listener,
        clientId: request.clientId,
        username: request.username,
        password: request.password,
        peerAddress: request.info.remoteAddress,
        peerCertificate: request.info.peerCertificate,
      };
      d = await engine.authenticate(req);
    }
    if (!d.ok) {
      return {
        ok: false,
        reasonCode: d.reasonCode,
        reasonString: d.reasonString,
        ...(d.userProperties ? { userProperties: d.userProperties } : {}),
      };
    }
    const existing = this.#sessions.get(request.clientId);
    const cert = readCertificate(request.info.peerCertificate);
    const serial = cert?.serial;
    this.#sessions.set(request.clientId, {
      principal: {
        clientId: request.clientId,
        username: request.username,
        superuser: d.superuser,
        certCn: cert?.cn,
        listener,
        source: request.info.remoteAddress,
      },
      authz: this.#listenerAuthz(listener)!,
      refs: (existing?.refs ?? 0) + 1,
      decisions: null,
      decisionsGen: 0,
      tokenId: d.tokenId,
      certSerial: serial !== undefined ? normalizeSerial(serial) : undefined,
      issuedAt: d.issuedAt,
    });
    return {
      ok: true,
      identity: d.identity,
      superuser: d.superuser,
      ...(d.expiresAt !== undefined ? { expiresAt: d.expiresAt } : {}),
      ...(d.tokenId !== undefined ? { tokenId: d.tokenId } : {}),
    };
  }

  /**
   * BrokerHooks, on the publish hot path: the session's cached decision for this topic, else the
   * rules (first match wins). A client without a session here (a delayed will after its
   * connection ended) is checked against the default rules with its client id only.
   */
  authorizePublish(clientId: string, topic: string): boolean {
    const s = this.#sessions.get(clientId);
    const ok =
      s === undefined
        ? this.#defaultAuthz.current.allowsPublish({ clientId, username: undefined, superuser: false }, topic)
        : this.#decide(s, topic, true);
    if (!ok) this.#deniedPublish?.inc();
    return ok;
  }

  authorizeSubscribe(clientId: string, filter: string): boolean {
    const s = this.#sessions.get(clientId);
    const ok =
      s === undefined
        ? this.#defaultAuthz.current.allowsSubscribe(
            { clientId, username: undefined, superuser: false },
            filter,
          )
        : this.#decide(s, filter, false);
    if (!ok) this.#deniedSubscribe?.inc();
    return ok;
  }

  #decide(s: Session, topic: string, publish: boolean): boolean {
    const known = publish ? PUB_KNOWN : SUB_KNOWN;
    let d = s.decisions;
    if (d !== null) {
      if (s.decisionsGen === this.#authzGen) {
        const bits = d.get(topic);
        if (bits !== undefined && (bits & known) !== 0)
          return (bits & (publish ? PUB_ALLOWED : SUB_ALLOWED)) !== 0;
      } else {
        d.clear();
        s.decisionsGen = this.#authzGen;
      }
    }
    const authz = s.authz.current;
    const ok = publish ? authz.allowsPublish(s.principal, topic) : authz.allowsSubscribe(s.principal, topic);
    if (d === null) {
      d = s.decisions = new Map();
      s.decisionsGen = this.#authzGen;
    }
    // Full: later topics are decided by the rules each time (the first ones stay cached); emptying
    // the cache instead made a client that cycles through many topics pay for refilling it too.
    const bits = d.get(topic);
    if (bits !== undefined || d.size < MAX_CACHED_DECISIONS)
      d.set(topic, (bits ?? 0) | known | (ok ? (publish ? PUB_ALLOWED : SUB_ALLOWED) : 0));
    return ok;
  }

  /**
   * Which rule decides this check, and the verdict (`breakwater authz check`). Without a listener:
   * the only configured one, else `*`. Throws GuardError when no listener config applies.
   */
  explainAuthz(q: AuthzQuery): AuthzExplanation & { listener: string } {
    const names = Object.keys(this.config.listeners);
    const listener = q.listener ?? (names.length === 1 ? names[0]! : '*');
    const la = this.#listenerAuthz(listener);
    if (la === null && q.listener === undefined) {
      throw new GuardError(
        'BW_ERR_GUARD_CONFIG',
        `several listeners have guard config (${names.join(', ')}) and none is "*": name the listener`,
      );
    }
    if (la === null) {
      throw new GuardError(
        'BW_ERR_GUARD_CONFIG',
        `no guard.listeners entry applies to listener "${listener}" (every CONNECT there is refused)`,
      );
    }
    const principal: Principal = {
      clientId: q.clientId,
      username: q.username,
      superuser: q.superuser === true,
      certCn: q.certCn,
      listener,
      source: q.source,
    };
    return { listener, ...la.current.explain(principal, q.action, q.topic) };
  }

  /** The live rules (rules file / API) and the config's global rules. */
  authzRules(): AuthzRulesView {
    return {
      file: this.rulesFile.path,
      rules: this.#liveParsed.map((p) => ({ ...p.rule, line: p.line })),
      configRules: this.config.authz.rules.map((r) => ({ ...r })),
      error: this.rulesFile.error,
    };
  }

  /**
   * Replaces the live rules (PUT /api/v1/authz/rules): validated, written to the rules file, in
   * force at once; every cached decision is dropped. Throws GuardError naming `rules[i].field`.
   */
  replaceAuthzRules(rules: readonly AuthzRule[], by: string): AuthzRulesView {
    compileRules(rules, 'rules');
    this.rulesFile.write(rules, `written by ${by} at ${new Date(this.#clock.now()).toISOString()}`);
    return this.authzRules();
  }

  /**
   * A connection admitted by `authenticate` has closed. Reference-counted because during a session
   * takeover the new connection authenticates before the old one is gone.
   */
  clientDisconnected(clientId: string): void {
    const s = this.#sessions.get(clientId);
    if (s && --s.refs <= 0) this.#sessions.delete(clientId);
  }

  /** BrokerHooks: the engine reports the end of every connection `authenticate` admitted. */
  onClientDisconnected(clientId: string): void {
    this.clientDisconnected(clientId);
  }

  /** BrokerHooks: the broker hands itself over so `revoke` can end live sessions. */
  attach(broker: BrokerControl): void {
    this.#broker = broker;
  }

  /**
   * BrokerHooks, for admission: whether this CONNECT can be decided without a backend call (see
   * AuthEngine.verifiesLocally). A listener without guard config refuses locally.
   */
  verifiesLocally(request: ConnectRequest): boolean {
    const engine = this.engine(request.info.listener);
    return engine === null || engine.verifiesLocally(request);
  }

  /**
   * Adds to the denylist, forgets cached decisions of a revoked client, and ends the live
   * sessions it names at once: MQTT 5 DISCONNECT 0x87 Not Authorized (0x8A Banned is not a valid
   * DISCONNECT reason code, MQTT 5.0 §3.14.2.1; a reconnect then gets CONNACK 0x8A).
   */
  revoke(entry: RevocationEntry): void {
    this.revocations.revoke(entry);
    if (entry.clientId !== undefined && entry.issuedBefore === undefined) {
      for (const e of this.#engines.values()) e?.cache.purgeSubject(e.subjectOf(entry.clientId));
      if (!this.#engines.size) this.#store?.deleteSubject(this.#hasher.hash('subject', entry.clientId));
    }
    this.#logger.warn({ revoked: entry }, 'credential revoked');
    this.#kickRevoked(entry);
  }

  /**
   * The client ids whose live sessions `revoke(entry)` would end (the control plane purges their
   * wills and retained messages first). A client id entry names its client whether or not the
   * guard admitted it; an `issuedBefore` entry names the sessions whose token was issued before.
   */
  sessionsMatching(entry: RevocationEntry): string[] {
    const serial = entry.certSerial !== undefined ? normalizeSerial(entry.certSerial) : undefined;
    const cutoff = entry.issuedBefore;
    const victims = new Set<string>();
    const older = (s: Session | undefined) => s?.issuedAt !== undefined && s.issuedAt < cutoff!;
    if (entry.clientId !== undefined) {
      // One client's cutoff looks at its own session only (a selector sends thousands of these).
      if (cutoff === undefined || older(this.#sessions.get(entry.clientId))) victims.add(entry.clientId);
    }
    const globalCutoff = cutoff !== undefined && entry.clientId === undefined;
    if (entry.tokenId !== undefined || serial !== undefined || globalCutoff) {
      for (const [clientId, s] of this.#sessions) {
        if (
          (entry.tokenId !== undefined && s.tokenId === entry.tokenId) ||
          (serial !== undefined && s.certSerial === serial) ||
          (globalCutoff && older(s))
        ) {
          victims.add(clientId);
        }
      }
    }
    return [...victims];
  }

  #kickRevoked(entry: RevocationEntry): void {
    const broker = this.#broker;
    if (broker === null) return;
    for (const clientId of this.sessionsMatching(entry)) {
      if (broker.disconnectClient(clientId, ReasonCode.NotAuthorized, 'credentials revoked'))
        this.#logger.warn({ clientId }, 'revoked client disconnected');
    }
  }

  unrevoke(entry: RevocationEntry): void {
    this.revocations.unrevoke(entry);
  }

  /**
   * Break-glass: admits clients on `listener` without their backends until `ttlMs` passes (each
   * confined to its own topics by the listener's rules; superuser is never granted). The denylist
   * still applies. Ends by itself; each change is logged as an audit line.
   */
  bypassAuthn(listener: string, o: { ttlMs: number; reason: string; actor: string }): BypassState {
    const state = { until: this.#clock.now() + o.ttlMs, reason: o.reason, actor: o.actor };
    this.#clearBypassTimer(listener);
    this.#bypass.set(listener, state);
    // Reverts by itself even when no client connects to notice (the lazy check alone would leave
    // the metric at 1 and the audit trail without an end).
    this.#bypassTimers.set(
      listener,
      this.#clock.setTimeout(() => this.#bypassReason(listener), o.ttlMs),
    );
    this.metrics?.bypassActive.set({ listener }, 1);
    this.#logger.warn({ audit: true, listener, ...state }, 'authn bypass enabled');
    return state;
  }

  #clearBypassTimer(listener: string): void {
    const t = this.#bypassTimers.get(listener);
    if (t !== undefined) {
      this.#clock.clearTimeout(t);
      this.#bypassTimers.delete(listener);
    }
  }

  restoreAuthn(listener: string, actor = 'unknown'): void {
    this.#clearBypassTimer(listener);
    if (!this.#bypass.delete(listener)) return;
    this.metrics?.bypassActive.set({ listener }, 0);
    this.#logger.warn({ audit: true, listener, actor }, 'authn bypass ended');
    this.#admission?.beginSlowStart();
  }

  bypassStatus(listener: string): BypassState | null {
    this.#bypassReason(listener);
    return this.#bypass.get(listener) ?? null;
  }

  #bypassReason(listener: string): string | null {
    const b = this.#bypass.get(listener);
    if (!b) return null;
    if (this.#clock.now() >= b.until) {
      this.#clearBypassTimer(listener);
      this.#bypass.delete(listener);
      this.metrics?.bypassActive.set({ listener }, 0);
      this.#logger.warn({ audit: true, listener, actor: 'ttl' }, 'authn bypass expired');
      try {
        this.#auditLog?.append({
          at: new Date(this.#clock.now()).toISOString(),
          actor: 'ttl',
          action: 'bypass-expired',
          listener,
          reason: b.reason,
        });
      } catch (err) {
        // The bypass has ended either way: failing closed here would keep auth off.
        this.#logger.error({ err, listener }, 'bypass expiry could not be written to the audit log');
      }
      this.#admission?.beginSlowStart();
      return null;
    }
    return b.reason;
  }

  #prune(): void {
    if (!this.#store || this.#closed) return;
    const maxStale = Math.max(0, ...Object.values(this.config.listeners).map((l) => l.cache.staleIfErrorSec));
    try {
      this.#store.prune(this.#clock.now() - maxStale * 1000);
    } catch (err) {
      this.#logger.error({ err }, 'known-good store prune failed');
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#pruneTimer) this.#clock.clearInterval(this.#pruneTimer);
    this.rulesFile.close();
    for (const t of this.#bypassTimers.values()) this.#clock.clearTimeout(t);
    for (const g of this.#gates.values()) g.close();
    this.#bypassTimers.clear();
    await this.#started?.catch(() => {});
    await Promise.allSettled([...this.#authenticators.values()].map((a) => a.close()));
    this.#store?.close();
  }
}
