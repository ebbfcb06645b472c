/**
 * A supervised watch of a JetStream KV bucket (issue 15): what the node heartbeats (liveness.ts),
 * session ownership (ownership.ts), retained messages (retained-sync.ts) and known-good
 * credentials (known-good-sync.ts) are kept in sync with, instead of nats.js's `kv.watch()`.
 *
 * `kv.watch()` is an ordered consumer, and after a nats-server is killed one can stop delivering
 * without an error (seen in a 3-node test: a node heard no other node's heartbeat for > 6 s). The
 * reasons are the durable feed's (stream-reader.ts): the consumer lived on the dead server,
 * nats.js retries it under the same name, or waits forever on `info()` of it after a reconnect
 * with heartbeat monitoring off. So the watch reads the bucket's stream itself, as the durable
 * feed does: one ephemeral pull consumer at a time (`openReader`: a new name per attempt, bounded
 * by the request timeout), checked, and replaced when in doubt.
 *
 * A bucket is the stream `KV_<bucket>`, key `k` the subject `$KV.<bucket>.k`; a delete or purge is
 * a message with the header `KV-Operation: DEL|PURGE`, and the revision is the stream sequence.
 *
 * - `last-value`: the last entry of each key (deliver policy last-per-subject), then every update;
 *   `start()` resolves once the entries the bucket held when the watch started were delivered.
 *   `updates-only`: what is written after `start()` (from the stream's last sequence + 1).
 * - The watcher remembers the revision of the last entry it delivered. Every consumer after the
 *   first starts at that revision + 1 (during the initial load: last-per-subject again, skipping
 *   what was delivered), so its user sees each revision once, in order: no gap, no duplicate.
 * - The consumer is replaced when a delivery sequence is skipped, the client reports missed idle
 *   heartbeats or a deleted or missing consumer, the message iterator ends, the NATS connection
 *   reconnects (the consumer may have lived on the server that was lost: nats.js then waits on
 *   it), or the stream holds revisions past the last one delivered and none arrived for
 *   `STALL_MS`.
 */
import type { ConsumerMessages, JsMsg, NatsConnection, Status } from 'nats';
import { Events } from 'nats';
import type { Logger } from 'pino';
import {
  inOrder,
  openReader,
  type ReaderContext,
  type ReadFrom,
  type StreamReader,
  watchConsumerStatus,
} from './stream-reader.js';

export type KvOperation = 'PUT' | 'DEL' | 'PURGE';

/** One entry of the bucket, as `kv.watch()` gave it (the fields the cluster uses). */
export interface KvWatchEntry {
  bucket: string;
  key: string;
  /** A view of the receive buffer: copy what is kept. */
  value: Uint8Array;
  /** The stream sequence of the write: unique and increasing across the bucket. */
  revision: number;
  /** The server's timestamp of the write. */
  created: Date;
  operation: KvOperation;
}

export interface KvWatchOptions {
  bucket: string;
  /** `last-value`: the current entries, then updates; `updates-only`: updates from now on. */
  include: 'last-value' | 'updates-only';
  /** Do not hand DEL and PURGE entries to the user (they still count as delivered). */
  ignoreDeletes?: boolean;
  /** Names the watch in logs. */
  what: string;
}

export interface KvWatcherContext extends ReaderContext {
  readonly nc: NatsConnection;
  readonly logger: Logger;
}

const RESTART_DELAY_MS = 250;
/** No entry for this long while the stream holds newer revisions: the consumer is presumed dead. */
const STALL_MS = 3000;
const STALL_CHECK_MS = 1000;
/** Idle heartbeats of the consumer; two missed replace it. */
const IDLE_HEARTBEAT_MS = 1000;

export class KvWatcherError extends Error {
  readonly code = 'BW_ERR_CLUSTER_KV_WATCH';
}

export class KvWatcher {
  readonly #ctx: KvWatcherContext;
  readonly #opts: KvWatchOptions;
  readonly #onEntry: (e: KvWatchEntry) => void;
  readonly #stream: string;
  readonly #prefix: string;
  #reader: StreamReader | null = null;
  #messages: ConsumerMessages | null = null;
  /** nats.js's status iterator (typed as a plain AsyncIterable; it has `stop()`). */
  #status: (AsyncIterable<Status> & { stop?: () => void }) | null = null;
  /** Revision (stream sequence) of the last entry delivered (or skipped as a delete). */
  #lastSeq = 0;
  /** Delivery sequence of the last message of the current consumer. */
  #lastDelivery = 0;
  #lastProgressAt = Date.now();
  /** When the watchdog first saw the stream ahead of us (0: it was not). */
  #behindSince = 0;
  #initialized = false;
  /** The initial load: messages the current consumer had when created, and how many came. */
  #initialTotal = 0;
  #initialSeen = 0;
  #ready: { resolve: () => void; reject: (err: Error) => void } | null = null;
  #generation = 0;
  #opening: Promise<void> | null = null;
  #reading: Promise<void> | null = null;
  #checking = false;
  #watchdog: NodeJS.Timeout | null = null;
  #retryTimer: NodeJS.Timeout | null = null;
  #restarts = 0;
  #closed = false;

