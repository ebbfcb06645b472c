/**
 * Webhook notifications: every alert event is POSTed as JSON to the receiver, in order, retried
 * with exponential backoff and full jitter until `maxAttempts`. The queue is bounded: when a
 * receiver is down for long, the oldest undelivered events are dropped (and counted) rather than
 * growing the process. Each delivery carries an id header so receivers can drop duplicates from
 * retries after a lost response.
 */
import { randomUUID } from 'node:crypto';
import { type Clock, systemClock } from '@breakwater/broker';
import type { Logger } from 'pino';
import type { AlertEvent, AlertSeverity, AlertSink } from './types.js';

const SEVERITY_RANK: Record<AlertSeverity, number> = { info: 0, warning: 1, critical: 2 };

export interface WebhookNotifierOptions {
  url: string;
  headers?: Record<string, string>;
  /** Least severe event sent (default info: all). */
  minSeverity?: AlertSeverity;
  /** Tries per event, the first included (default 8). */
  maxAttempts?: number;
  /** Per request (default 5000). */
  timeoutMs?: number;
  /** Events waiting; beyond it the oldest is dropped (default 1000). */
  queueSize?: number;
  /** Backoff before retry n is uniform in [0, min(maxDelayMs, baseDelayMs * 2^(n-1))]. */
  baseDelayMs?: number;
  maxDelayMs?: number;
  clock?: Clock;
  random?: () => number;
  logger?: Logger | null;
}

export interface WebhookStats {
  delivered: number;
  /** Events given up on after maxAttempts or a permanent (4xx) answer. */
  failed: number;
  /** Events dropped from a full queue. */
  dropped: number;
  /** HTTP requests made. */
  attempts: number;
  queued: number;
}

class PermanentFailure extends Error {}

export class WebhookNotifier implements AlertSink {
  readonly url: string;
  readonly #o: Required<Omit<WebhookNotifierOptions, 'logger' | 'headers'>> & {
    headers: Record<string, string>;
  };
  readonly #logger: Logger | null;
  /** Waiting events (the one being delivered is not in here). */
  readonly #queue: Array<{ id: string; event: AlertEvent }> = [];
  readonly #stats = { delivered: 0, failed: 0, dropped: 0, attempts: 0 };
  #running: Promise<void> | null = null;
  #closed = false;
  #wake: (() => void) | null = null;

  constructor(options: WebhookNotifierOptions) {
    this.url = options.url;
    this.#o = {
      url: options.url,
      headers: options.headers ?? {},
      minSeverity: options.minSeverity ?? 'info',
      maxAttempts: options.maxAttempts ?? 8,
      timeoutMs: options.timeoutMs ?? 5000,
      queueSize: options.queueSize ?? 1000,
      baseDelayMs: options.baseDelayMs ?? 500,
      maxDelayMs: options.maxDelayMs ?? 60_000,
      clock: options.clock ?? systemClock,
      random: options.random ?? Math.random,
    };
    this.#logger = options.logger ?? null;
  }

  get stats(): WebhookStats {
    return { ...this.#stats, queued: this.#queue.length };
  }

  onAlert(event: AlertEvent): void {
    if (this.#closed) return;
    if (SEVERITY_RANK[event.severity] < SEVERITY_RANK[this.#o.minSeverity]) return;
    if (this.#queue.length >= this.#o.queueSize) {
      this.#queue.shift();
      this.#stats.dropped++;
    }
    this.#queue.push({ id: randomUUID(), event });
    this.#running ??= this.#drain().finally(() => {
      this.#running = null;
    });
  }

  /** Resolves once everything queued so far was delivered or given up on. */
  async idle(): Promise<void> {
    while (this.#running) await this.#running;
  }

  /** Stops delivering: the event in flight ends after its current attempt; the rest are dropped. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#stats.dropped += this.#queue.length;
    this.#queue.length = 0;
    this.#wake?.();
    await this.idle();
  }

  async #drain(): Promise<void> {
    for (let item = this.#queue.shift(); item !== undefined; item = this.#queue.shift()) {
      if (await this.#deliver(item.id, item.event)) this.#stats.delivered++;
      else this.#stats.failed++;
    }
  }

  async #deliver(id: string, event: AlertEvent): Promise<boolean> {
    const body = JSON.stringify(event);
    for (let attempt = 1; attempt <= this.#o.maxAttempts; attempt++) {
      try {
        this.#stats.attempts++;
        await this.#post(id, attempt, body);
        return true;
      } catch (err) {
        const permanent = err instanceof PermanentFailure;
        const last = permanent || attempt === this.#o.maxAttempts || this.#closed;
        this.#logger?.[last ? 'error' : 'warn'](
          { err, url: this.url, rule: event.ruleId, attempt },
          last ? 'alert webhook delivery failed' : 'alert webhook delivery failed; retrying',
        );
        if (last) return false;
        await this.#sleep(this.#backoff(attempt));
        if (this.#closed) return false;
      }
    }
    return false;
  }

  #backoff(attempt: number): number {
    const cap = Math.min(this.#o.maxDelayMs, this.#o.baseDelayMs * 2 ** (attempt - 1));
    return Math.floor(this.#o.random() * cap);
  }

  async #post(id: string, attempt: number, body: string): Promise<void> {
    const response = await fetch(this.url, {
      method: 'POST',
      headers: {
        ...this.#o.headers,
        'content-type': 'application/json',
        'user-agent': 'breakwater-alerts',
        'x-breakwater-delivery': id,
        'x-breakwater-attempt': String(attempt),
      },
      body,
      signal: AbortSignal.timeout(this.#o.timeoutMs),
    });
    await response.body?.cancel();
    if (response.ok) return;
    // 408 and 429 are worth retrying like a 5xx; other 4xx will not get better with time.
    const retriable = response.status >= 500 || response.status === 408 || response.status === 429;
    const message = `${this.url} answered ${response.status}`;
    throw retriable ? new Error(message) : new PermanentFailure(message);
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const handle = this.#o.clock.setTimeout(() => {
        this.#wake = null;
        resolve();
      }, ms);
      this.#wake = () => {
        this.#o.clock.clearTimeout(handle);
        this.#wake = null;
        resolve();
      };
    });
  }
}
