/**
 * NATS JetStream sink (`@nats-io/transport-node` + `@nats-io/jetstream`): every message of a batch
 * is published to JetStream at once and the batch counts as delivered when every publish is
 * acknowledged by the stream. Each publish carries `Nats-Msg-Id: <sink>:<message id>`, so a batch
 * retried after a partial failure is deduplicated by JetStream within the stream's duplicate
 * window (2 min by default) — at-least-once from the buffer, effectively once in the stream.
 *
 * The subject is `subject` with `{topic}` replaced by the MQTT topic, levels joined by `.`; a level
 * that is empty or holds a character subjects forbid (space, `.`, `*`, `>`) is replaced by `_`
 * there. Headers: `bw-topic` (the exact topic), `bw-publisher`, `bw-received-at`.
 *
 * Errors: a payload over the server's max_payload or the stream's max message size is rejected
 * (DLQ); anything else (server down, no stream for the subject, timeouts) is unavailable.
 */
import type { NatsSinkConfig } from '@breakwater/broker';
import { type JetStreamClient, jetstream } from '@nats-io/jetstream';
import { connect, headers, type NatsConnection } from '@nats-io/transport-node';
import { SinkRejectedError, SinkUnavailableError } from '../errors.js';
import { type BufferedMessage, DELIVERED, type DeliveryOutcome, type Sink } from '../types.js';

const TOO_LARGE = /max(imum)?[ _]?(payload|message size)/i;

export class NatsSink implements Sink {
  readonly type = 'nats' as const;
  readonly name: string;
  readonly #config: NatsSinkConfig;
  readonly #subject: (topic: string) => string;
  #nc: NatsConnection | null = null;
  #js: JetStreamClient | null = null;
  #connecting: Promise<JetStreamClient> | null = null;

  constructor(name: string, config: NatsSinkConfig) {
    this.name = name;
    this.#config = config;
    const [before, after] = splitTemplate(config.subject);
    this.#subject = after === null ? () => before : (topic) => before + natsTokens(topic) + after;
  }

  async deliver(batch: readonly BufferedMessage[]): Promise<DeliveryOutcome> {
    const js = await this.#client();
    const results = await Promise.allSettled(
      batch.map((m) => {
        const h = headers();
        h.set('bw-topic', m.topic);
        if (m.publisher !== null) h.set('bw-publisher', m.publisher);
        h.set('bw-received-at', String(m.receivedAt));
        return js.publish(this.#subject(m.topic), m.payload, {
          msgID: `${this.name}:${m.msgId}`,
          headers: h,
          timeout: this.#config.timeoutMs,
        });
      }),
    );
    const rejected: DeliveryOutcome['rejected'] = [];
    let unavailable: unknown = null;
    results.forEach((r, index) => {
      if (r.status === 'fulfilled') return;
      const text = String((r.reason as Error)?.message ?? r.reason);
      if (TOO_LARGE.test(text))
        rejected.push({ index, error: new SinkRejectedError(this.name, text, { cause: r.reason }) });
      else unavailable ??= r.reason;
    });
    if (unavailable !== null) {
      throw new SinkUnavailableError(
        this.name,
        `JetStream publish: ${(unavailable as Error).message ?? String(unavailable)}`,
        {
          cause: unavailable,
        },
      );
    }
    return rejected.length === 0 ? DELIVERED : { rejected };
  }

  /** The JetStream client, connecting on first use and again after the connection closed for good. */
  #client(): Promise<JetStreamClient> {
    if (this.#js !== null && this.#nc !== null && !this.#nc.isClosed()) return Promise.resolve(this.#js);
    this.#connecting ??= (async () => {
      try {
        const c = this.#config;
        const nc = await connect({
          servers: c.servers,
          name: `breakwater-sink-${this.name}`,
          timeout: c.timeoutMs,
          reconnect: true,
          maxReconnectAttempts: -1,
          reconnectTimeWait: 1_000,
          ...(c.token !== undefined ? { token: c.token } : {}),
          ...(c.user !== undefined ? { user: c.user } : {}),
          ...(c.pass !== undefined ? { pass: c.pass } : {}),
        });
        this.#nc = nc;
        this.#js = jetstream(nc, { timeout: c.timeoutMs });
        return this.#js;
      } catch (err) {
        throw new SinkUnavailableError(
          this.name,
          `connect ${this.#config.servers.join(',')}: ${(err as Error).message}`,
          {
            cause: err,
          },
        );
      } finally {
        this.#connecting = null;
      }
    })();
    return this.#connecting;
  }

  async close(): Promise<void> {
    const nc = this.#nc;
    this.#nc = null;
    this.#js = null;
    if (nc !== null && !nc.isClosed()) await nc.close();
  }
}

function splitTemplate(t: string): [string, string | null] {
  const i = t.indexOf('{topic}');
  return i === -1 ? [t, null] : [t.slice(0, i), t.slice(i + '{topic}'.length)];
}

/** MQTT topic → subject tokens: `/` → `.`; empty or forbidden levels → `_`. */
export function natsTokens(topic: string): string {
  return topic
    .split('/')
    .map((level) => (level === '' ? '_' : level.replace(/[\s.*>]/g, '_')))
    .join('.');
}
