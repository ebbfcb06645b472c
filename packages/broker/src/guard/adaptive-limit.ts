/**
 * How many calls one auth backend may have in flight, learned from the latency it shows (issue 11,
 * "adaptive backend limiter"). The idea is Netflix concurrency-limits' Gradient2 and Envoy's
 * adaptive concurrency filter: a backend that is not queueing answers in about its no-load time,
 * so while measured latency stays within `tolerance` × that baseline the limit may grow (by about
 * √limit per sample, smoothed), and when latency rises above it the limit shrinks in proportion
 * (never below half per sample, smoothed). Timeouts cut it multiplicatively (`backoffRatio`).
 *
 * Differences from Gradient2, and why:
 * - The baseline is the minimum latency of the current and the previous `baselineWindowMs`
 *   window (Vegas' rttNoLoad, re-measured), not a long EWMA: when the backend becomes slow for
 *   good (the 200 ms `pg_sleep` of the issue), the baseline follows within two windows and the
 *   limit grows back to what the slower backend can still serve in parallel, instead of staying
 *   pinned at the floor; and a long EWMA drifts upwards under sustained queueing.
 * - No growth while the caller does not use the limit (in flight below half of it): a limit that
 *   was never tested says nothing (the "app-limited" rule of BBR and concurrency-limits).
 *
 * Pure arithmetic, O(1) per sample, no timers: the BackendGate feeds it and reads `current`.
 */
export interface AdaptiveLimitOptions {
  initial: number;
  min: number;
  max: number;
  /** Latency up to this multiple of the baseline counts as "not queueing". */
  tolerance: number;
  /** Weight of each new estimate (0..1]. */
  smoothing: number;
  baselineWindowMs: number;
  /** Multiplier applied on a timeout. */
  backoffRatio: number;
}

export class AdaptiveLimit {
  readonly #o: AdaptiveLimitOptions;
  #limit: number;
  #windowStart: number;
  #minCurrent = Number.POSITIVE_INFINITY;
  #minPrevious = Number.POSITIVE_INFINITY;
  /** Smoothed latency (ms), for wait estimates. */
  #latency = 0;

  constructor(options: AdaptiveLimitOptions, now: number) {
    this.#o = options;
    this.#limit = clamp(options.initial, options.min, options.max);
    this.#windowStart = now;
  }

  /** Calls allowed in flight now (an integer ≥ min). */
  get current(): number {
    return Math.floor(this.#limit);
  }

  /** No-load latency estimate (ms); Infinity before the first sample. */
  get baselineMs(): number {
    return Math.min(this.#minCurrent, this.#minPrevious);
  }

  /** Smoothed recent latency (ms); 0 before the first sample. */
  get latencyMs(): number {
    return this.#latency;
  }

  /**
   * One completed call: its latency and how many calls were in flight when it ended (itself
   * included).
   */
  onSample(latencyMs: number, inflight: number, now: number): void {
    const o = this.#o;
    this.#roll(now);
    const rtt = Math.max(latencyMs, 0.01);
    if (rtt < this.#minCurrent) this.#minCurrent = rtt;
    this.#latency = this.#latency === 0 ? rtt : this.#latency * 0.9 + rtt * 0.1;
    const gradient = clamp((o.tolerance * this.baselineMs) / rtt, 0.5, 1);
    // Used below half its limit, a backend gives no evidence that more would be fine.
    if (gradient >= 1 && inflight < this.#limit / 2) return;
    const estimate = this.#limit * gradient + Math.sqrt(this.#limit);
    this.#limit = clamp(this.#limit * (1 - o.smoothing) + estimate * o.smoothing, o.min, o.max);
  }

  /** A call timed out: the backend is overloaded or gone. */
  onTimeout(): void {
    const o = this.#o;
    this.#limit = clamp(this.#limit * o.backoffRatio, o.min, o.max);
  }

  /** Start low again (the breaker closed after an outage: the backend has just come back). */
  reset(now: number): void {
    const o = this.#o;
    this.#limit = clamp(o.initial, o.min, o.max);
    this.#minCurrent = Number.POSITIVE_INFINITY;
    this.#minPrevious = Number.POSITIVE_INFINITY;
    this.#windowStart = now;
  }

  #roll(now: number): void {
    const w = this.#o.baselineWindowMs;
    const elapsed = now - this.#windowStart;
    if (elapsed < w) return;
    // A window with no sample at all says nothing about the previous one's successor.
    this.#minPrevious = elapsed < 2 * w ? this.#minCurrent : Number.POSITIVE_INFINITY;
    this.#minCurrent = Number.POSITIVE_INFINITY;
    this.#windowStart = now;
  }
}

function clamp(v: number, lo: number, hi: number): number {
  return Math.max(lo, Math.min(v, hi));
}
