import type { Logger } from 'pino';
import type { Counter, Gauge } from 'prom-client';
import type { Clock } from '../../clock.js';
import { TokenBucket } from '../token-bucket.js';
import type { AdmissionConfig, AdmissionLimits } from './config.js';
import { EventLoopLoad } from './event-loop-load.js';
import type { FdUsage } from './fd-usage.js';
import { FlapTracker } from './flap-tracker.js';
import type { AdmissionMetrics } from './metrics.js';
import {
  ADMITTED,
  type AdmissionRefusal,
  type AdmissionVerdict,
  RefusalReason,
  type RefusalScope,
  reasonCodeFor,
} from './verdict.js';

export interface AdmissionDeps {
  clock: Clock;
  /** Uniform [0, 1). Seeded in tests. */
  random?: () => number;
  /**
   * Current FD usage; called at most every `fd.sampleIntervalMs` (the gate tracks its own
   * accepts/closes in between). Pass `procFdUsage()` in production; omit to disable the check.
   */
  fdUsage?: () => FdUsage | undefined;
  metrics?: AdmissionMetrics;
  /**
   * Mean event-loop delay (ms) of the last window, for `overload`. Omitted: the gate measures the
   * real event loop (EventLoopLoad); tests pass a function they control.
   */
  eventLoopDelayMs?: (now: number) => number;
  /** Flapping bans are logged here (warn), one line per ban. */
  logger?: Pick<Logger, 'warn'>;
}

/**
 * Session ends that never count as flapping: the client said goodbye properly, or the broker
 * ended the session itself (revocation, shutdown, credential expiry, storage failure, slow
 * consumer). Everything else that ends an accepted session quickly — takeover by the same id,
 * keepalive timeout, a dropped socket, a protocol error — does.
 */
const NOT_FLAPPING: ReadonlySet<string> = new Set([
  'client_disconnect',
  'administrative',
  'server_shutting_down',
  'credentials_expired',
  'storage_error',
  'slow_consumer',
]);

/** Counters for one scope (a listener, or the whole process). */
interface Scope {
  readonly name: string;
  /** Replaced (never mutated) by capListener. */
  limits: AdmissionLimits;
  /** All admitted attempts: the broker's own capacity (TLS, session setup). Never slow-started. */
  readonly bucket: TokenBucket;
  /**
   * Attempts whose credentials need a backend call: at most (1 − localVerifierReserve) of the
   * rate and burst, scaled down during slow start. Local verifiers skip it, so whatever share the
   * backend-bound crowd cannot use stays theirs, however hard that crowd retries.
   */
  readonly backendBucket: TokenBucket;
  connections: number;
  handshakes: number;
  readonly handshakesGauge: ReturnType<Gauge<'listener'>['labels']> | null;
  readonly refusedCounters: Map<RefusalReason, ReturnType<Counter<'listener' | 'reason'>['labels']>>;
}

export interface AdmissionStats {
  connections: number;
  handshakes: number;
  tarpitSlotsInUse: number;
  tarpitSlots: number;
  slowStartScale: number;
  trackedClientIds: number;
  trackedAddresses: number;
  fdRatio: number | undefined;
  listeners: Record<
    string,
    { connections: number; handshakes: number; tokens: number; backendTokens: number }
  >;
}

/**
 * Admission control (issue 3, "Admission control, per listener and global"): decides, before any
 * TLS, authentication or session work, whether a connection may proceed — and when it may not,
 * how to refuse it so the client backs off instead of retrying at once.
 *
 * Engine contract (all calls synchronous, O(1), no timers, no allocation when admitting):
 *
 * 1. `onAccept(listener, addr)` for every accepted socket, before TLS. `ok` → the socket counts as
 *    a connection until `onConnectionClosed(listener)` (exactly once, whatever happens later).
 *    Refused → see `AdmissionRefusal.tarpitMs` (answer after CONNECT, or destroy at once);
 *    `onConnectionClosed` is NOT called for it.
 * 2. `onConnect(listener, clientId, addr, { verifiesLocally })` when a CONNECT is parsed, before
 *    authentication — and only for live sockets (`isSocketLive`): backlog hygiene, a socket that
 *    closed while waiting must not spend rate credit. `ok` → call `onHandshakeDone(listener)`
 *    exactly once when the CONNECT is answered (accepted, refused by auth, or the socket died).
 *    Refused → write `refusalConnack(verdict, protocolVersion)` (after `tarpitMs` if > 0), end
 *    the socket, and `releaseTarpitSlot()` if `tarpitMs > 0`; `onConnectionClosed` still follows
 *    when the socket closes, since it was admitted at accept.
 * 3. `close()` at broker stop.
 */
