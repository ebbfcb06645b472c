/**
 * Flapping detection: counts connects per key (client id or source address) over a sliding
 * window and bans a key that exceeds the limit (DESIGN.md §3: > 15 connects of one client id in
 * 1 min → refused for 5 min).
 *
 * The window is kept as SLOTS sub-window counters per key, so memory per key is fixed whatever
 * the limit. The count covers the current slot plus the SLOTS-1 before it, i.e. between 5/6 of
 * the window and all of it: the error is on the lenient side on purpose — a burst 61 s ago must
 * never earn a 5-minute ban (a two-window weighted estimate would do exactly that).
 *
 * Memory is bounded: at most `maxTracked` keys. The map's insertion order is kept as recency
 * order (an entry is re-inserted whenever it is seen), so eviction takes the least recently seen
 * key in O(1), and each call also drops up to two idle entries from the old end (an amortised
 * sweep, no timer). A storm of random client ids therefore cannot grow the map past the bound; the
 * price is that under such a storm a banned id seen less recently than `maxTracked` others may be
 * forgotten early — it is then simply counted again.
 */
const SLOTS = 6;
const SWEEP_PER_CALL = 2;

interface FlapEntry {
  /** Start of the current slot. */
  slotStart: number;
  idx: number;
  total: number;
  counts: Uint32Array;
  bannedUntil: number;
  lastSeen: number;
}

export interface FlapLimits {
  maxConnects: number;
  windowMs: number;
  banMs: number;
  maxTracked: number;
}

export class FlapTracker {
  readonly #limits: FlapLimits;
  readonly #slotMs: number;
  readonly #entries = new Map<string, FlapEntry>();

  constructor(limits: FlapLimits) {
    this.#limits = limits;
    this.#slotMs = Math.max(1, Math.ceil(limits.windowMs / SLOTS));
  }

  get enabled(): boolean {
    return this.#limits.maxConnects > 0;
  }

  /** Keys currently tracked (the memory bound under test). */
  get size(): number {
    return this.#entries.size;
  }

  /**
   * Counts one connect of `key` at `now`. Returns 0 when allowed, otherwise the milliseconds left
   * of the key's ban. Attempts during a ban keep the entry fresh but do not extend the ban: the
   * documented "refused for 5 min" stays a promise a device can plan around.
   */
  record(key: string, now: number): number {
    if (this.#limits.maxConnects <= 0) return 0;
    this.#sweep(now);
    let e = this.#entries.get(key);
    if (e) {
      this.#entries.delete(key);
    } else {
      if (this.#entries.size >= this.#limits.maxTracked) this.#evictOldest();
      e = { slotStart: now, idx: 0, total: 0, counts: new Uint32Array(SLOTS), bannedUntil: 0, lastSeen: now };
    }
    this.#entries.set(key, e);
    e.lastSeen = now;
    if (e.bannedUntil > now) return e.bannedUntil - now;
    this.#advance(e, now);
    e.counts[e.idx] = (e.counts[e.idx] ?? 0) + 1;
    e.total += 1;
    if (e.total > this.#limits.maxConnects) {
      e.bannedUntil = now + this.#limits.banMs;
      e.counts.fill(0);
      e.total = 0;
      return this.#limits.banMs;
    }
    return 0;
  }

  /** Ban time left for `key` without counting a connect (for diagnostics and tests). */
  bannedFor(key: string, now: number): number {
    const e = this.#entries.get(key);
    return e && e.bannedUntil > now ? e.bannedUntil - now : 0;
  }

  clear(): void {
    this.#entries.clear();
  }

  #advance(e: FlapEntry, now: number): void {
    const steps = Math.floor((now - e.slotStart) / this.#slotMs);
    if (steps <= 0) return;
    if (steps >= SLOTS) {
      e.counts.fill(0);
      e.total = 0;
    } else {
      for (let i = 0; i < steps; i++) {
        e.idx = (e.idx + 1) % SLOTS;
        e.total -= e.counts[e.idx] ?? 0;
        e.counts[e.idx] = 0;
      }
    }
    e.slotStart += steps * this.#slotMs;
  }

  #evictOldest(): void {
    const oldest = this.#entries.keys().next();
    if (!oldest.done) this.#entries.delete(oldest.value);
  }

  // Entries at the old end are the least recently seen; drop them once their window has passed
  // and they are not banned. Bounded work per call keeps every decision O(1).
  #sweep(now: number): void {
    const it = this.#entries.entries();
    for (let i = 0; i < SWEEP_PER_CALL; i++) {
      const first = it.next();
      if (first.done) return;
      const [key, e] = first.value;
      if (e.bannedUntil > now || now - e.lastSeen < this.#limits.windowMs) return;
      this.#entries.delete(key);
    }
  }
}
