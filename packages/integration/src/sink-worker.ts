/**
 * One sink's delivery loop: read a batch from the durable buffer, deliver it, remove it (and
 * dead-letter what the sink rejected) — one batch in flight per sink, so messages reach a sink in
 * the order the broker routed them (except those retried after a rejection split).
 *
 * - **Bounded rate, always**: a token bucket of `maxPerSec` messages (capacity one batch) gates
 *   every read. After an outage the backlog drains at that rate, never faster, so a sink that just
 *   came back is not stormed by ten minutes of telemetry at once.
 * - **Retry**: when the sink is unavailable the batch stays buffered; the next attempt waits
 *   `min(maxMs, initialMs · 2^(n-1))` after the n-th consecutive failure, with equal jitter (half
 *   fixed, half random) so many brokers' retries spread out but never come back at once.
 * - **Auto-resume**: the retry *is* the health probe: the first batch that goes through turns the
 *   sink healthy and the drain goes on by itself. No operator action is ever needed after an outage.
 * - **Pause**: an operator may pause a sink (persisted); its buffer keeps filling, nothing is sent.
 */
import type { Logger } from 'pino';
import type { BufferStore, NewDeadLetter } from './buffer/store.js';
import { errorCode, errorText } from './errors.js';
import type { IntegrationMetrics } from './metrics.js';
import type { SinkSpec } from './sinks/create-sink.js';
import type { BufferedMessage, Sink } from './types.js';

export type SinkState = 'healthy' | 'failing' | 'paused';

export interface SinkStatus {
  name: string;
  type: string;
  state: SinkState;
  paused: { reason: string | null; at: number } | null;
  queued: number;
  queuedBytes: number;
  oldestAgeSec: number | null;
  delivered: number;
  failedAttempts: number;
  consecutiveFailures: number;
  deadLettered: number;
  dropped: number;
  lastError: { code: string; message: string; at: number } | null;
  lastDeliveryAt: number | null;
  nextRetryAt: number | null;
  maxPerSec: number;
  batchSize: number;
  bufferLimits: { maxMessages: number; maxBytes: number; overflow: string };
}

export interface SinkWorkerOptions {
  spec: SinkSpec;
  store: BufferStore;
  metrics: IntegrationMetrics;
  logger: Logger;
  now?: () => number;
  random?: () => number;
}

export class SinkWorker {
  readonly name: string;
  readonly spec: SinkSpec;
  readonly #sink: Sink;
  readonly #store: BufferStore;
  readonly #m: IntegrationMetrics;
  readonly #log: Logger;
  readonly #now: () => number;
  readonly #random: () => number;

  #paused: { reason: string | null; at: number } | null = null;
  #closed = false;
  #wake: (() => void) | null = null;
  #timer: NodeJS.Timeout | null = null;
  #loop: Promise<void> | null = null;
  #tokens: number;
  #tokensAt: number;
  #failures = 0;
  #nextRetryAt: number | null = null;
  #lastError: SinkStatus['lastError'] = null;
  #lastDeliveryAt: number | null = null;
  #delivered = 0;
  #failedAttempts = 0;
  #deadLettered = 0;
  #dropped = 0;
  #inFlight: Promise<void> | null = null;

  constructor(o: SinkWorkerOptions) {
    this.name = o.spec.name;
    this.spec = o.spec;
    this.#sink = o.spec.create();
    this.#store = o.store;
    this.#m = o.metrics;
    this.#log = o.logger.child({ sink: this.name });
    this.#now = o.now ?? Date.now;
    this.#random = o.random ?? Math.random;
    this.#tokens = o.spec.config.batchSize;
    this.#tokensAt = this.#now();
    o.store.setLimits(this.name, o.spec.config.buffer);
    this.#m.sinkUp.labels(this.name).set(1);
    this.#m.sinkPaused.labels(this.name).set(0);
  }

  start(paused: { reason: string | null; at: number } | null): void {
    this.#paused = paused;
    this.#m.sinkPaused.labels(this.name).set(paused ? 1 : 0);
    this.#loop = this.#run();
  }