export class AdmissionGate {
  readonly #config: AdmissionConfig;
  readonly #clock: Clock;
  readonly #random: () => number;
  readonly #fdUsage: (() => FdUsage | undefined) | undefined;
  readonly #metrics: AdmissionMetrics | undefined;
  readonly #global: Scope;
  readonly #listeners = new Map<string, Scope>();
  readonly #byClientId: FlapTracker;
  readonly #byAddress: FlapTracker;
  readonly #logger: Pick<Logger, 'warn'> | undefined;
  readonly #ownLoad: EventLoopLoad | null;
  readonly #eventLoopDelayMs: ((now: number) => number) | null;
  #overloaded = false;
  #closed = false;

  // Tarpit / accept-answer slots (one pool: each is a refused socket held open).
  #slotsInUse = 0;
  /** Sockets refused at accept and held for their CONNECT (transports → engine hand-over). */
  readonly #held = new WeakMap<object, AdmissionRefusal>();

  // FD estimate: last sample plus accepts minus closes since.
  #fdOpen = 0;
  #fdMax = 0;
  /** Accepts minus closes since the gate started, and its value at the previous fdUsage() call. */
  #fdDelta = 0;
  #fdDeltaAtLastCall = 0;
  #fdSampledAt = Number.NEGATIVE_INFINITY;

  // CONNECTs seen in the current and the previous overload window (the pressure that makes an
  // overload refusal worth anything).
  #attemptsCur = 0;
  #attemptsPrev = 0;
  #attemptsWindowAt: number;

  // Slow start and the outage detector that triggers it.
  #slowStartAt = Number.NEGATIVE_INFINITY;
  #peakPrev = 0;
  #peakCur = 0;
  #peakWindowAt: number;

  constructor(config: AdmissionConfig, deps: AdmissionDeps) {
    this.#config = config;
    this.#clock = deps.clock;
    this.#random = deps.random ?? Math.random;
    this.#fdUsage = deps.fdUsage;
    this.#metrics = deps.metrics;
    this.#logger = deps.logger;
    const now = this.#clock.now();
    if (!config.overload.enabled) {
      this.#ownLoad = null;
      this.#eventLoopDelayMs = null;
    } else if (deps.eventLoopDelayMs) {
      this.#ownLoad = null;
      this.#eventLoopDelayMs = deps.eventLoopDelayMs;
    } else {
      const load = new EventLoopLoad(config.overload.windowMs, now);
      this.#ownLoad = load;
      this.#eventLoopDelayMs = (t) => load.delayMs(t);
    }
    this.#global = this.#scope('', config.global, now, false);
    this.#byClientId = new FlapTracker(config.flapping.clientId);
    this.#byAddress = new FlapTracker(config.flapping.address);
    this.#peakWindowAt = now;
    this.#attemptsWindowAt = now;
    if (config.slowStart.enabled && config.slowStart.onStart) this.#slowStartAt = now;
  }

