import { performance } from 'node:perf_hooks';
import type { Clock, TimerHandle } from '../clock.js';
import type { AuthResult } from './authenticators/types.js';
import { BreakerState, CircuitBreaker, Permit, type PermitValue } from './circuit-breaker.js';
import type { BackendLimits } from './config.js';
import type { GuardMetrics } from './metrics.js';
import { TokenBucket } from './token-bucket.js';

export type BackendCall = (signal: AbortSignal) => Promise<AuthResult>;

/**
 * Everything that stands between the fleet and one auth backend: a bulkhead (calls in flight), a
 * circuit breaker and a query-rate cap (token bucket), plus a timeout. A call that cannot go out
 * right now is answered at once with `error` — never queued — so a storm costs the broker no
 * memory and the backend no load. The AuthEngine turns such an error into a stale-if-error admit
 * or a 0x88, never into a deny.
 */
export class BackendGate {
  readonly name: string;
  readonly breaker: CircuitBreaker;
  readonly #bucket: TokenBucket;
  readonly #limits: BackendLimits;
  readonly #clock: Clock;
  readonly #metrics: GuardMetrics | undefined;
  #inflight = 0;

  constructor(
    name: string,
    limits: BackendLimits,
    clock: Clock,
    metrics?: GuardMetrics,
    /** Called when the breaker closes again after an outage (the guard starts admission slow start). */
    onRecovered?: () => void,
  ) {
    this.name = name;
    this.#limits = limits;
    this.#clock = clock;
    this.#metrics = metrics;
    this.#bucket = new TokenBucket(limits.ratePerSec, limits.burst, clock.now());
    this.breaker = new CircuitBreaker(limits.breaker, clock, (state) => {
      metrics?.breakerState.set({ backend: name }, state);
      if (state === BreakerState.Closed) onRecovered?.();
    });
    metrics?.breakerState.set({ backend: name }, 0);
    metrics?.backendInflight.set({ backend: name }, 0);
  }

  get inflight(): number {
    return this.#inflight;
  }

  #reject(reason: string, retryAfterMs: number): AuthResult {
    this.#metrics?.backendRejected.inc({ backend: this.name, reason });
    return { outcome: 'error', reason, retryAfterMs };
  }

  call(fn: BackendCall): Promise<AuthResult> {
    if (this.#inflight >= this.#limits.maxInFlight)
      return Promise.resolve(this.#reject('bulkhead_full', 100));
    const permit = this.breaker.tryAcquire();
    if (permit === Permit.Denied)
      return Promise.resolve(this.#reject('breaker_open', this.breaker.retryAfterMs));
    if (!this.#bucket.take(this.#clock.now())) {
      this.breaker.cancel(permit);
      return Promise.resolve(this.#reject('rate_limited', this.#bucket.msUntilToken(this.#clock.now())));
    }
    return this.#run(fn, permit);
  }

  #run(fn: BackendCall, permit: PermitValue): Promise<AuthResult> {
    const backend = this.name;
    this.#inflight++;
    this.#metrics?.backendInflight.inc({ backend });
    this.#metrics?.backendQueries.inc({ backend });
    const started = performance.now();
    const controller = new AbortController();
    let settled = false;
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
        controller.abort();
        finish({ outcome: 'error', reason: 'timeout' });
      }, this.#limits.timeoutMs);
      let call: Promise<AuthResult>;
      try {
        call = fn(controller.signal);
      } catch (err) {
        call = Promise.reject(err);
      }
      call
        .then(finish, (err: unknown) =>
          finish({ outcome: 'error', reason: err instanceof Error ? err.message : String(err) }),
        )
        .finally(() => {
          // The slot is held until the backend call itself ends, not just until the caller gave
          // up at the timeout: the bulkhead bounds real concurrency at the backend.
          this.#inflight--;
          this.#metrics?.backendInflight.dec({ backend });
        });
    });
  }
}
