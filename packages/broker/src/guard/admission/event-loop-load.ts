import { type IntervalHistogram, monitorEventLoopDelay } from 'node:perf_hooks';

/** Sampling period of the histogram's timer: fine enough for a 1 s window, cheap (native timer). */
const RESOLUTION_MS = 20;

/**
 * The broker's own load signal for admission (issue 11, "connect admission driven by broker load"):
 * the mean event-loop delay over the last complete window, in ms. Built on Node's native
 * `monitorEventLoopDelay` (a libuv timer recording into a histogram: no JS runs per sample), read
 * lazily — `delayMs(now)` rolls the window when it is due, so there is no timer of ours.
 *
 * The histogram records the time between its timer's turns, at least `RESOLUTION_MS`; the delay is
 * what exceeds that. A mean, not a max: one long tick (a GC, a big retained scan) must not refuse
 * connections; a loop that is late on every turn must.
 */
export class EventLoopLoad {
  readonly #windowMs: number;
  readonly #histogram: IntervalHistogram;
  #windowStart: number;
  #lastMs = 0;

  constructor(windowMs: number, now: number) {
    this.#windowMs = windowMs;
    this.#histogram = monitorEventLoopDelay({ resolution: RESOLUTION_MS });
    this.#histogram.enable();
    this.#windowStart = now;
  }

  /** Mean delay of the last complete window (0 before the first one ends). */
  delayMs(now: number): number {
    if (now - this.#windowStart >= this.#windowMs) {
      const h = this.#histogram;
      this.#lastMs = h.count > 0 ? Math.max(0, h.mean / 1e6 - RESOLUTION_MS) : 0;
      h.reset();
      this.#windowStart = now;
    }
    return this.#lastMs;
  }

  close(): void {
    this.#histogram.disable();
  }
}
