/**
 * The auth circuit breaker (DESIGN.md §3, issue 4): after 3 consecutive authentication failures a
 * device stops trying for 60-90 min (jittered) and reports out of band.
 *
 * Why: in the auth-backend storm (DESIGN.md §1) every device with a rejected credential retried
 * on a tight loop and the retries, not the fault, took the backend down. A device whose
 * credential is refused three times in a row will not be fixed by a fourth try a few minutes
 * later; someone has to act, and the out-of-band report tells them.
 *
 * Counting rules (decided here, documented in the README):
 * - only authentication refusals count (v5 CONNACK 0x86 bad user name or password, 0x87 not
 *   authorized, 0x8C bad authentication method; v3.1.1 return codes 4 and 5);
 * - network failures, timeouts and other refusals (server busy, rate exceeded, …) neither count
 *   nor reset the count: a flaky network between two auth refusals does not make the credential
 *   any better;
 * - a successful CONNACK resets the count and closes the breaker;
 * - after the cool-down the breaker is half-open: one attempt is allowed, and if it is refused for
 *   authentication again the breaker reopens at once (a fresh 60-90 min), rather than allowing
 *   three more refusals.
 *
 * Pure: no timers. The caller passes the time and the random source.
 */
import type { Random } from './random.js';

export interface AuthBreakerOptions {
  /** Consecutive authentication failures that open the breaker (default 3). */
  threshold: number;
  /** Open duration, drawn uniformly from [openMinMs, openMaxMs] each time it opens. */
  openMinMs: number;
  openMaxMs: number;
}

export const defaultAuthBreakerOptions: Readonly<AuthBreakerOptions> = Object.freeze({
  threshold: 3,
  openMinMs: 60 * 60_000,
  openMaxMs: 90 * 60_000,
});

export type AuthBreakerState = 'closed' | 'open' | 'half-open';

// MQTT 5.0 §3.2.2.2 CONNACK reason codes that mean "your credential was refused".
const V5_AUTH_FAILURES: ReadonlySet<number> = new Set([0x86, 0x87, 0x8c]);
// MQTT 3.1.1 §3.2.2.3: 4 bad user name or password, 5 not authorized.
const V3_AUTH_FAILURES: ReadonlySet<number> = new Set([4, 5]);

/** Is this CONNACK code an authentication refusal for the given protocol version? */
export function isAuthFailure(protocolVersion: number, code: number): boolean {
  return protocolVersion === 5 ? V5_AUTH_FAILURES.has(code) : V3_AUTH_FAILURES.has(code);
}

export class AuthBreaker {
  readonly options: Readonly<AuthBreakerOptions>;
  #consecutive = 0;
  #state: AuthBreakerState = 'closed';
  #openUntil = 0;
  #opened = 0;

  constructor(options: Partial<AuthBreakerOptions> = {}) {
    const o = { ...defaultAuthBreakerOptions, ...options };
    if (!(o.threshold >= 1 && o.openMinMs >= 0 && o.openMaxMs >= o.openMinMs)) {
      throw new RangeError(`invalid auth breaker options ${JSON.stringify(o)}`);
    }
    this.options = Object.freeze(o);
  }

  /** Consecutive authentication failures since the last success. */
  get consecutiveFailures(): number {
    return this.#consecutive;
  }

  /** How many times the breaker has opened. */
  get timesOpened(): number {
    return this.#opened;
  }

  /** Current state at time `now` (an open breaker whose cool-down is over is half-open). */
  state(now: number): AuthBreakerState {
    if (this.#state === 'open' && now >= this.#openUntil) this.#state = 'half-open';
    return this.#state;
  }

  /** When an open breaker allows the next attempt (epoch ms); 0 when closed. */
  get openUntil(): number {
    return this.#state === 'closed' ? 0 : this.#openUntil;
  }

  /**
   * Records an authentication refusal. Returns the open duration in ms when this failure opened
   * the breaker, or null when it stays closed.
   */
  recordAuthFailure(now: number, random: Random): number | null {
    this.#consecutive++;
    const halfOpen = this.state(now) === 'half-open';
    if (!halfOpen && this.#consecutive < this.options.threshold) return null;
    const { openMinMs, openMaxMs } = this.options;
    const openForMs = openMinMs + Math.floor(random() * (openMaxMs - openMinMs + 1));
    this.#state = 'open';
    this.#openUntil = now + openForMs;
    this.#opened++;
    return openForMs;
  }

  /** A successful connect: closes the breaker and resets the count. */
  recordSuccess(): void {
    this.#consecutive = 0;
    this.#state = 'closed';
    this.#openUntil = 0;
  }
}
