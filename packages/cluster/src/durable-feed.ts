/**
 * The durable feed (issue 15): this node's reader of the QoS 1/2 message stream. One ephemeral
 * consumer over `<prefix>.1.>`, read in order; every message another node published is routed
 * through this node's subscription tree.
 *
 * It supervises itself instead of trusting the client library's ordered-consumer recovery: when
 * the server holding the consumer dies, nats.js 2.29 reports missed heartbeats but (against
 * nats-server 2.9) does not always recreate the consumer. So on missed heartbeats, a consumer that
 * is gone, or a feed that ended, the feed starts a new consumer at the stream sequence after the
 * last one it handled — no message acknowledged by JetStream is skipped.
 */
import { type ConsumerMessages, DeliverPolicy } from 'nats';
import type { ClusterContext } from './context.js';
import { decodeEnvelopeWithOrigin } from './envelope.js';

const RESTART_DELAY_MS = 500;

export class DurableFeed {
  readonly #ctx: ClusterContext;
  #messages: ConsumerMessages | null = null;
  /** Stream sequence of the last message handled; 0 before the first. */
  #lastSeq = 0;
  #generation = 0;
  #closed = false;

  constructor(ctx: ClusterContext) {
    this.#ctx = ctx;
  }

  /** Starts at the end of the stream: what is published from now on. */
  async start(): Promise<void> {
    await this.#open();
  }

  close(): void {
    this.#closed = true;
    this.#messages?.stop();
  }

  async #open(): Promise<void> {
    const gen = ++this.#generation;
    const { js, streamName, options } = this.#ctx;
    const consumer = await js.consumers.get(streamName, {
      filterSubjects: `${options.prefix}.1.>`,
      ...(this.#lastSeq === 0
        ? { deliver_policy: DeliverPolicy.New }
        : { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: this.#lastSeq + 1 }),
    });
    // Short pulls and heartbeats: a dead consumer is noticed within a few seconds.
    const messages = await consumer.consume({ max_messages: 4096, expires: 2000, idle_heartbeat: 1000 });
    this.#messages = messages;
    void this.#watchStatus(messages, gen);
    void this.#read(messages, gen);
  }

  async #read(messages: ConsumerMessages, gen: number): Promise<void> {
    const self = this.#ctx.options.nodeId;
    const host = this.#ctx.host();
    try {
      for await (const m of messages) {
        if (gen !== this.#generation) return;
        if (m.seq <= this.#lastSeq) continue; // a restart may overlap
        this.#lastSeq = m.seq;
        let env: ReturnType<typeof decodeEnvelopeWithOrigin>;
        try {
          env = decodeEnvelopeWithOrigin(m.data);
        } catch {
          continue;
        }
        if (env.origin === self) continue; // routed here when it was published
        this.#ctx.metrics.received.inc({ kind: 'durable' });
        host.routeRemote(env.msg, null);
      }
    } catch (err) {
      this.#ctx.logger.warn({ err }, 'durable feed failed');
    }
    this.#restart(gen, 'ended');
  }

  async #watchStatus(messages: ConsumerMessages, gen: number): Promise<void> {
    try {
      for await (const s of await messages.status()) {
        if (gen !== this.#generation) return;
        const t = s.type as string;
        if (
          (t === 'heartbeats_missed' && Number(s.data) >= 2) ||
          t === 'consumer_not_found' ||
          t === 'consumer_deleted' ||
          t === 'no_responders'
        ) {
          this.#restart(gen, t);
          return;
        }
      }
    } catch {
      // The status iterator ends with the messages.
    }
  }

  #restart(gen: number, why: string): void {
    if (this.#closed || gen !== this.#generation) return;
    this.#generation++; // the old reader and watcher stand down
    this.#messages?.stop();
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