  /** At TCP accept, before TLS or reading anything: connection caps and FD pressure. */
  onAccept(listener: string, _remoteAddress: string | undefined): AdmissionVerdict {
    const now = this.#clock.now();
    const scope = this.#listener(listener, now);
    if (this.#closed) return this.#refuse(scope, RefusalReason.Busy, 'process', true);
    const ratio = this.#fdRatio(now);
    if (ratio !== undefined && ratio >= this.#config.fd.refuseRatio) {
      return this.#refuse(scope, RefusalReason.FdPressure, 'process', true);
    }
    const g = this.#global;
    if (g.limits.maxConnections > 0 && g.connections >= g.limits.maxConnections) {
      return this.#refuse(scope, RefusalReason.MaxConnections, 'global', true);
    }
    if (scope.limits.maxConnections > 0 && scope.connections >= scope.limits.maxConnections) {
      return this.#refuse(scope, RefusalReason.MaxConnections, 'listener', true);
    }
    g.connections++;
    scope.connections++;
    this.#fdOpen++;
    this.#fdDelta++;
    this.#rollPeak(now, g.connections - 1);
    if (g.connections > this.#peakCur) this.#peakCur = g.connections;
    return ADMITTED;
  }

  /**
   * At CONNECT, before authentication: flapping, handshakes in progress, connection-rate buckets.
   * `verifiesLocally`: the credentials can be checked without a backend call (JWT, mTLS,
   * auth-cache hit) — such clients are not held to the backend-bound share nor to slow start.
   */
  onConnect(
    listener: string,
    clientId: string,
    remoteAddress: string | undefined,
    opts: { verifiesLocally: boolean },
  ): AdmissionVerdict {
    const now = this.#clock.now();
    const scope = this.#listener(listener, now);
    if (this.#closed) return this.#refuse(scope, RefusalReason.Busy, 'process', false);
    // A ban is checked here and earned only in onSessionEnded: attempts, refused or not, never
    // count (issue 11). An empty v5 client id is assigned by the broker and cannot flap by id.
    if (clientId !== '') {
      const ban = this.#byClientId.bannedFor(clientId, now);
      if (ban > 0) return this.#refuse(scope, RefusalReason.Flapping, 'client_id', false, ban);
    }
    if (remoteAddress !== undefined) {
      const ban = this.#byAddress.bannedFor(remoteAddress, now);
      if (ban > 0) return this.#refuse(scope, RefusalReason.Flapping, 'address', false, ban);
    }
    const attempts = this.#countAttempt(now);
    if (
      this.#eventLoopDelayMs !== null &&
      this.#isOverloaded(now) &&
      attempts >= this.#config.overload.minConnects
    ) {
      return this.#refuse(scope, RefusalReason.Overload, 'process', false);
    }
    const g = this.#global;
    if (g.limits.maxHandshakes > 0 && g.handshakes >= g.limits.maxHandshakes) {
      return this.#refuse(scope, RefusalReason.Handshakes, 'global', false);
    }
    if (scope.limits.maxHandshakes > 0 && scope.handshakes >= scope.limits.maxHandshakes) {
      return this.#refuse(scope, RefusalReason.Handshakes, 'listener', false);
    }
    // Check every bucket before charging any, so a refusal by one does not burn credit in another.
    if (!g.bucket.canTake(now)) return this.#refuse(scope, RefusalReason.Rate, 'global', false);
    if (!scope.bucket.canTake(now)) return this.#refuse(scope, RefusalReason.Rate, 'listener', false);
    if (!opts.verifiesLocally) {
      const scale = this.#slowStartScale(now);
      if (!g.backendBucket.canTake(now, scale))
        return this.#refuse(scope, RefusalReason.Rate, 'global', false);
      if (!scope.backendBucket.canTake(now, scale)) {
        return this.#refuse(scope, RefusalReason.Rate, 'listener', false);
      }
      g.backendBucket.take(now, scale);
      scope.backendBucket.take(now, scale);
    }
    g.bucket.take(now);
    scope.bucket.take(now);
    g.handshakes++;
    scope.handshakes++;
    scope.handshakesGauge?.set(scope.handshakes);
    return ADMITTED;
  }

  /** The CONNECT admitted by `onConnect` has been answered (either way) or its socket died. */
  onHandshakeDone(listener: string): void {
    const scope = this.#listeners.get(listener);
    if (!scope || scope.handshakes === 0) return;
    scope.handshakes--;
    this.#global.handshakes--;
    scope.handshakesGauge?.set(scope.handshakes);
  }

  /**
   * An accepted session (CONNACK 0x00) has ended after `lifetimeMs`, for `reason` (the engine's
   * disconnect reason). Counts towards flapping when it was short and not a normal end (see
   * NOT_FLAPPING); returns the ban it started, in ms (0: none).
   */
  onSessionEnded(
    listener: string,
    clientId: string,
    remoteAddress: string | undefined,
    lifetimeMs: number,
    reason: string,
  ): number {
    if (NOT_FLAPPING.has(reason)) return 0;
    const now = this.#clock.now();
    let started = 0;
    const byId = this.#config.flapping.clientId;
    if (byId.maxShortSessions > 0 && lifetimeMs < byId.shortSessionMs && clientId !== '') {
      const running = this.#byClientId.bannedFor(clientId, now) > 0;
      const ban = this.#byClientId.record(clientId, now);
      if (ban > 0 && !running) started = this.#banned(listener, 'client_id', clientId, ban, reason);
    }
    const byAddr = this.#config.flapping.address;
    if (byAddr.maxShortSessions > 0 && lifetimeMs < byAddr.shortSessionMs && remoteAddress !== undefined) {
      const running = this.#byAddress.bannedFor(remoteAddress, now) > 0;
      const ban = this.#byAddress.record(remoteAddress, now);
      if (ban > 0 && !running) started = this.#banned(listener, 'address', remoteAddress, ban, reason);
    }
    return started;
  }

  /** Keys banned for flapping now (admin API and console). */
  flappingBans(): { scope: 'client_id' | 'address'; key: string; remainingMs: number }[] {
    const now = this.#clock.now();
    return [
      ...this.#byClientId.bans(now).map((b) => ({ scope: 'client_id' as const, ...b })),
      ...this.#byAddress.bans(now).map((b) => ({ scope: 'address' as const, ...b })),
    ];
  }

  /** Lifts a flapping ban (operator action). True when there was one. */
  liftFlappingBan(scope: 'client_id' | 'address', key: string): boolean {
    return (scope === 'client_id' ? this.#byClientId : this.#byAddress).lift(key);
  }

  /**
   * A tarpit hold for a refusal decided after admission (the auth backend is busy or down): the
   * jittered hold in ms with one slot taken (release it with `releaseTarpitSlot`), or 0 when the
   * tarpit is off or its slots are all in use (answer at once).
   */
  tarpitHold(): number {
    return this.#closed ? 0 : this.#takeSlot(false);
  }

  /** Whether new CONNECTs are being refused for event-loop saturation (admin API, tests). */
  get overloaded(): boolean {
    return this.#overloaded;
  }

  /** A socket admitted by `onAccept` has closed. */
  onConnectionClosed(listener: string): void {
    const scope = this.#listeners.get(listener);
    if (!scope || scope.connections === 0) return;
    scope.connections--;
    const g = this.#global;
    g.connections--;
    this.#fdOpen--;
    this.#fdDelta--;
    this.#detectOutage(this.#clock.now(), g.connections);
  }

  /**
   * Hands an accept-time refusal with `tarpitMs > 0` from the transport to the engine: the
   * listener marks the raw socket, `Broker.handle()` takes the mark and answers the refusal when
   * the CONNECT arrives (then releases the slot). Weakly held: a mark never outlives its socket.
   */
  holdRefusal(socket: object, verdict: AdmissionRefusal): void {
    this.#held.set(socket, verdict);
  }

  takeHeldRefusal(socket: object): AdmissionRefusal | undefined {
    const v = this.#held.get(socket);
    if (v !== undefined) this.#held.delete(socket);
    return v;
  }

  /** Gives back a slot taken by a refusal with `tarpitMs > 0`. */
  releaseTarpitSlot(): void {
    if (this.#slotsInUse === 0) return;
    this.#slotsInUse--;
    this.#metrics?.tarpitSlotsInUse.set(this.#slotsInUse);
  }

  /**
   * Enter slow start now: the rate and burst for clients that need a backend call drop to
   * `slowStart.initialFraction` and ramp linearly back over `slowStart.windowMs` (local verifiers
   * keep the full rate: they cost the broker, not the backend that has just recovered). Called by the outage detector; the lead may also call
   * it when an auth backend's breaker closes again or a break-glass bypass ends.
   */
  beginSlowStart(): void {
    if (this.#config.slowStart.enabled) this.#slowStartAt = this.#clock.now();
  }

  /** Current bucket scale, 1 outside slow start. */
  slowStartScale(): number {
    return this.#slowStartScale(this.#clock.now());
  }

  stats(): AdmissionStats {
    const now = this.#clock.now();
    const listeners: AdmissionStats['listeners'] = {};
    for (const s of this.#listeners.values()) {
      listeners[s.name] = {
        connections: s.connections,
        handshakes: s.handshakes,
        tokens: s.bucket.available(now),
        backendTokens: s.backendBucket.available(now, this.#slowStartScale(now)),
      };
    }
    return {
      connections: this.#global.connections,
      handshakes: this.#global.handshakes,
      tarpitSlotsInUse: this.#slotsInUse,
      tarpitSlots: this.#slotLimit(),
      slowStartScale: this.#slowStartScale(now),
      trackedClientIds: this.#byClientId.size,
      trackedAddresses: this.#byAddress.size,
      fdRatio: this.#fdMax > 0 ? this.#fdOpen / this.#fdMax : undefined,
      listeners,
    };
  }

  /**
   * Caps a listener's connections (`listeners[].maxConnections`), the stricter of this and the
   * admission config winning. Refused at accept like every admission cap (counted, closed at
   * once) — never Node's `server.maxConnections`, which drops sockets without a trace.
   */
  capListener(name: string, maxConnections: number): void {
    const scope = this.#listener(name, this.#clock.now());
    const current = scope.limits.maxConnections;
    if (current === 0 || maxConnections < current) scope.limits = { ...scope.limits, maxConnections };
  }

  /** Refuses everything from now on (broker stopping) and forgets the trackers. */
  close(): void {
    this.#closed = true;
    this.#ownLoad?.close();
    this.#byClientId.clear();
    this.#byAddress.clear();
  }

  #listener(name: string, now: number): Scope {
    let scope = this.#listeners.get(name);
    if (!scope) {
      const limits = { ...this.#config.listenerDefaults, ...this.#config.listeners[name] };
      scope = this.#scope(name, limits, now, true);
      this.#listeners.set(name, scope);
    }
    return scope;
  }

  #banned(listener: string, scope: RefusalScope, key: string, banMs: number, reason: string): number {
    this.#metrics?.flappingBans.labels(listener, scope).inc();
    this.#logger?.warn(
      { listener, scope, key, banMs, lastEnd: reason },
      `flapping: ${scope === 'address' ? 'address' : 'client id'} ${key} banned for ${Math.round(banMs / 1000)} s (too many short sessions)`,
    );
    return banMs;
  }

  // Hysteresis: saturated above the threshold, clear again below half of it, so admission does not
  // flip on and off with every window around the limit.
  #isOverloaded(now: number): boolean {
    const delay = this.#eventLoopDelayMs!(now);
    const max = this.#config.overload.maxEventLoopDelayMs;
    const next = this.#overloaded ? delay > max / 2 : delay > max;
    if (next !== this.#overloaded) {
      this.#overloaded = next;
      this.#metrics?.overloaded.set(next ? 1 : 0);
    }
    this.#metrics?.eventLoopDelay.set(delay / 1000);
    return next;
  }

  /** Counts one CONNECT; returns those of the current and the previous window. */
  #countAttempt(now: number): number {
    const w = this.#config.overload.windowMs;
    const elapsed = now - this.#attemptsWindowAt;
    if (elapsed >= w) {
      this.#attemptsPrev = elapsed < 2 * w ? this.#attemptsCur : 0;
      this.#attemptsCur = 0;
      this.#attemptsWindowAt = now;
    }
    return ++this.#attemptsCur + this.#attemptsPrev;
  }

  #scope(name: string, limits: AdmissionLimits, now: number, labelled: boolean): Scope {
    const share = 1 - this.#config.localVerifierReserve;
    return {
      name,
      limits,
      bucket: new TokenBucket(limits.rate, limits.burst, now),
      backendBucket: new TokenBucket(limits.rate * share, Math.max(1, limits.burst * share), now),
      connections: 0,
      handshakes: 0,
      handshakesGauge: labelled && this.#metrics ? this.#metrics.handshakesInProgress.labels(name) : null,
      refusedCounters: new Map(),
    };
  }

  #refuse(
    scope: Scope,
    reason: RefusalReason,
    where: RefusalScope,
    atAccept: boolean,
    banLeftMs = 0,
  ): AdmissionRefusal {
    if (this.#metrics) {
      let c = scope.refusedCounters.get(reason);
      if (!c) {
        c = this.#metrics.refused.labels(scope.name, reason);
        scope.refusedCounters.set(reason, c);
      }
      c.inc();
    }
    const { minMs, maxMs } = this.#config.retryAfter;
    // A flapping key is told when its ban ends, plus up to 10 % so banned devices do not all
    // return in the same second; everything else gets the configured jittered window.
    const retryAfterMs =
      banLeftMs > 0
        ? banLeftMs + Math.floor(this.#random() * Math.floor(banLeftMs * 0.1 + 1))
        : minMs + Math.floor(this.#random() * (maxMs - minMs + 1));
    return {
      ok: false,
      reason,
      scope: where,
      reasonCode: reasonCodeFor(reason),
      reasonString: reasonText(reason, where),
      retryAfterMs,
      tarpitMs: this.#takeSlot(atAccept),
    };
  }

  #takeSlot(atAccept: boolean): number {
    const t = this.#config.tarpit;
    const hold = atAccept
      ? t.acceptAnswerMs
      : t.enabled
        ? Math.max(1, t.minMs + Math.floor(this.#random() * (t.maxMs - t.minMs + 1)))
        : 0;
    if (hold <= 0 || this.#slotsInUse >= this.#slotLimit()) return 0;
    this.#slotsInUse++;
    this.#metrics?.tarpitSlotsInUse.set(this.#slotsInUse);
    return hold;
  }

  // Held sockets are FDs: never let them take more than half of the headroom above the refusal
  // threshold, so the tarpit can not be what exhausts the process (issue 3).
  #slotLimit(): number {
    const max = this.#config.tarpit.maxSlots;
    if (this.#fdMax <= 0 || !Number.isFinite(this.#fdMax)) return max;
    // + 1e-6: 100 × (1 − 0.9) is 9.999… in binary floating point.
    const headroom = Math.floor((this.#fdMax * (1 - this.#config.fd.refuseRatio) + 1e-6) / 2);
    return Math.min(max, headroom);
  }

  #fdRatio(now: number): number | undefined {
    if (!this.#fdUsage) return undefined;
    if (now - this.#fdSampledAt >= this.#config.fd.sampleIntervalMs) {
      this.#fdSampledAt = now;
      const u = this.#fdUsage();
      const sinceCount = this.#fdDelta - this.#fdDeltaAtLastCall;
      this.#fdDeltaAtLastCall = this.#fdDelta;
      if (u && u.max > 0) {
        this.#fdOpen = u.lagsOneCall === true ? Math.max(0, u.open + sinceCount) : u.open;
        this.#fdMax = u.max;
        this.#metrics?.fdUsageRatio.set(Number.isFinite(u.max) ? this.#fdOpen / u.max : 0);
      }
    }
    return this.#fdMax > 0 ? this.#fdOpen / this.#fdMax : undefined;
  }

  #slowStartScale(now: number): number {
    const s = this.#config.slowStart;
    const elapsed = now - this.#slowStartAt;
    if (elapsed >= s.windowMs) return 1;
    return s.initialFraction + ((1 - s.initialFraction) * Math.max(0, elapsed)) / s.windowMs;
  }

  // Outage = the connection count fell by `dropRatio` of its peak over roughly the last
  // `dropWindowMs`: peaks of two rolling windows, O(1), no timer (rolled on accept and close).
  #rollPeak(now: number, connections: number): void {
    const elapsed = now - this.#peakWindowAt;
    const w = this.#config.slowStart.dropWindowMs;
    if (elapsed < w) return;
    // A window with no event in it had the current count throughout.
    this.#peakPrev = elapsed < 2 * w ? this.#peakCur : connections;
    this.#peakCur = connections;
    this.#peakWindowAt = now;
  }

  #detectOutage(now: number, connections: number): void {
    const s = this.#config.slowStart;
    if (!s.enabled) return;
    this.#rollPeak(now, connections + 1);
    const peak = Math.max(this.#peakPrev, this.#peakCur);
    if (peak >= s.minPeak && connections <= peak * (1 - s.dropRatio)) {
      this.#slowStartAt = now;
      // Measure afresh so one outage triggers one ramp, not one per closing socket.
      this.#peakPrev = 0;
      this.#peakCur = connections;
      this.#peakWindowAt = now;
    }
  }
}

function reasonText(reason: RefusalReason, where: RefusalScope): string {
  switch (reason) {
    case RefusalReason.Rate:
      return `connection rate exceeded (${where}), retry later`;
    case RefusalReason.Flapping:
      return where === 'address'
        ? 'banned for flapping: too many short sessions from this address, retry later'
        : 'banned for flapping: too many short sessions with this client id, retry later';
    case RefusalReason.Handshakes:
      return `too many connections being set up (${where}), retry later`;
    case RefusalReason.MaxConnections:
      return `connection limit reached (${where}), retry later`;
    case RefusalReason.FdPressure:
      return 'server is out of connection capacity, retry later';
    case RefusalReason.Busy:
      return 'server is not accepting connections, retry later';
    case RefusalReason.Overload:
      return 'server is overloaded, retry later';
  }
}
