import { SeriesRing } from './ring.js';

/** How a stored series' values read: a gauge as sampled, or a counter turned into per-second rates. */
export type SeriesKind = 'gauge' | 'rate';

export type Labels = Readonly<Record<string, string>>;

export interface StoredSeries {
  readonly name: string;
  readonly labels: Labels;
  readonly kind: SeriesKind;
  readonly ring: SeriesRing;
}

export interface MetricHistoryOptions {
  /** Seconds kept per series (default 3600: the last hour). */
  retentionSec?: number;
  /**
   * Most series kept (default 2000, ~58 MB at one hour). Memory is fixed per series, so a label
   * explosion must not grow the process without bound: series beyond the cap are not recorded.
   */
  maxSeries?: number;
}

/** `name{a="1",b="2"}` with labels sorted: the identity of a series. */
export function seriesKey(name: string, labels: Labels): string {
  const keys = Object.keys(labels).sort();
  if (keys.length === 0) return name;
  return `${name}{${keys.map((k) => `${k}=${JSON.stringify(labels[k])}`).join(',')}}`;
}

/**
 * In-process history of the key metric series: one ring buffer of per-second samples per series
 * (name + labels). Written by the RegistrySampler (or by tests, directly), read by the alert
 * engine and the `/api/v1/metrics/series` route.
 */
export class MetricHistory {
  readonly retentionSec: number;
  readonly maxSeries: number;
  readonly #series = new Map<string, StoredSeries>();
  readonly #byName = new Map<string, StoredSeries[]>();
  #dropped = 0;

  constructor(options: MetricHistoryOptions = {}) {
    this.retentionSec = options.retentionSec ?? 3600;
    this.maxSeries = options.maxSeries ?? 2000;
  }

  /** Records one sample; returns false when the series is new and the cap is reached. */
  record(name: string, labels: Labels, atMs: number, value: number, kind: SeriesKind = 'gauge'): boolean {
    const key = seriesKey(name, labels);
    let series = this.#series.get(key);
    if (series === undefined) {
      if (this.#series.size >= this.maxSeries) {
        this.#dropped++;
        return false;
      }
      series = { name, labels: { ...labels }, kind, ring: new SeriesRing(this.retentionSec) };
      this.#series.set(key, series);
      const list = this.#byName.get(name);
      if (list) list.push(series);
      else this.#byName.set(name, [series]);
    }
    series.ring.record(atMs, value);
    return true;
  }

  /** Every series of `name` (all label sets). */
  series(name: string): readonly StoredSeries[] {
    return this.#byName.get(name) ?? [];
  }

  /** Distinct series names, sorted. */
  names(): string[] {
    return [...this.#byName.keys()].sort();
  }

  /** All series, sorted by key. */
  all(): StoredSeries[] {
    return [...this.#series.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, s]) => s);
  }

  get size(): number {
    return this.#series.size;
  }

  /** Samples refused because `maxSeries` was reached. */
  get droppedSamples(): number {
    return this.#dropped;
  }
}
