/**
 * Arithmetic over the metric history for the rule evaluators: sum series by labels, aggregate a
 * window, histogram quantiles, the onset of an abnormal run. Pure functions of the history.
 */
import { type Labels, type MetricHistory, seriesKey } from '../metrics-history/history.js';

export type Point = [atMs: number, value: number];

export interface Group {
  labels: Labels;
  /** Per second, oldest first: the sum of the member series' samples at that second. */
  points: Point[];
}

export type LabelFilter = (labels: Labels) => boolean;

/**
 * Sums the series of `name` into one series per distinct value of the `by` labels
 * (`sum by (listener) (...)`), over samples with `fromMs < t <= toMs`.
 */
export function sumBy(
  history: MetricHistory,
  name: string,
  by: readonly string[],
  fromMs: number,
  toMs: number,
  filter?: LabelFilter,
): Group[] {
  const groups = new Map<string, { labels: Record<string, string>; sums: Map<number, number> }>();
  for (const series of history.series(name)) {
    if (filter && !filter(series.labels)) continue;
    const labels: Record<string, string> = {};
    for (const l of by) labels[l] = series.labels[l] ?? '';
    const key = seriesKey('', labels);
    let group = groups.get(key);
    if (!group) {
      group = { labels, sums: new Map() };
      groups.set(key, group);
    }
    for (const [t, v] of series.ring.range(fromMs + 1, toMs)) group.sums.set(t, (group.sums.get(t) ?? 0) + v);
  }
  return [...groups.values()].map((g) => ({
    labels: g.labels,
    points: [...g.sums.entries()].sort((a, b) => a[0] - b[0]),
  }));
}

export function total(points: readonly Point[]): number {
  let s = 0;
  for (const [, v] of points) s += v;
  return s;
}

export function mean(points: readonly Point[]): number {
  return points.length === 0 ? 0 : total(points) / points.length;
}

export function maxOf(points: readonly Point[]): Point | undefined {
  let best: Point | undefined;
  for (const p of points) if (best === undefined || p[1] > best[1]) best = p;
  return best;
}

export function last(points: readonly Point[]): Point | undefined {
  return points[points.length - 1];
}

/**
 * Start of the trailing run of abnormal samples: walks back from the newest sample while
 * `abnormal` holds (samples for which it returns null, e.g. seconds without traffic, neither
 * break nor start the run). Returns the epoch ms of the run's first sample, or undefined.
 */
export function onsetOf(
  points: readonly Point[],
  abnormal: (value: number, atMs: number) => boolean | null,
): number | undefined {
  let onset: number | undefined;
  for (let i = points.length - 1; i >= 0; i--) {
    const [t, v] = points[i]!;
    const verdict = abnormal(v, t);
    if (verdict === null) continue;
    if (!verdict) break;
    onset = t;
  }
  return onset;
}

/** Joins two groupings on identical labels. */
export function joinGroups(a: Group[], b: Group[]): Array<{ labels: Labels; a: Point[]; b: Point[] }> {
  const byKey = new Map(b.map((g) => [seriesKey('', g.labels), g]));
  return a.map((g) => ({
    labels: g.labels,
    a: g.points,
    b: byKey.get(seriesKey('', g.labels))?.points ?? [],
  }));
}

/** Per-second ratio series of a / b at the seconds where b > 0. */
export function ratioPoints(a: readonly Point[], b: readonly Point[]): Point[] {
  const num = new Map(a);
  const out: Point[] = [];
  for (const [t, d] of b) if (d > 0) out.push([t, (num.get(t) ?? 0) / d]);
  return out;
}

/**
 * `histogram_quantile` over cumulative bucket counts (or rates) keyed by upper bound (`le`),
 * with Prometheus' linear interpolation inside the bucket. NaN when there are no observations.
 */
export function histogramQuantile(q: number, buckets: ReadonlyMap<number, number>): number {
  const bounds = [...buckets.keys()].sort((x, y) => x - y);
  return quantileSorted(
    q,
    bounds,
    bounds.map((b) => buckets.get(b) ?? 0),
  );
}

/** histogramQuantile over parallel arrays, `bounds` ascending (the hot path: no allocation). */
export function quantileSorted(q: number, bounds: readonly number[], counts: ArrayLike<number>): number {
  if (bounds.length === 0) return Number.NaN;
  const count = counts[bounds.length - 1] ?? 0;
  if (!(count > 0)) return Number.NaN;
  const rank = q * count;
  let prevBound = 0;
  let prevCount = 0;
  for (let i = 0; i < bounds.length; i++) {
    const bound = bounds[i]!;
    const c = counts[i] ?? 0;
    if (c >= rank) {
      // Observations above the highest finite bound: Prometheus answers that bound.
      if (bound === Number.POSITIVE_INFINITY) return prevBound;
      if (c === prevCount) return bound;
      return prevBound + ((bound - prevBound) * (rank - prevCount)) / (c - prevCount);
    }
    prevBound = bound;
    prevCount = c;
  }
  return prevBound;
}
