import type { KnownGood, KnownGoodStore } from './known-good-store.js';

export interface NegativeEntry {
  until: number;
  outcome: 'deny' | 'pass';
  reason: string;
  reasonCode?: number;
  backend: string;
}

/** Map with insertion-order LRU eviction (re-inserted on hit), bounded to `max` entries. */
class BoundedMap<V> {
  readonly #map = new Map<string, V>();
  readonly #max: number;

  constructor(max: number) {
    this.#max = max;
  }

  get(key: string): V | undefined {
    const v = this.#map.get(key);
    if (v !== undefined) {
      this.#map.delete(key);
      this.#map.set(key, v);
    }
    return v;
  }

  set(key: string, v: V): void {
    this.#map.delete(key);
    this.#map.set(key, v);
    if (this.#map.size > this.#max) this.#map.delete(this.#map.keys().next().value!);
  }

  delete(key: string): void {
    this.#map.delete(key);
  }

  deleteWhere(pred: (v: V) => boolean): void {
    for (const [k, v] of this.#map) if (pred(v)) this.#map.delete(k);
  }

  clear(): void {
    this.#map.clear();
  }

  get size(): number {
    return this.#map.size;
  }
}

/**
 * Decisions of remote backends, keyed by keyed hash of (listener, backend, client id, username,
 * password). Positive entries live in memory in front of the persisted KnownGoodStore; negative
 * entries (deny, or "no such user" pass) only in memory: after a restart a wrong password costs
 * one query again, which the rate cap bounds.
 */
export class DecisionCache {
  readonly #positive: BoundedMap<KnownGood>;
  readonly #negative: BoundedMap<NegativeEntry>;
  readonly #store: KnownGoodStore | null;

  constructor(maxEntries: number, store: KnownGoodStore | null) {
    this.#positive = new BoundedMap(maxEntries);
    this.#negative = new BoundedMap(maxEntries);
    this.#store = store;
  }

  getPositive(key: string): KnownGood | undefined {
    let e = this.#positive.get(key);
    if (!e && this.#store) {
      e = this.#store.get(key);
      if (e) this.#positive.set(key, e);
    }
    return e;
  }

  setPositive(e: KnownGood): void {
    this.#positive.set(e.key, e);
    this.#negative.delete(e.key);
    this.#store?.put(e);
  }

  deletePositive(key: string): void {
    this.#positive.delete(key);
    this.#store?.delete(key);
  }

  getNegative(key: string, now: number): NegativeEntry | undefined {
    const e = this.#negative.get(key);
    if (e && e.until <= now) {
      this.#negative.delete(key);
      return undefined;
    }
    return e;
  }

  setNegative(key: string, e: NegativeEntry): void {
    this.#negative.set(key, e);
  }

  /** Forgets every decision about one client (revocation). */
  purgeSubject(subject: string): void {
    this.#positive.deleteWhere((e) => e.subject === subject);
    this.#store?.deleteSubject(subject);
  }

  get sizes(): { positive: number; negative: number } {
    return { positive: this.#positive.size, negative: this.#negative.size };
  }
}
