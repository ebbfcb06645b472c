/**
 * Per-device attempt budget for the device-token exchange: a fixed window per device id. A
 * device retrying with a wrong secret in a tight loop (or someone guessing) gets 429 with
 * `retry-after` instead of costing a scrypt verification per attempt.
 *
 * Memory is bounded: at most `maxTracked` ids; the oldest entries go first (Map keeps insertion
 * order), so a flood of random ids cannot grow the map without limit.
 */
import type { Clock } from '@breakwater/broker';

export interface AttemptLimiterOptions {
  clock: Clock;
  /** Attempts per window per device (default 10). */
  max?: number;
  /** Window length in ms (default 60 s). */
  windowMs?: number;
  maxTracked?: number;
}

export class AttemptLimiter {
  readonly #clock: Clock;
  readonly #max: number;
  readonly #windowMs: number;
  readonly #maxTracked: number;
  readonly #windows = new Map<string, { start: number; count: number }>();

  constructor(options: AttemptLimiterOptions) {
    this.#clock = options.clock;
    this.#max = options.max ?? 10;
    this.#windowMs = options.windowMs ?? 60_000;
    this.#maxTracked = options.maxTracked ?? 100_000;
  }

  /** Counts one attempt. Returns 0 when allowed, else the seconds until the window resets. */
  take(id: string): number {
    const now = this.#clock.now();
    let w = this.#windows.get(id);
    if (!w || now - w.start >= this.#windowMs) {
      this.#windows.delete(id); // re-insert at the end: insertion order = age
      w = { start: now, count: 0 };
      this.#windows.set(id, w);
      if (this.#windows.size > this.#maxTracked) {
        const oldest = this.#windows.keys().next().value;
        if (oldest !== undefined) this.#windows.delete(oldest);
      }
    }
    w.count++;
    return w.count <= this.#max ? 0 : Math.ceil((w.start + this.#windowMs - now) / 1000);
  }
}