  constructor(ctx: KvWatcherContext, opts: KvWatchOptions, onEntry: (e: KvWatchEntry) => void) {
    this.#ctx = ctx;
    this.#opts = opts;
    this.#onEntry = onEntry;
    this.#stream = `KV_${opts.bucket}`;
    this.#prefix = `$KV.${opts.bucket}.`;
  }

  /** The consumer read now, or null between two (tests, diagnostics). */
  get consumerName(): string | null {
    return this.#reader?.name ?? null;
  }

  /** Revision of the last entry delivered. */
  get lastRevision(): number {
    return this.#lastSeq;
  }

  /** Consumers replaced so far (tests, diagnostics). */
  get restarts(): number {
    return this.#restarts;
  }

  get initialized(): boolean {
    return this.#initialized;
  }

  /**
   * Opens the first consumer; with `last-value`, resolves once the bucket's entries at that time
   * were delivered. Throws when no consumer can be created (JetStream unreachable) or the watcher
   * is stopped first.
   */
  async start(): Promise<void> {
    if (this.#opts.include === 'updates-only') {
      const info = await this.#ctx.jsm.streams.info(this.#stream);
      this.#lastSeq = info.state.last_seq;
      this.#initialized = true;
    }
    const ready = this.#initialized
      ? null
      : new Promise<void>((resolve, reject) => {
          this.#ready = { resolve, reject };
        });
    // Rejected by stop() maybe before it is awaited below: not an unhandled rejection.
    ready?.catch(() => {});
    try {
      await this.#open();
    } catch (err) {
      this.#ready = null;
      throw err;
    }
    if (this.#closed) throw new KvWatcherError(`${this.#opts.what} watch stopped while starting`);
    this.#watchdog = setInterval(() => void this.#checkProgress(), STALL_CHECK_MS);
    this.#watchdog.unref();
    void this.#watchConnection();
    if (ready !== null) await ready;
  }

  /**
   * Stops reading: no entry is delivered after it resolves, the consumer is deleted (best effort:
   * one on a dead server cannot be), and no timer or request of the watcher is left.
   */
  async stop(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#generation++;
    if (this.#watchdog !== null) clearInterval(this.#watchdog);
    if (this.#retryTimer !== null) clearTimeout(this.#retryTimer);
    this.#status?.stop?.();
    this.#ready?.reject(new KvWatcherError(`${this.#opts.what} watch stopped before its initial load`));
    this.#ready = null;
    const reader = this.#reader;
    this.#stopConsumer(false);
    // An open in progress gives up after its current attempt (bounded by the request timeout).
    await this.#opening?.catch(() => {});
    await this.#reading;
    await reader?.close();
  }

  #open(): Promise<void> {
    const p = this.#doOpen().finally(() => {
      if (this.#opening === p) this.#opening = null;
    });
    this.#opening = p;
    return p;
  }

  async #doOpen(): Promise<void> {
    const gen = ++this.#generation;
    // The initial load resumes as it started (last per key; what was delivered is skipped); after
    // it, every update from the one after the last delivered.
    const from: ReadFrom = this.#initialized ? { seq: this.#lastSeq + 1 } : 'last-per-subject';
    const reader = await openReader(
      this.#ctx,
      { stream: this.#stream, filter: `${this.#prefix}>`, from },
      20,
      () => !this.#closed,
    );
    if (this.#closed || gen !== this.#generation) {
      await reader.close();
      return;
    }
    let messages: ConsumerMessages;
    try {
      // Short pulls and heartbeats: a dead consumer is noticed within a few seconds.
      messages = await reader.consumer.consume({
        max_messages: 1024,
        expires: 2000,
        idle_heartbeat: IDLE_HEARTBEAT_MS,
      });
    } catch (err) {
      await reader.close();
      throw err;
    }
    if (this.#closed || gen !== this.#generation) {
      // Replaced (a reconnect) or stopped while the pull started.
      messages.stop();
      await reader.close();
      return;
    }
    this.#reader = reader;
    this.#messages = messages;
    this.#lastDelivery = 0;
    this.#lastProgressAt = Date.now();
    this.#behindSince = 0;
    this.#initialTotal = reader.pendingAtStart;
    this.#initialSeen = 0;
    if (!this.#initialized && reader.pendingAtStart === 0) this.#markInitialized();
    void this.#watchStatus(messages, gen);
    this.#reading = this.#read(messages, gen);
  }

  async #read(messages: ConsumerMessages, gen: number): Promise<void> {
    try {
      for await (const m of messages) {
        if (gen !== this.#generation) return;
        if (!inOrder(m, this.#lastDelivery)) {
          // A delivery went missing: read again from the revision after the last delivered.
          this.#restart(gen, 'delivery gap');
          return;
        }
        this.#lastDelivery = m.info.deliverySequence;
        this.#lastProgressAt = Date.now();
        this.#behindSince = 0;
        if (!this.#initialized) this.#initialSeen++;
        if (m.seq > this.#lastSeq) {
          // A replaced consumer overlaps what was delivered: only newer revisions go through.
          this.#lastSeq = m.seq;
          this.#deliver(m);
        }
        if (!this.#initialized && (this.#initialSeen >= this.#initialTotal || m.info.pending === 0)) {
          this.#markInitialized();
        }
      }
    } catch (err) {
      if (gen === this.#generation) this.#ctx.logger.warn({ err, watch: this.#opts.what }, 'KV watch failed');
    }
    this.#restart(gen, 'ended');
  }

  #deliver(m: JsMsg): void {
    const op = m.headers?.get('KV-Operation');
    const operation: KvOperation = op === 'DEL' || op === 'PURGE' ? op : 'PUT';
    if (operation !== 'PUT' && this.#opts.ignoreDeletes === true) return;
    const e: KvWatchEntry = {
      bucket: this.#opts.bucket,
      key: m.subject.slice(this.#prefix.length),
      value: m.data,
      revision: m.seq,
      created: new Date(Math.floor(m.info.timestampNanos / 1e6)),
      operation,
    };
    try {
      this.#onEntry(e);
    } catch (err) {
      // The user's failure must not end the watch (it would skip the entry on a restart anyway).
      this.#ctx.logger.error({ err, watch: this.#opts.what, key: e.key }, 'KV watch entry failed');
    }
  }

  #markInitialized(): void {
    this.#initialized = true;
    this.#ready?.resolve();
    this.#ready = null;
  }

  #watchStatus(messages: ConsumerMessages, gen: number): Promise<void> {
    return watchConsumerStatus(
      messages,
      () => gen === this.#generation,
      (reason) => this.#restart(gen, reason),
    );
  }

  /**
   * After a reconnect the consumer may have lived on the server that was lost; nats.js would ask
   * it for `info()` until it answers, which a killed server never does. A new one costs one
   * request: replace it at once.
   */
  async #watchConnection(): Promise<void> {
    const status: AsyncIterable<Status> & { stop?: () => void } = this.#ctx.nc.status();
    this.#status = status;
    if (this.#closed) status.stop?.();
    try {
      for await (const s of status) {
        if (this.#closed) return;
        if (s.type === Events.Reconnect) this.#restart(this.#generation, 'reconnected');
      }
    } catch {
      // Ends with the connection.
    }
  }

  /**
   * The watchdog: no entry for `STALL_MS` is fine when the stream has nothing newer; when it has
   * (for that long), the consumer is stuck — typically on a server that is gone — and is replaced.
   */
  async #checkProgress(): Promise<void> {
    // Between a restart and the next consumer there is nothing to judge.
    if (this.#closed || this.#opening !== null || this.#checking || this.#messages === null) return;
    const gen = this.#generation;
    this.#checking = true;
    try {
      const info = await this.#ctx.jsm.streams.info(this.#stream);
      if (gen !== this.#generation || this.#closed) return;
      if (info.state.last_seq <= this.#lastSeq) {
        this.#behindSince = 0;
        return;
      }
      const now = Date.now();
      if (this.#behindSince === 0) this.#behindSince = now;
      if (now - Math.max(this.#behindSince, this.#lastProgressAt) >= STALL_MS) this.#restart(gen, 'stalled');
    } catch {
      // JetStream not answering: nothing to compare with; the next check tries again.
    } finally {
      this.#checking = false;
    }
  }

  #stopConsumer(deleteIt = true): void {
    this.#messages?.stop();
    this.#messages = null;
    if (deleteIt) void this.#reader?.close();
    this.#reader = null;
  }

  #restart(gen: number, why: string): void {
    if (this.#closed || gen !== this.#generation) return;
    this.#generation++; // the old reader and watchers stand down
    this.#restarts++;
    this.#stopConsumer();
    this.#ctx.logger.warn(
      { why, watch: this.#opts.what, afterRevision: this.#lastSeq },
      'replacing the KV watch consumer',
    );
    this.#scheduleOpen();
  }

  #scheduleOpen(): void {
    if (this.#retryTimer !== null) clearTimeout(this.#retryTimer);
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = null;
      if (this.#closed) return;
      this.#open().catch((err: unknown) => {
        if (this.#closed) return;
        this.#ctx.logger.warn({ err, watch: this.#opts.what }, 'KV watch restart failed; retrying');
        this.#scheduleOpen();
      });
    }, RESTART_DELAY_MS);
    this.#retryTimer.unref();
  }
}
