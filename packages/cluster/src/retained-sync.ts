/**
 * Retained messages cluster-wide (issue 15): the `<prefix>_retained` KV bucket is the truth, keyed
 * per topic level (`a/b/c` → `a.b.c`, subjects.ts), and every node keeps the whole set in its local
 * index by watching the bucket — a SUBSCRIBE reads its own memory, never NATS. A local change is
 * applied at once and written to the bucket (the PUBACK of a retained QoS 1 PUBLISH waits for the
 * write); the watch brings every node's changes, ours included, in revision order, so all nodes
 * converge on the last write.
 */
import type { RetainedRecord } from '@breakwater/broker';
import type { KV } from 'nats';
import type { ClusterContext } from './context.js';
import { decodeEnvelope, encodeEnvelope } from './envelope.js';
import { type KvWatchEntry, KvWatcher } from './kv-watcher.js';
import { decodeTopic, encodeTopic } from './subjects.js';

export class RetainedSync {
  readonly #ctx: ClusterContext;
  readonly #kv: KV;
  readonly #watch: KvWatcher;

  constructor(ctx: ClusterContext, kv: KV) {
    this.#ctx = ctx;
    this.#kv = kv;
    this.#watch = new KvWatcher(
      ctx,
      { bucket: `${ctx.options.prefix}_retained`, include: 'last-value', what: 'retained' },
      (e) => this.#apply(e),
    );
  }

  /** Resolves once every retained message in the bucket is in the local index. */
  start(): Promise<void> {
    return this.#watch.start();
  }

  close(): Promise<void> {
    return this.#watch.stop();
  }

  /** The consumer the retained watch reads with now (tests, diagnostics). */
  get watchConsumer(): string | null {
    return this.#watch.consumerName;
  }

  set(rec: RetainedRecord): void {
    const data = encodeEnvelope({
      topic: rec.topic,
      payload: rec.payload,
      qos: rec.qos,
      retain: true,
      properties: rec.properties,
      expiresAt: rec.expiresAt,
      publisherId: rec.publisherId,
      encoded: null,
    });
    this.#ctx.track(this.#kv.put(encodeTopic(rec.topic), data));
  }

  delete(topic: string): void {
    this.#ctx.track(this.#kv.delete(encodeTopic(topic)));
  }

  #apply(e: KvWatchEntry): void {
    const host = this.#ctx.host();
    if (e.operation !== 'PUT') {
      host.applyRetained(decodeTopic(e.key), null);
      return;
    }
    try {
      const m = decodeEnvelope(e.value);
      host.applyRetained(m.topic, {
        topic: m.topic,
        // The watch hands us a view of its receive buffer: keep our own copy.
        payload: Buffer.from(m.payload),
        qos: m.qos,
        properties: m.properties,
        expiresAt: m.expiresAt,
        publisherId: m.publisherId,
      });
    } catch (err) {
      this.#ctx.logger.warn({ err, key: e.key }, 'undecodable retained entry ignored');
    }
  }
}
