import type { Clock } from '../clock.js';

export const BreakerState = { Closed: 0, HalfOpen: 1, Open: 2 } as const;
export type BreakerStateValue = (typeof BreakerState)[keyof typeof BreakerState];

export interface BreakerOptions {
  /** Sliding window over which the error ratio is measured. */
  windowMs: number;
  /** No trip before this many calls in the window (one failed call out of two is not an outage). */
  minRequests: number;
  /** Error/timeout ratio in the window at or above which the breaker opens. */
  errorRatio: number;
  /** First open period; doubled on every failed half-open probe up to `maxOpenMs`. */
  openMs: number;
  maxOpenMs: number;
  /** Concurrent probe calls allowed while half-open. */
  halfOpenProbes: number;
}

/** What `tryAcquire` grants: nothing, a normal call, or a half-open probe. */
export const Permit = { Denied: 0, Normal: 1, Probe: 2 } as const;
export type PermitValue = (typeof Permit)[keyof typeof Permit];

const BUCKETS = 10;

/**
 * Circuit breaker per auth backend. Closed: every call goes through, outcomes land in a sliding
 * window of 10 buckets. Open: no call reaches the backend until the open period ends. Half-open:
 * a few probe calls test the backend; one success closes the breaker, one failure re-opens it for
 * twice as long (bounded), so a backend that is still down sees a trickle, not the fleet.
 */
export class CircuitBreaker {
  readonly #o: BreakerOptions;
  readonly #clock: Clock;
  readonly #onChange: (state: BreakerStateValue) => void;
  readonly #ok = new Array<number>(BUCKETS).fill(0);
  readonly #fail = new Array<number>(BUCKETS).fill(0);
  #bucketStart: number;
  #bucket = 0;
  #state: BreakerStateValue = BreakerState.Closed;
  #openUntil = 0;
  #openMs: number;
  #probes = 0;

  constructor(
    options: BreakerOptions,
    clock: Clock,
    onChange: (state: BreakerStateValue) => void = () => {},
  ) {
    this.#o = options;
    this.#clock = clock;
    this.#onChange = onChange;
    this.#openMs = options.openMs;
    this.#bucketStart = clock.now();
  }

  get state(): BreakerStateValue {
    if (this.#state === BreakerState.Open && this.#clock.now() >= this.#openUntil)
      return BreakerState.HalfOpen;
    return this.#state;
  }

  /** Milliseconds until the breaker lets a probe through (0 when not open). */
  get retryAfterMs(): number {
    return this.#state === BreakerState.Open ? Math.max(0, this.#openUntil - this.#clock.now()) : 0;
  }

  tryAcquire(): PermitValue {
    if (this.#state === BreakerState.Closed) return Permit.Normal;
    if (this.#state === BreakerState.Open) {
      if (this.#clock.now() < this.#openUntil) return Permit.Denied;
      this.#set(BreakerState.HalfOpen);
    }
    if (this.#probes >= this.#o.halfOpenProbes) return Permit.Denied;
    this.#probes++;
    return Permit.Probe;
  }

  /** Gives back a permit that was not used (the call was refused for another reason). */
  cancel(permit: PermitValue): void {
    if (permit === Permit.Probe) this.#probes--;
  }

  record(success: boolean, permit: PermitValue): void {
    if (permit === Permit.Probe) {
      this.#probes--;
      if (this.#state !== BreakerState.HalfOpen) return;
      if (success) {
        this.#openMs = this.#o.openMs;
        this.#resetWindow();
        this.#set(BreakerState.Closed);
      } else {
        this.#openMs = Math.min(this.#o.maxOpenMs, this.#openMs * 2);
        this.#open(this.#openMs);
      }
      return;
    }
    this.#rotate();
    if (success) this.#ok[this.#bucket]!++;
    else this.#fail[this.#bucket]!++;
    if (this.#state !== BreakerState.Closed || success) return;
    let ok = 0;
    let fail = 0;
    for (let i = 0; i < BUCKETS; i++) {
      ok += this.#ok[i]!;
      fail += this.#fail[i]!;
    }
    if (ok + fail >= this.#o.minRequests && fail / (ok + fail) >= this.#o.errorRatio)
      this.#open(this.#openMs);
  }

  #open(ms: number): void {
    this.#openUntil = this.#clock.now() + ms;
    this.#set(BreakerState.Open);
  }

  #set(state: BreakerStateValue): void {
    if (state === this.#state) return;
    this.#state = state;
    this.#onChange(state);
  }

  #resetWindow(): void {
    this.#ok.fill(0);
    this.#fail.fill(0);
    this.#bucketStart = this.#clock.now();
  }

  /** Advances the ring to the bucket for "now", clearing buckets that fell out of the window. */
  #rotate(): void {
    const width = Math.max(1, this.#o.windowMs / BUCKETS);
    const steps = Math.floor((this.#clock.now() - this.#bucketStart) / width);
    if (steps <= 0) return;
    if (steps >= BUCKETS) {
      this.#resetWindow();
      return;
    }
    for (let i = 0; i < steps; i++) {
      this.#bucket = (this.#bucket + 1) % BUCKETS;
      this.#ok[this.#bucket] = 0;
      this.#fail[this.#bucket] = 0;
    }
    this.#bucketStart += steps * width;
  }
}
