import { performance } from 'node:perf_hooks';
import type { Clock, TimerHandle } from '../clock.js';
import { AdaptiveLimit } from './adaptive-limit.js';
import type { AuthResult } from './authenticators/types.js';
import { BreakerState, CircuitBreaker, Permit, type PermitValue } from './circuit-breaker.js';
import type { BackendLimits } from './config.js';
import type { GuardMetrics } from './metrics.js';
import { TokenBucket } from './token-bucket.js';

export type BackendCall = (signal: AbortSignal) => Promise<AuthResult>;

/** Why a call was not made (the `reason` label of `breakwater_auth_backend_rejected_total`). */
export const BackendRejection = {
  /** In flight at the adaptive limit and no room to wait (or waiting would take too long). */
  Limit: 'limit',
  /** Waited `queue.maxWaitMs` for a slot without getting one. */
  WaitTimeout: 'wait_timeout',
  BreakerOpen: 'breaker_open',
  /** The operator's ceiling (`ratePerSec`) is spent. */
  RateLimited: 'rate_limited',
} as const;

/** How often waiting calls are checked for their deadline (only while some wait). */
const WAIT_SWEEP_MS = 100;

interface Waiter {
  fn: BackendCall;
  deadline: number;
  resolve: (r: AuthResult) => void;
}

export interface CallOptions {
  /**
   * May wait for a slot (bounded). False for callers who have a fallback and should not queue
   * behind those who have none: a known-good device admitted by stale-if-error (issue 11,
   * "known-good devices keep priority").
   */
  wait: boolean;
}

const MAY_WAIT: CallOptions = { wait: true };

/**
 * Everything that stands between the fleet and one auth backend: an adaptive concurrency limit
 * (AdaptiveLimit: calls in flight follow measured latency), a short bounded wait for a slot, the
 * circuit breaker, an optional operator ceiling in calls/s (token bucket), and a timeout. A call
 * that cannot go out is answered with `error` and `busy: true` — the AuthEngine turns that into a
 * stale-if-error admit or a 0x89 Server Busy with a retry hint, never into a deny.
 *
 * Why a wait at all: in a cold start every device needs the backend once, and a backend that
 * answers in 2 ms serves a queue of hundreds in well under a second — refusing them would only
 * bring them back a second later (naive firmware) or minutes later (fleet firmware). The wait is
 * bounded by count and by an estimate (queue length × latency / limit) that must fit in
 * `queue.maxWaitMs`, so a slow backend gets refusals at once, not a pile of held handshakes.
 */
export class BackendGate {
  readonly name: string;
  readonly breaker: CircuitBreaker;
  readonly limiter: AdaptiveLimit;
  readonly #bucket: TokenBucket | null;
  readonly #limits: BackendLimits;
  readonly #clock: Clock;
  readonly #metrics: GuardMetrics | undefined;
  readonly #waiting: Waiter[] = [];
  #waitHead = 0;
  #sweep: TimerHandle | null = null;
  #inflight = 0;

  constructor(
    name: string,
    limits: BackendLimits,
    clock: Clock,
    metrics?: GuardMetrics,
    /** Called when the breaker closes again after an outage (the guard starts admission slow start). */
    onRecovered?: () => void,
    /** A hard ceiling on the limit below `maxInFlight` (postgres: its pool size). */
    maxInFlight = limits.maxInFlight,
  ) {
    this.name = name;
    this.#limits = limits;
    this.#clock = clock;
    this.#metrics = metrics;
    const now = clock.now();
    const max = Math.max(1, Math.min(limits.maxInFlight, maxInFlight));
    const a = limits.adaptive;
    this.limiter = new AdaptiveLimit(
      {
        initial: Math.min(a.initial, max),
        min: Math.min(a.min, max),
        max,
        tolerance: a.tolerance,
        smoothing: a.smoothing,
        baselineWindowMs: a.baselineWindowMs,
        backoffRatio: a.backoffRatio,
      },
      now,
    );
    this.#bucket = limits.ratePerSec > 0 ? new TokenBucket(limits.ratePerSec, limits.burst, now) : null;
    this.breaker = new CircuitBreaker(limits.breaker, clock, (state) => {
      metrics?.breakerState.set({ backend: name }, state);
      if (state === BreakerState.Closed) {
        // The backend has just come back: start low and let latency say how far to go.
        this.limiter.reset(clock.now());
        this.#gauges();
        onRecovered?.();
      }
    });
    metrics?.breakerState.set({ backend: name }, 0);
    metrics?.backendInflight.set({ backend: name }, 0);
    this.#gauges();
  }

  get inflight(): number {
    return this.#inflight;
  }

  /** Calls waiting for a slot. */
  get waiting(): number {
    return this.#waiting.length - this.#waitHead;
  }

