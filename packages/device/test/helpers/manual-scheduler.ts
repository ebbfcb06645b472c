import type { Scheduler } from '../../src/scheduler.js';

interface Timer {
  id: number;
  at: number;
  fn: () => void;
}

/**
 * A Scheduler whose time moves only when the test says so (the device's loop, breaker and
 * out-of-band backoff run on it; no real waiting). `pendingDelays()` shows what is scheduled.
 */
export class ManualScheduler implements Scheduler {
  #now: number;
  #nextId = 1;
  #timers = new Map<number, Timer>();

  constructor(start = Date.UTC(2026, 0, 1)) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  setTimeout(fn: () => void, ms: number): unknown {
    const id = this.#nextId++;
    this.#timers.set(id, { id, at: this.#now + Math.max(0, ms), fn });
    return id;
  }

  clearTimeout(handle: unknown): void {
    this.#timers.delete(handle as number);
  }

  get pending(): number {
    return this.#timers.size;
  }

  /** Time until the next timer fires, or null. */
  nextIn(): number | null {
    let best: number | null = null;
    for (const t of this.#timers.values()) if (best === null || t.at < best) best = t.at;
    return best === null ? null : best - this.#now;
  }

  /** Advance by `ms`, firing due timers in order. */
  advance(ms: number): void {
    const target = this.#now + ms;
    for (;;) {
      let next: Timer | undefined;
      for (const t of this.#timers.values()) if (t.at <= target && (!next || t.at < next.at)) next = t;
      if (!next) break;
      this.#timers.delete(next.id);
      this.#now = next.at;
      next.fn();
    }
    this.#now = target;
  }

  /** Fire the next timer, whenever it is due. Returns the time advanced. */
  fireNext(): number {
    const d = this.nextIn();
    if (d === null) throw new Error('no timer pending');
    this.advance(d);
    return d;
  }
}
