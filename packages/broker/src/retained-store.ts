/**
 * Retained messages [MQTT-3.3.1-5..7]: the in-memory index subscriptions are matched against, kept
 * in step with storage. Every mutation marks the storage dirty so an acknowledgement that depends
 * on it waits for the next flush (durable-acks.ts).
 */
import type { ClusterSeam } from './cluster-seam.js';
import type { DeliveryContext } from './engine-context.js';
import type { Message } from './session.js';
import type { RetainedRecord } from './storage/types.js';
import { RetainedIndex } from './topics/retained-index.js';

/** What the store needs of the engine: storage, the retained gauge and the dirty flag. */
export type RetainedStoreHost = Pick<DeliveryContext, 'storage' | 'metrics' | 'storageDirty'> & {
  /** The cluster seam (issue 15): retained messages are shared through it; null on one node. */
  readonly cluster: ClusterSeam | null;
};

export class RetainedStore {
  readonly index = new RetainedIndex<RetainedRecord>();
  readonly #host: RetainedStoreHost;

  constructor(host: RetainedStoreHost) {
    this.#host = host;
  }

  get size(): number {
    return this.index.size;
  }

  /** Loads what storage holds, dropping (and deleting) messages that expired while stopped. */
  restore(now: number): void {
    const storage = this.#host.storage;
    for (const r of storage.loadRetained()) {
      if (r.expiresAt !== null && r.expiresAt <= now) {
        storage.deleteRetained(r.topic);
        continue;
      }
      this.index.set(r.topic, r);
    }
    this.#gauge();
  }

  /** Set, or clear with an empty payload, the retained message of `msg.topic`. */
  set(msg: Message): void {
    if (msg.payload.length === 0) {
      this.delete(msg.topic);
      return;
    }
    const rec: RetainedRecord = {
      topic: msg.topic,
      payload: msg.payload,
      qos: msg.qos,
      properties: msg.properties,
      expiresAt: msg.expiresAt,
      publisherId: msg.publisherId,
    };
    this.index.set(msg.topic, rec);
    this.#host.storage.putRetained(rec);
    this.#host.storageDirty = true;
    this.#host.cluster?.retainedSet(rec);
    this.#gauge();
  }

  delete(topic: string): boolean {
    // In a cluster the delete goes out even when this node never saw the message: another node
    // may hold it (its watch brings it back otherwise).
    this.#host.cluster?.retainedDeleted(topic);
    if (!this.index.delete(topic)) return false;
    this.#host.storage.deleteRetained(topic);
    this.#host.storageDirty = true;
    this.#gauge();
    return true;
  }

  /** A change made on another node (cluster watch): the index and storage, nothing forwarded. */
  applyRemote(topic: string, rec: RetainedRecord | null): void {
    if (rec === null) {
      if (this.index.delete(topic)) this.#host.storage.deleteRetained(topic);
    } else {
      this.index.set(topic, rec);
      this.#host.storage.putRetained(rec);
    }
    this.#gauge();
  }

  /** Deletes every retained message `clientId` published (revocation); returns how many. */
  deletePublishedBy(clientId: string): number {
    const topics: string[] = [];
    for (const [topic, rec] of this.index.entries()) if (rec.publisherId === clientId) topics.push(topic);
    for (const topic of topics) this.delete(topic);
    return topics.length;
  }

  #gauge(): void {
    this.#host.metrics.retained.set(this.index.size);
  }
}
