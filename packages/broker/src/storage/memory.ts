/**
 * In-memory storage: plain maps, nothing survives the process. Used by tests and by brokers that
 * run without a data dir. Every mutation is "durable" as soon as it is recorded, so flush() only
 * waits for the next microtask (callers still get the same asynchronous contract as SQLite).
 */
import { BreakwaterError } from '../errors.js';
import { copyOutbox, copyRetained, copySession, copySubscription, copyWill } from './copy.js';
import type {
  BrokerStorage,
  OutboxRecord,
  OutboxState,
  RetainedRecord,
  SessionRecord,
  SubscriptionRecord,
  WillRecord,
} from './types.js';

type SessionRow = Omit<SessionRecord, 'subscriptions' | 'will'>;

export class MemoryStorage implements BrokerStorage {
  readonly #sessions = new Map<string, SessionRow>();
  /** clientId -> filter -> subscription; kept apart from sessions so call order does not matter. */
  readonly #subscriptions = new Map<string, Map<string, SubscriptionRecord>>();
  /** clientId -> seq -> record. Insertion order is not seq order in general; loadOutbox sorts. */
  readonly #outbox = new Map<string, Map<number, OutboxRecord>>();
  readonly #inboundQos2 = new Map<string, Set<number>>();
  readonly #retained = new Map<string, RetainedRecord>();
  readonly #wills = new Map<string, WillRecord>();
  #closed = false;

  async open(): Promise<void> {
    this.#assertOpen();
  }

  loadSessions(): SessionRecord[] {
    this.#assertOpen();
    const out: SessionRecord[] = [];
    for (const row of this.#sessions.values()) {
      const subs = this.#subscriptions.get(row.clientId);
      const will = this.#wills.get(row.clientId);
      const rec: SessionRecord = {
        ...copySession(row),
        subscriptions: subs === undefined ? [] : Array.from(subs.values(), copySubscription),
      };
      if (will !== undefined) rec.will = copyWill(will); // absent without one, as in SQLite
      out.push(rec);
    }
    return out;
  }

  loadOutbox(clientId: string): OutboxRecord[] {
    this.#assertOpen();
    const queue = this.#outbox.get(clientId);
    if (queue === undefined) return [];
    return Array.from(queue.values(), copyOutbox).sort(bySeq);
  }

  loadInboundQos2(clientId: string): number[] {
    this.#assertOpen();
    const ids = this.#inboundQos2.get(clientId);
    return ids === undefined ? [] : Array.from(ids).sort(ascending);
  }

  loadRetained(): RetainedRecord[] {
    this.#assertOpen();
    return Array.from(this.#retained.values(), copyRetained);
  }

  putSession(session: SessionRow): void {
    this.#assertOpen();
    this.#sessions.set(session.clientId, copySession(session));
  }

  deleteSession(clientId: string): void {
    this.#assertOpen();
    this.#sessions.delete(clientId);
    this.#subscriptions.delete(clientId);
    this.#outbox.delete(clientId);
    this.#inboundQos2.delete(clientId);
    this.#wills.delete(clientId);
  }

  putWill(clientId: string, will: WillRecord): void {
    this.#assertOpen();
    this.#wills.set(clientId, copyWill(will));
  }

  deleteWill(clientId: string): void {
    this.#assertOpen();
    this.#wills.delete(clientId);
  }

  putSubscription(clientId: string, sub: SubscriptionRecord): void {
    this.#assertOpen();
    let subs = this.#subscriptions.get(clientId);
    if (subs === undefined) {
      subs = new Map();
      this.#subscriptions.set(clientId, subs);
    }
    subs.set(sub.filter, copySubscription(sub));
  }

  deleteSubscription(clientId: string, filter: string): void {
    this.#assertOpen();
    const subs = this.#subscriptions.get(clientId);
    if (subs === undefined) return;
    subs.delete(filter);
    if (subs.size === 0) this.#subscriptions.delete(clientId);
  }

  appendOutbox(clientId: string, record: OutboxRecord): void {
    this.#assertOpen();
    let queue = this.#outbox.get(clientId);
    if (queue === undefined) {
      queue = new Map();
      this.#outbox.set(clientId, queue);
    }
    // Same rule as the SQLite primary key (client_id, seq): a reused seq is an engine bug, and
    // silently replacing a queued message would lose it.
    if (queue.has(record.seq)) {
      throw new BreakwaterError('BW_ERR_STORAGE', `outbox seq ${record.seq} already exists for ${clientId}`);
    }
    queue.set(record.seq, copyOutbox(record));
  }

  updateOutbox(clientId: string, seq: number, packetId: number | null, state: OutboxState): void {
    this.#assertOpen();
    const record = this.#outbox.get(clientId)?.get(seq);
    if (record === undefined) return;
    record.packetId = packetId;
    record.state = state;
  }

  deleteOutbox(clientId: string, seq: number): void {
    this.#assertOpen();
    const queue = this.#outbox.get(clientId);
    if (queue === undefined) return;
    queue.delete(seq);
    if (queue.size === 0) this.#outbox.delete(clientId);
  }

  addInboundQos2(clientId: string, packetId: number): void {
    this.#assertOpen();
    let ids = this.#inboundQos2.get(clientId);
    if (ids === undefined) {
      ids = new Set();
      this.#inboundQos2.set(clientId, ids);
    }
    ids.add(packetId);
  }

  deleteInboundQos2(clientId: string, packetId: number): void {
    this.#assertOpen();
    const ids = this.#inboundQos2.get(clientId);
    if (ids === undefined) return;
    ids.delete(packetId);
    if (ids.size === 0) this.#inboundQos2.delete(clientId);
  }

  putRetained(record: RetainedRecord): void {
    this.#assertOpen();
    this.#retained.set(record.topic, copyRetained(record));
  }

  deleteRetained(topic: string): void {
    this.#assertOpen();
    this.#retained.delete(topic);
  }

  flush(): Promise<void> {
    return Promise.resolve();
  }

  async close(): Promise<void> {
    this.#closed = true;
  }

  #assertOpen(): void {
    if (this.#closed) throw new BreakwaterError('BW_ERR_STORAGE', 'storage is closed');
  }
}

function bySeq(a: OutboxRecord, b: OutboxRecord): number {
  return a.seq - b.seq;
}

function ascending(a: number, b: number): number {
  return a - b;
}