  /** New messages are buffered for this sink. */
  notify(): void {
    const w = this.#wake;
    if (w !== null) {
      this.#wake = null;
      w();
    }
  }

  /** Messages the overflow policy dropped from this sink's buffer. */
  countDropped(n: number): void {
    this.#dropped += n;
    this.#m.dropped.labels(this.name, 'overflow').inc(n);
  }

  pause(reason: string | null, at: number): void {
    this.#paused = { reason, at };
    this.#m.sinkPaused.labels(this.name).set(1);
  }

  resume(): void {
    this.#paused = null;
    this.#m.sinkPaused.labels(this.name).set(0);
    // An operator's resume is also "try now": skip what is left of a retry delay.
    this.#nextRetryAt = null;
    this.#interrupt();
  }

  get paused(): boolean {
    return this.#paused !== null;
  }

  status(): SinkStatus {
    const depth = this.#store.depth(this.name);
    const oldest = depth.messages > 0 ? this.#store.oldest(this.name) : null;
    const c = this.spec.config;
    return {
      name: this.name,
      type: this.spec.type,
      state: this.#paused ? 'paused' : this.#failures > 0 ? 'failing' : 'healthy',
      paused: this.#paused,
      queued: depth.messages,
      queuedBytes: depth.bytes,
      oldestAgeSec: oldest === null ? null : Math.max(0, (this.#now() - oldest) / 1000),
      delivered: this.#delivered,
      failedAttempts: this.#failedAttempts,
      consecutiveFailures: this.#failures,
      deadLettered: this.#deadLettered,
      dropped: this.#dropped,
      lastError: this.#lastError,
      lastDeliveryAt: this.#lastDeliveryAt,
      nextRetryAt: this.#nextRetryAt,
      maxPerSec: c.maxPerSec,
      batchSize: c.batchSize,
      bufferLimits: { ...c.buffer },
    };
  }

  /** Gauges, refreshed by the engine once a second. */
  refreshGauges(): void {
    const depth = this.#store.depth(this.name);
    this.#m.queueMessages.labels(this.name).set(depth.messages);
    this.#m.queueBytes.labels(this.name).set(depth.bytes);
    const oldest = depth.messages > 0 ? this.#store.oldest(this.name) : null;
    this.#m.oldestAge.labels(this.name).set(oldest === null ? 0 : Math.max(0, (this.#now() - oldest) / 1000));
  }

  /** Stops after the batch in flight (which completes or stays buffered), then closes the client. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#interrupt();
    await this.#loop;
    await this.#sink.close().catch((err: unknown) => this.#log.warn({ err }, 'sink close failed'));
  }

  #interrupt(): void {
    if (this.#timer !== null) {
      clearTimeout(this.#timer);
      this.#timer = null;
    }
    this.notify();
  }

  /** Resolves on notify(), interrupt, or after `ms` (null: no timeout). */
  #wait(ms: number | null): Promise<void> {
    return new Promise((resolve) => {
      this.#wake = resolve;
      if (ms !== null) {
        this.#timer = setTimeout(() => {
          this.#timer = null;
          this.#wake = null;
          resolve();
        }, ms);
      }
    });
  }

  async #run(): Promise<void> {
    const c = this.spec.config;
    while (!this.#closed) {
      if (this.#paused !== null) {
        await this.#wait(null);
        continue;
      }
      const now = this.#now();
      if (this.#nextRetryAt !== null && now < this.#nextRetryAt) {
        await this.#wait(this.#nextRetryAt - now);
        continue;
      }
      const depth = this.#store.depth(this.name).messages;
      if (depth === 0) {
        await this.#wait(null);
        continue;
      }
      // Token bucket: wait until a whole batch (or the whole backlog, if smaller) may go.
      const want = Math.min(c.batchSize, depth);
      this.#refill(now);
      if (this.#tokens < want) {
        await this.#wait(Math.ceil(((want - this.#tokens) / c.maxPerSec) * 1000));
        continue;
      }
      let batch: BufferedMessage[];
      try {
        batch = this.#store.read(this.name, 0, want);
      } catch (err) {
        this.#log.error({ err }, 'integration buffer read failed');
        await this.#wait(1_000);
        continue;
      }
      if (batch.length === 0) {
        await this.#wait(null);
        continue;
      }
      this.#tokens -= batch.length;
      this.#inFlight = this.#attempt(batch);
      await this.#inFlight;
      this.#inFlight = null;
    }
  }

  #refill(now: number): void {
    const c = this.spec.config;
    this.#tokens = Math.min(c.batchSize, this.#tokens + ((now - this.#tokensAt) / 1000) * c.maxPerSec);
    this.#tokensAt = now;
  }

  async #attempt(batch: BufferedMessage[]): Promise<void> {
    const end = this.#m.deliveryDuration.labels(this.name).startTimer();
    try {
      const out = await withTimeout(this.#sink.deliver(batch), this.spec.config.timeoutMs * 2, this.name);
      end();
      const at = this.#now();
      const dead: NewDeadLetter[] = out.rejected.map(({ index, error }) => {
        const m = batch[index]!;
        return {
          sink: this.name,
          msgId: m.msgId,
          rule: m.rule,
          topic: m.topic,
          payload: m.payload,
          publisher: m.publisher,
          receivedAt: m.receivedAt,
          failedAt: at,
          reason: 'rejected',
          errorCode: errorCode(error),
          error: errorText(error),
          attempts: this.#failures + 1,
          context: { sinkType: this.spec.type, batchSize: batch.length },
        };
      });
      this.#store.complete(this.name, batch[0]!.seq, batch[batch.length - 1]!.seq, dead);
      const ok = batch.length - dead.length;
      this.#delivered += ok;
      this.#m.delivered.labels(this.name).inc(ok);
      if (dead.length > 0) {
        this.#deadLettered += dead.length;
        this.#m.deadLettered.labels(this.name, 'rejected').inc(dead.length);
        this.#log.warn(
          { count: dead.length, error: dead[0]!.error },
          'sink rejected messages: moved to the dead-letter queue',
        );
      }
      if (this.#failures > 0) {
        this.#log.info(
          { after: this.#failures, queued: this.#store.depth(this.name).messages },
          'sink is back: draining the buffer',
        );
      }
      this.#failures = 0;
      this.#nextRetryAt = null;
      this.#lastDeliveryAt = at;
      this.#m.sinkUp.labels(this.name).set(1);
    } catch (err) {
      end();
      this.#failures++;
      this.#failedAttempts++;
      this.#m.deliveryFailures.labels(this.name).inc();
      this.#m.sinkUp.labels(this.name).set(0);
      const now = this.#now();
      this.#lastError = { code: errorCode(err), message: errorText(err), at: now };
      const delay = retryDelay(this.#failures, this.spec.config.retry, this.#random);
      this.#nextRetryAt = now + delay;
      // Log the first failure and then every tenth: an outage must not flood the log.
      if (this.#failures === 1 || this.#failures % 10 === 0) {
        this.#log.warn(
          {
            err: this.#lastError.message,
            failures: this.#failures,
            retryInMs: delay,
            queued: this.#store.depth(this.name).messages,
          },
          'sink unavailable: messages stay buffered',
        );
      }
    }
  }
}

/** Equal jitter: half of the capped exponential delay, plus a random part of the other half. */
export function retryDelay(
  failures: number,
  r: { initialMs: number; maxMs: number },
  random: () => number,
): number {
  const exp = Math.min(r.maxMs, r.initialMs * 2 ** Math.min(30, failures - 1));
  return Math.round(exp / 2 + random() * (exp / 2));
}

/** A sink call that hangs beyond its own timeout counts as a failure (the batch is retried). */
function withTimeout<T>(p: Promise<T>, ms: number, sink: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${sink}: no answer within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}
