/**
 * Time as the device sees it: every timer the SDK sets itself goes through a Scheduler, so tests
 * drive the reconnect loop, the auth breaker and the out-of-band backoff with a fake clock
 * instead of waiting. (MQTT.js keeps its own keepalive and connect timers; those are real.)
 * Structurally compatible with @breakwater/testkit's FakeClock.
 */
export interface Scheduler {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const systemScheduler: Scheduler = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
};
