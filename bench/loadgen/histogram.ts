/**
 * A mergeable latency histogram in microseconds: exact below 128 µs, then 64 log-spaced buckets
 * per doubling (~1.1 % resolution). Workers ship sparse [bucket, count] pairs to the parent.
 */
const LINEAR = 128;
const PER_DOUBLING = 64;
const BUCKETS = LINEAR + PER_DOUBLING * 24; // up to ~128 µs * 2^24 ≈ 36 min

function bucketOf(micros: number): number {
  if (micros < LINEAR) return micros < 0 ? 0 : Math.floor(micros);
  const b = LINEAR + Math.floor(Math.log2(micros / LINEAR) * PER_DOUBLING);
  return b >= BUCKETS ? BUCKETS - 1 : b;
}

/** Lower bound of a bucket, in microseconds. */
function bucketValue(bucket: number): number {
  if (bucket < LINEAR) return bucket;
  return LINEAR * 2 ** ((bucket - LINEAR) / PER_DOUBLING);
}

export class Histogram {
  readonly counts = new Float64Array(BUCKETS);
  total = 0;

  record(micros: number): void {
    this.counts[bucketOf(micros)]++;
    this.total++;
  }

  reset(): void {
    this.counts.fill(0);
    this.total = 0;
  }

  toSparse(): [number, number][] {
    const out: [number, number][] = [];
    for (let i = 0; i < BUCKETS; i++) if (this.counts[i] !== 0) out.push([i, this.counts[i] as number]);
    return out;
  }

  addSparse(pairs: [number, number][]): void {
    for (const [i, c] of pairs) {
      this.counts[i] = (this.counts[i] as number) + c;
      this.total += c;
    }
  }

  /** The value (µs) at quantile q in [0, 1], or null without samples. */
  quantile(q: number): number | null {
    if (this.total === 0) return null;
    const rank = Math.max(1, Math.ceil(q * this.total));
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.counts[i] as number;
      if (seen >= rank) return bucketValue(i);
    }
    return bucketValue(BUCKETS - 1);
  }
}
