/**
 * Reconnect policies: when does a device try again after it lost (or never got) a connection?
 *
 * A policy is a pure function of the attempt number, the server's hint and a random source: no
 * timers, no clock, no state. The device SDK and the game-day fleet simulator run the very same
 * code, so a simulated storm of 10,000 devices is the real schedule, not a model of it.
 *
 * Why the "fleet" schedule (DESIGN.md §3): when a server-side fault drops a whole fleet at once,
 * every device retries at once. A fixed 1 s retry (MQTT.js default) turns 10,000 devices into
 * 10,000 connection attempts per second against whatever broke; exponential backoff without
 * jitter (paho-python default) keeps the fleet in lock-step, so the waves stay 10,000 high. The
 * fleet schedule waits long and spreads wide: 5-15 s, then 30-120 s, then 5-10 min with fresh
 * jitter on every try.
 */
import type { Random } from './random.js';

export {
  AuthBreaker,
  type AuthBreakerOptions,
  type AuthBreakerState,
  defaultAuthBreakerOptions,
  isAuthFailure,
} from './auth-breaker.js';
export { mulberry32, type Random, systemRandom, uniformInt } from './random.js';

/** What a policy knows when it picks the next delay. */
export interface ReconnectContext {
  /**
   * Which retry this is: 1 for the first retry after the connection was lost (or the first
   * connect failed), 2 for the second consecutive one, and so on. A successful connect resets it.
   */
  attempt: number;
  /** The server's `retry-after-ms` hint from the last CONNACK or DISCONNECT, if it sent one. */
  serverHintMs?: number | undefined;
}

/** A reconnect policy. Implement this interface for a custom one. */
export interface ReconnectPolicy {
  readonly name: string;
  /** Milliseconds to wait before retry `context.attempt`. Must be pure and must not throw. */
  nextDelayMs(context: ReconnectContext, random: Random): number;
}

/** One stage of a jittered schedule: a delay drawn uniformly from [minMs, maxMs]. */
export interface DelayStage {
  minMs: number;
  maxMs: number;
}

export interface FleetPolicyOptions {
  /**
   * Stage i applies to attempt i + 1; the last stage repeats for every later attempt.
   * Default: 5-15 s, 30-120 s, 300-600 s (DESIGN.md §3).
   */
  stages?: readonly DelayStage[];
  /** Treat the server's `retry-after-ms` as a lower bound (default true). */
  honorServerHint?: boolean;
  /**
   * A hint above this is clamped (default 24 h): a misconfigured or hostile server must not be
   * able to park a device forever.
   */
  maxServerHintMs?: number;
}

export const fleetStages: readonly DelayStage[] = Object.freeze([
  Object.freeze({ minMs: 5_000, maxMs: 15_000 }),
  Object.freeze({ minMs: 30_000, maxMs: 120_000 }),
  Object.freeze({ minMs: 300_000, maxMs: 600_000 }),
]);

const DAY_MS = 24 * 3600 * 1000;

function validateStages(stages: readonly DelayStage[]): void {
  if (stages.length === 0) throw new RangeError('reconnect policy needs at least one stage');
  for (const s of stages) {
    if (!(Number.isFinite(s.minMs) && Number.isFinite(s.maxMs) && s.minMs >= 0 && s.maxMs >= s.minMs)) {
      throw new RangeError(`invalid reconnect stage ${JSON.stringify(s)}: need 0 <= minMs <= maxMs`);
    }
  }
}

/** Applies a server hint as a lower bound, clamped to `maxHintMs`. */
export function applyServerHint(delayMs: number, hintMs: number | undefined, maxHintMs = DAY_MS): number {
  if (hintMs === undefined || !Number.isFinite(hintMs) || hintMs <= 0) return delayMs;
  return Math.max(delayMs, Math.min(hintMs, maxHintMs));
}

/**
 * The default policy: a jittered schedule of stages, with fresh jitter on every attempt and the
 * server hint as a lower bound. Delays are whole milliseconds drawn uniformly from each stage.
 */
export function fleetPolicy(options: FleetPolicyOptions = {}): ReconnectPolicy {
  const stages = options.stages ?? fleetStages;
  validateStages(stages);
  const honorHint = options.honorServerHint ?? true;
  const maxHint = options.maxServerHintMs ?? DAY_MS;
  return {
    name: 'fleet',
    nextDelayMs(context, random) {
      const stage = stages[Math.min(Math.max(context.attempt, 1), stages.length) - 1]!;
      const delay = stage.minMs + Math.floor(random() * (stage.maxMs - stage.minMs + 1));
      return honorHint ? applyServerHint(delay, context.serverHintMs, maxHint) : delay;
    },
  };
}

/**
 * Fixed delay, no jitter, server hint ignored: what MQTT.js does by default (reconnectPeriod
 * 1000). For comparison in the simulator and the README, never for a real fleet.
 */
export function naivePolicy(periodMs = 1_000): ReconnectPolicy {
  return { name: 'naive', nextDelayMs: () => periodMs };
}

export interface ExponentialPolicyOptions {
  initialMs?: number;
  maxMs?: number;
  factor?: number;
  /** 'none' (paho default) or 'full' (uniform in [0, delay]). */
  jitter?: 'none' | 'full';
  honorServerHint?: boolean;
}

/**
 * Exponential backoff. With the defaults (1 s doubling to 120 s, no jitter, hint ignored) this is
 * paho-python's `reconnect_delay_set(min_delay=1, max_delay=120)`, kept for comparison.
 */
export function exponentialPolicy(options: ExponentialPolicyOptions = {}): ReconnectPolicy {
  const initial = options.initialMs ?? 1_000;
  const max = options.maxMs ?? 120_000;
  const factor = options.factor ?? 2;
  const jitter = options.jitter ?? 'none';
  const honorHint = options.honorServerHint ?? false;
  return {
    name: jitter === 'none' ? 'exponential' : 'exponential-jitter',
    nextDelayMs(context, random) {
      const base = Math.min(max, initial * factor ** (Math.max(context.attempt, 1) - 1));
      const delay = jitter === 'full' ? Math.floor(random() * (base + 1)) : base;
      return honorHint ? applyServerHint(delay, context.serverHintMs) : delay;
    },
  };
}

/** Named policies, for configuration files and the simulator's `--policy` flag. */
export const policies = {
  fleet: fleetPolicy,
  naive: naivePolicy,
  exponential: exponentialPolicy,
} as const;
