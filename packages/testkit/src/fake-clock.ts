import type { Clock, TimerHandle } from '@breakwater/broker';

interface FakeTimer {
  id: number;
  at: number;
  fn: () => void;
  interval: number | null;
}

/**
 * A Clock whose time only moves when the test says so. `advance(ms)` fires due timers in order,
 * including timers scheduled by the callbacks it fires.
 */
export class FakeClock implements Clock {
  #now: number;
  #nextId = 1;
  #timers = new Map<number, FakeTimer>();

  constructor(start = Date.UTC(2026, 0, 1)) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    const id = this.#nextId++;
    this.#timers.set(id, { id, at: this.#now + Math.max(0, ms), fn, interval: null });
    return { id } as unknown as TimerHandle;
  }

  clearTimeout(handle: TimerHandle): void {
    this.#timers.delete((handle as unknown as { id: number }).id);
  }

  setInterval(fn: () => void, ms: number): TimerHandle {
    const id = this.#nextId++;
    this.#timers.set(id, { id, at: this.#now + Math.max(1, ms), fn, interval: Math.max(1, ms) });
    return { id } as unknown as TimerHandle;
  }

  clearInterval(handle: TimerHandle): void {
    this.clearTimeout(handle);
  }

  /** Number of pending timers (for leak assertions). */
  get pending(): number {
    return this.#timers.size;
  }

  /** Move time forward by `ms`, firing every timer that falls due, in due order. */
  advance(ms: number): void {
    const target = this.#now + ms;
    for (;;) {
      let next: FakeTimer | undefined;
      for (const t of this.#timers.values()) if (t.at <= target && (!next || t.at < next.at)) next = t;
      if (!next) break;
      this.#now = next.at;
      if (next.interval === null) this.#timers.delete(next.id);
      else next.at += next.interval;
      next.fn();
    }
    this.#now = target;
  }
}
