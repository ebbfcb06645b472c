/**
 * The durable feed (issue 15): this node's reader of the QoS 1/2 message stream. One ephemeral
 * pull consumer over `<prefix>.1.>`, read in order; every message another node published is routed
 * through this node's subscription tree.
 *
 * It supervises itself (stream-reader.ts says why the client library's ordered consumer is not
 * enough when a NATS server is killed): the feed starts a new consumer at the stream sequence after
 * the last message it handled — so no message acknowledged by JetStream is skipped — when
 *
 * - a delivery sequence is skipped (messages lost on the way, e.g. on the route of a server that
 *   died while they travelled);
 * - the client reports missed heartbeats, a deleted or missing consumer, or the feed ends;
 * - the stream holds messages past the last one handled and the feed has made no progress for
 *   `STALL_MS` (the consumer lived on a server that died: after the reconnect the client waits on
 *   it forever, with heartbeat monitoring off).
 */

import type { Message } from '@breakwater/broker';
import type { ConsumerMessages } from 'nats';
import type { ClusterContext } from './context.js';
import { decodeEnvelopes, envelopeOrigin } from './envelope.js';
import { inOrder, openReader, type StreamReader, watchConsumerStatus } from './stream-reader.js';

const RESTART_DELAY_MS = 250;
/** No progress for this long while the stream holds more: the consumer is presumed dead. */
const STALL_MS = 3000;
const STALL_CHECK_MS = 1000;

export class DurableFeed {
  readonly #ctx: ClusterContext;
  #reader: StreamReader | null = null;
  #messages: ConsumerMessages | null = null;
  /** Stream sequence of the last message handled (the stream's last sequence at start). */
  #lastSeq = 0;
  /** Delivery sequence of the last message of the current consumer. */
  #lastDelivery = 0;
  #lastProgressAt = Date.now();
  #generation = 0;
  #opening = false;
  #checking = false;
  #watchdog: NodeJS.Timeout | null = null;
  #closed = false;

  constructor(ctx: ClusterContext) {
    this.#ctx = ctx;
  }

  /** Starts at the end of the stream: what is published from now on. */
  async start(): Promise<void> {
    const info = await this.#ctx.jsm.streams.info(this.#ctx.streamName);
    this.#lastSeq = info.state.last_seq;
    await this.#open();
    this.#watchdog = setInterval(() => void this.#checkProgress(), STALL_CHECK_MS);
    this.#watchdog.unref();
  }

  close(): void {
    this.#closed = true;
    if (this.#watchdog !== null) clearInterval(this.#watchdog);
    this.#stopConsumer();
  }

  get consumerName(): string | null {
    return this.#reader?.name ?? null;
  }

  /** Stream sequence of the last message handled (tests, diagnostics). */
  get lastSeq(): number {
    return this.#lastSeq;
  }

  async #open(): Promise<void> {
    const gen = ++this.#generation;
    this.#opening = true;
    try {
      const reader = await openReader(
        this.#ctx,
        { filter: `${this.#ctx.options.prefix}.1.>`, from: { seq: this.#lastSeq + 1 } },
        20,
        () => !this.#closed,
      );
      if (this.#closed || gen !== this.#generation) {
        void reader.close();
        return;
      }
      // Short pulls and heartbeats: a dead consumer is noticed within a few seconds.
      const messages = await reader.consumer.consume({
        max_messages: 4096,
        expires: 2000,
        idle_heartbeat: 1000,
      });
      this.#reader = reader;
      this.#messages = messages;
      this.#lastDelivery = 0;
      this.#lastProgressAt = Date.now();
      void this.#watchStatus(messages, gen);
      void this.#read(messages, gen);
    } finally {
      this.#opening = false;
    }
  }

  async #read(messages: ConsumerMessages, gen: number): Promise<void> {
    const self = this.#ctx.options.nodeId;
    const host = this.#ctx.host();
    try {
      for await (const m of messages) {
        if (gen !== this.#generation) return;
        if (!inOrder(m, this.#lastDelivery)) {
          // A delivery went missing: read again from the first message not handled.
          this.#restart(gen, 'delivery gap');
          return;
        }
        this.#lastDelivery = m.info.deliverySequence;
        this.#lastProgressAt = Date.now();
        if (m.seq <= this.#lastSeq) continue; // a restart may overlap
        this.#lastSeq = m.seq;
        // A batch comes from one node: routed here when it was published if that was us.
        if (envelopeOrigin(m.data) === self) continue;
        let msgs: Message[];
        try {
          msgs = decodeEnvelopes(m.data);
        } catch {
          continue;
        }
        this.#ctx.metrics.received.inc({ kind: 'durable' }, msgs.length);
        for (const msg of msgs) host.routeRemote(msg, null);
      }
    } catch (err) {
      this.#ctx.logger.warn({ err }, 'durable feed failed');
    }
    this.#restart(gen, 'ended');
  }

  #watchStatus(messages: ConsumerMessages, gen: number): Promise<void> {
    return watchConsumerStatus(
      messages,
      () => gen === this.#generation,
      (reason) => this.#restart(gen, reason),
    );
  }

  /**
   * The watchdog: no message handled for `STALL_MS` is fine when the stream has nothing newer; when
   * it has, the consumer is stuck (typically on a server that is gone) and is replaced.
   */
  async #checkProgress(): Promise<void> {
    // Between a restart and the next consumer there is nothing to judge.
    if (this.#closed || this.#opening || this.#checking || this.#messages === null) return;
    if (Date.now() - this.#lastProgressAt < STALL_MS) return;
    const gen = this.#generation;
    this.#checking = true;
    try {
      const info = await this.#ctx.jsm.streams.info(this.#ctx.streamName);
      if (
        gen === this.#generation &&
        info.state.last_seq > this.#lastSeq &&
        Date.now() - this.#lastProgressAt >= STALL_MS
      ) {
        this.#restart(gen, 'stalled');
      }
    } catch {
      // JetStream not answering: nothing to compare with; the next check tries again.
    } finally {
      this.#checking = false;
    }
  }

  #stopConsumer(): void {
    this.#messages?.stop();
    this.#messages = null;
    void this.#reader?.close();
    this.#reader = null;
  }

  #restart(gen: number, why: string): void {
    if (this.#closed || gen !== this.#generation) return;
    this.#generation++; // the old reader and watcher stand down
    this.#stopConsumer();
    this.#ctx.logger.warn({ why, afterSeq: this.#lastSeq }, 'restarting the durable feed');
    const retry = () => {
      if (this.#closed) return;
      this.#open().catch((err: unknown) => {
        this.#ctx.logger.warn({ err }, 'durable feed restart failed; retrying');
        setTimeout(retry, RESTART_DELAY_MS).unref();
      });
    };
    setTimeout(retry, RESTART_DELAY_MS).unref();
  }
}
