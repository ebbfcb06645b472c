/**
 * Time source for everything time-based in the broker (keepalive, connect timeout, session and
 * message expiry, will delay). Injected so tests drive time with a fake clock (testkit FakeClock)
 * instead of sleeping — the pattern of MQTT.js's KeepaliveManager.
 */
export interface TimerHandle {
  /** Opaque. */
  readonly __timer?: never;
}

export interface Clock {
  /** Epoch milliseconds. */
  now(): number;
  setTimeout(fn: () => void, ms: number): TimerHandle;
  clearTimeout(handle: TimerHandle): void;
  setInterval(fn: () => void, ms: number): TimerHandle;
  clearInterval(handle: TimerHandle): void;
}

/** The real clock. Timers are unref'd so a broker never keeps a finished process alive by itself. */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout(fn, ms) {
    const t = setTimeout(fn, ms);
    t.unref();
    return t as unknown as TimerHandle;
  },
  clearTimeout(handle) {
    clearTimeout(handle as unknown as NodeJS.Timeout);
  },
  setInterval(fn, ms) {
    const t = setInterval(fn, ms);
    t.unref();
    return t as unknown as TimerHandle;
  },
  clearInterval(handle) {
    clearInterval(handle as unknown as NodeJS.Timeout);
  },
};
