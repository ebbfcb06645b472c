/**
 * Flapping detection (issue 11, DESIGN.md §3): counts *short sessions* per key (client id or source
 * address) over a sliding window and bans a key that exceeds the limit. What counts is decided by
 * the caller (AdmissionGate.onSessionEnded): a session the broker accepted (CONNACK 0x00) that
 * ended within `shortSessionMs` without a normal DISCONNECT — as EMQX counts disconnections, not
 * attempts. A refused attempt never reaches `record`, so the broker's own pacing (rate, backend
 * busy, tarpit) can never turn into a ban, and keys that never flapped cost no memory.
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
  /** Short sessions per window before the key is banned; 0 = off. */
  maxShortSessions: number;
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
    return this.#limits.maxShortSessions > 0;
  }

  /** Keys currently tracked (the memory bound under test). */
  get size(): number {
    return this.#entries.size;
  }

  /**
   * Counts one short session of `key` at `now`. Returns 0 while under the limit; otherwise the
   * milliseconds left of the key's ban (> 0 exactly when this call started it or one is running).
   * Never extends a running ban: "refused for N minutes" stays a promise a device can plan around.
   */
  record(key: string, now: number): number {
    if (this.#limits.maxShortSessions <= 0) return 0;
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
    if (e.total > this.#limits.maxShortSessions) {
      e.bannedUntil = now + this.#limits.banMs;
      e.counts.fill(0);
      e.total = 0;
      return this.#limits.banMs;
    }
    return 0;
  }

  /** Ban time left for `key` (0: not banned). Checked at every CONNECT; counts nothing. */
  bannedFor(key: string, now: number): number {
    if (this.#limits.maxShortSessions <= 0) return 0;
    const e = this.#entries.get(key);
    return e !== undefined && e.bannedUntil > now ? e.bannedUntil - now : 0;
  }

  /** Keys banned now (admin API, console): at most `maxTracked` entries are scanned. */
  bans(now: number): { key: string; remainingMs: number }[] {
    const out: { key: string; remainingMs: number }[] = [];
    for (const [key, e] of this.#entries)
      if (e.bannedUntil > now) out.push({ key, remainingMs: e.bannedUntil - now });
    return out;
  }

  /** Lifts a ban (operator action); the key's count starts again from zero. */
  lift(key: string): boolean {
    const e = this.#entries.get(key);
    if (e === undefined || e.bannedUntil === 0) return false;
    this.#entries.delete(key);
    return true;
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
