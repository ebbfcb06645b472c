/**
 * One series' last N seconds in fixed memory: two Float64Arrays indexed by `second % capacity`.
 * A slot holds the second it was written for, so a slot left over from a previous lap (a gap in
 * sampling) is recognised as stale instead of being read as data.
 */
export class SeriesRing {
  readonly capacity: number;
  readonly #seconds: Float64Array;
  readonly #values: Float64Array;
  #latest = Number.NEGATIVE_INFINITY;

  constructor(capacitySec: number) {
    if (!Number.isInteger(capacitySec) || capacitySec < 1) throw new RangeError('capacity must be >= 1');
    this.capacity = capacitySec;
    this.#seconds = new Float64Array(capacitySec).fill(Number.NaN);
    this.#values = new Float64Array(capacitySec);
  }

  /** Records `value` for the second containing `atMs` (a later write to the same second wins). */
  record(atMs: number, value: number): void {
    const second = Math.floor(atMs / 1000);
    const slot = second % this.capacity;
    this.#seconds[slot] = second;
    this.#values[slot] = value;
    if (second > this.#latest) this.#latest = second;
  }

  /** Epoch ms of the newest sample, or null when empty. */
  get latestAt(): number | null {
    return Number.isFinite(this.#latest) ? this.#latest * 1000 : null;
  }

  /** The value recorded for the second containing `atMs`, or undefined. */
  at(atMs: number): number | undefined {
    const second = Math.floor(atMs / 1000);
    const slot = second % this.capacity;
    return this.#seconds[slot] === second ? this.#values[slot] : undefined;
  }

  /** Samples with `fromMs <= t <= toMs`, oldest first, as [epoch ms, value] (at most `capacity`). */
  range(fromMs: number, toMs: number): Array<[number, number]> {
    const out: Array<[number, number]> = [];
    if (!Number.isFinite(this.#latest)) return out;
    const last = Math.min(Math.floor(toMs / 1000), this.#latest);
    const first = Math.max(Math.ceil(fromMs / 1000), last - this.capacity + 1);
    for (let s = first; s <= last; s++) {
      const slot = s % this.capacity;
      if (this.#seconds[slot] === s) out.push([s * 1000, this.#values[slot]!]);
    }
    return out;
  }
}
