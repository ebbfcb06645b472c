/**
 * The one token bucket of the guard, refilled lazily from the clock: no timer, O(1) per decision.
 * Used for the auth backends' query-rate cap (BackendGate: over any T seconds at most
 * `burst + rate × T` calls — "the broker can never send its backend more than the cap") and for
 * admission's connection-attempt buckets. Callers pass the clock reading, so one `now` serves
 * several buckets checked together.
 *
 * One refinement over the textbook bucket: a **scale** in (0, 1] applied to both rate and
 * capacity, read at each call. Slow start lowers it after an outage and ramps it back, so a
 * drained fleet cannot spend a full burst against a backend that has just recovered.
 */
export class TokenBucket {
  readonly rate: number;
  readonly capacity: number;
  #tokens: number;
  #last: number;

  /**
   * @param rate tokens per second; 0 means unlimited (every take succeeds)
   * @param capacity burst size
   * @param now clock reading, ms — the bucket starts full
   */
  constructor(rate: number, capacity: number, now: number) {
    this.rate = rate;
    this.capacity = capacity;
    this.#tokens = capacity;
    this.#last = now;
  }

  /** Tokens available now (after refill). */
  available(now: number, scale = 1): number {
    this.#refill(now, scale);
    return this.#tokens;
  }

  /** Whether `take` would succeed, without taking (so two buckets can be checked before either is charged). */
  canTake(now: number, scale = 1): boolean {
    if (this.rate === 0) return true;
    this.#refill(now, scale);
    return this.#tokens >= 1;
  }

  take(now: number, scale = 1): boolean {
    if (!this.canTake(now, scale)) return false;
    if (this.rate !== 0) this.#tokens -= 1;
    return true;
  }

  /** Milliseconds until a token is available at the current scale. */
  msUntilToken(now: number, scale = 1): number {
    if (this.rate === 0) return 0;
    this.#refill(now, scale);
    return this.#tokens >= 1 ? 0 : Math.ceil(((1 - this.#tokens) * 1000) / (this.rate * scale));
  }

  // The scale is read at refill time and applied to the whole elapsed interval. The gate calls
  // this on every attempt, so intervals are short and the ramp error is negligible.
  #refill(now: number, scale: number): void {
    const elapsed = now - this.#last;
    if (elapsed > 0) {
      this.#tokens += (elapsed * this.rate * scale) / 1000;
      this.#last = now;
    }
    const cap = this.capacity * scale;
    if (this.#tokens > cap) this.#tokens = cap;
  }
}