  call(fn: BackendCall, options: CallOptions = MAY_WAIT): Promise<AuthResult> {
    if (this.#inflight < this.limiter.current && this.waiting === 0) return this.#start(fn);
    if (!options.wait || !this.#mayWait()) return Promise.resolve(this.#reject(BackendRejection.Limit, 100));
    return new Promise<AuthResult>((resolve) => {
      this.#waiting.push({ fn, deadline: this.#clock.now() + this.#limits.queue.maxWaitMs, resolve });
      this.#metrics?.backendWaiting.set({ backend: this.name }, this.waiting);
      this.#sweep ??= this.#clock.setInterval(() => this.#expire(), WAIT_SWEEP_MS);
    });
  }

  /** Stops the wait sweep; waiting calls are answered as rejected (broker stopping). */
  close(): void {
    for (let w = this.#next(); w !== undefined; w = this.#next())
      w.resolve(this.#reject(BackendRejection.Limit, 1000));
    this.#stopSweep();
  }

  // Little's law: the queue drains at about limit / latency calls per ms.
  #mayWait(): boolean {
    const q = this.#limits.queue;
    const waiting = this.waiting;
    if (waiting >= q.maxWaiting) return false;
    const latency = this.limiter.latencyMs;
    return latency === 0 || ((waiting + 1) * latency) / this.limiter.current <= q.maxWaitMs;
  }

  #start(fn: BackendCall): Promise<AuthResult> {
    const permit = this.breaker.tryAcquire();
    if (permit === Permit.Denied)
      return Promise.resolve(this.#reject(BackendRejection.BreakerOpen, this.breaker.retryAfterMs));
    const now = this.#clock.now();
    if (this.#bucket !== null && !this.#bucket.take(now)) {
      this.breaker.cancel(permit);
      return Promise.resolve(this.#reject(BackendRejection.RateLimited, this.#bucket.msUntilToken(now)));
    }
    return this.#run(fn, permit);
  }

  #reject(reason: string, retryAfterMs: number): AuthResult {
    this.#metrics?.backendRejected.inc({ backend: this.name, reason });
    return { outcome: 'error', reason, retryAfterMs, busy: true };
  }

  #run(fn: BackendCall, permit: PermitValue): Promise<AuthResult> {
    const backend = this.name;
    this.#inflight++;
    this.#metrics?.backendInflight.set({ backend }, this.#inflight);
    this.#metrics?.backendQueries.inc({ backend });
    const started = performance.now();
    const controller = new AbortController();
    let settled = false;
    let timedOut = false;
    return new Promise<AuthResult>((resolve) => {
      const finish = (result: AuthResult): void => {
        if (settled) return;
        settled = true;
        this.#clock.clearTimeout(timer);
        this.breaker.record(result.outcome !== 'error', permit);
        this.#metrics?.backendDuration.observe({ backend }, (performance.now() - started) / 1000);
        resolve(result);
      };
      const timer: TimerHandle = this.#clock.setTimeout(() => {
        timedOut = true;
        controller.abort();
        this.limiter.onTimeout();
        finish({ outcome: 'error', reason: 'timeout' });
      }, this.#limits.timeoutMs);
      let call: Promise<AuthResult>;
      try {
        call = fn(controller.signal);
      } catch (err) {
        call = Promise.reject(err);
      }
      // Whether the backend answered (allow/deny/pass): only answers are latency samples; a fast
      // error (a refused login) says nothing about queueing, a timeout is handled above.
      let answered = false;
      call
        .then(
          (r) => {
            answered = r.outcome !== 'error';
            finish(r);
          },
          (err: unknown) =>
            finish({ outcome: 'error', reason: err instanceof Error ? err.message : String(err) }),
        )
        .finally(() => {
          // The slot is held until the backend call itself ends, not just until the caller gave
          // up at the timeout: the limit bounds real concurrency at the backend.
          if (answered && !timedOut)
            this.limiter.onSample(performance.now() - started, this.#inflight, this.#clock.now());
          this.#inflight--;
          this.#metrics?.backendInflight.set({ backend }, this.#inflight);
          this.#gauges();
          this.#drain();
        });
    });
  }

  /** Starts waiting calls while there is room under the limit. */
  #drain(): void {
    const now = this.#clock.now();
    while (this.waiting > 0 && this.#inflight < this.limiter.current) {
      const w = this.#next()!;
      if (now >= w.deadline) w.resolve(this.#reject(BackendRejection.WaitTimeout, 100));
      else this.#start(w.fn).then(w.resolve);
    }
    this.#afterDequeue();
  }

  #expire(): void {
    const now = this.#clock.now();
    // FIFO with one wait bound for all: the oldest waiters are the first to expire.
    while (this.waiting > 0 && now >= this.#waiting[this.#waitHead]!.deadline) {
      this.#next()!.resolve(this.#reject(BackendRejection.WaitTimeout, 100));
    }
    this.#afterDequeue();
  }

  #next(): Waiter | undefined {
    if (this.#waitHead >= this.#waiting.length) return undefined;
    const w = this.#waiting[this.#waitHead]!;
    this.#waiting[this.#waitHead++] = undefined as unknown as Waiter;
    return w;
  }

  #afterDequeue(): void {
    if (this.waiting === 0) {
      this.#waiting.length = 0;
      this.#waitHead = 0;
      this.#stopSweep();
    } else if (this.#waitHead > 1024 && this.#waitHead * 2 > this.#waiting.length) {
      // Compact now and then so the array does not grow without bound under steady queueing.
      this.#waiting.splice(0, this.#waitHead);
      this.#waitHead = 0;
    }
    this.#metrics?.backendWaiting.set({ backend: this.name }, this.waiting);
  }

  #stopSweep(): void {
    if (this.#sweep !== null) {
      this.#clock.clearInterval(this.#sweep);
      this.#sweep = null;
    }
  }

  #gauges(): void {
    this.#metrics?.backendLimit.set({ backend: this.name }, this.limiter.current);
  }
}
