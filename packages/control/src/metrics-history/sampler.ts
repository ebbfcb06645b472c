import type { Registry } from 'prom-client';
import { type Labels, type MetricHistory, seriesKey } from './history.js';

/** Process metrics worth an hour of history besides every `breakwater_*` series. */
export const SAMPLED_PROCESS_METRICS: readonly string[] = [
  'process_open_fds',
  'process_max_fds',
  'process_cpu_seconds_total',
  'process_resident_memory_bytes',
  'nodejs_eventloop_lag_p99_seconds',
];

/**
 * prom-client sets some default metrics from another metric's collector: the CPU counters from
 * `process_cpu_user_seconds_total`'s, the event-loop lag percentiles from
 * `nodejs_eventloop_lag_seconds`' (which also starts the next measurement window). A kept metric's
 * collector runs before it (the registry lists it first), its value unrecorded.
 */
const SET_BY: Readonly<Record<string, string>> = {
  process_cpu_seconds_total: 'process_cpu_user_seconds_total',
  process_cpu_system_seconds_total: 'process_cpu_user_seconds_total',
  nodejs_eventloop_lag_min_seconds: 'nodejs_eventloop_lag_seconds',
  nodejs_eventloop_lag_max_seconds: 'nodejs_eventloop_lag_seconds',
  nodejs_eventloop_lag_mean_seconds: 'nodejs_eventloop_lag_seconds',
  nodejs_eventloop_lag_stddev_seconds: 'nodejs_eventloop_lag_seconds',
  nodejs_eventloop_lag_p50_seconds: 'nodejs_eventloop_lag_seconds',
  nodejs_eventloop_lag_p90_seconds: 'nodejs_eventloop_lag_seconds',
  nodejs_eventloop_lag_p99_seconds: 'nodejs_eventloop_lag_seconds',
};

export interface RegistrySamplerOptions {
  /** Which metric names to keep (default: `breakwater_*` plus SAMPLED_PROCESS_METRICS). */
  include?: (name: string) => boolean;
}

function defaultInclude(name: string): boolean {
  return name.startsWith('breakwater_') || SAMPLED_PROCESS_METRICS.includes(name);
}

function stringLabels(labels: Record<string, string | number> | undefined): Labels {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(labels ?? {})) out[k] = String(v);
  return out;
}

interface JsonMetric {
  name: string;
  type: string;
  values: Array<{ value: number; labels?: Record<string, string | number>; metricName?: string }>;
}

/**
 * Copies the registry's current values into the history once per call (the control plane calls it
 * every second). Gauges are recorded as read; counters (and histogram buckets, `_sum`, `_count`)
 * as the per-second rate since the previous call, so a ring holds "attempts/s", not an
 * ever-growing total. A counter that went down (a reset) counts from zero.
 */
export class RegistrySampler {
  readonly #registry: Registry;
  readonly #history: MetricHistory;
  readonly #include: (name: string) => boolean;
  /** Metrics collected but not recorded: they set kept metrics' values (SET_BY). */
  readonly #drivers: ReadonlySet<string>;
  readonly #previous = new Map<string, { value: number; atMs: number }>();
  #lastSampleAt: number | null = null;

  constructor(registry: Registry, history: MetricHistory, options: RegistrySamplerOptions = {}) {
    this.#registry = registry;
    this.#history = history;
    const include = options.include ?? defaultInclude;
    this.#include = include;
    this.#drivers = new Set(
      Object.entries(SET_BY)
        .filter(([kept, by]) => include(kept) && !include(by))
        .map(([, by]) => by),
    );
  }

  async sample(atMs: number): Promise<void> {
    // Only the included metrics are collected: the registry's whole JSON ran every collector each
    // second, among them prom-client's active-handle and active-resource lists, each an array of
    // every open socket (together ~1.4 MB/s of garbage at 15,000 idle connections, which kept
    // V8's young generation at its 32 MiB maximum on an idle broker).
    for (const { name } of this.#registry.getMetricsAsArray()) {
      const kept = this.#include(name);
      if (!kept && !this.#drivers.has(name)) continue;
      const metric = this.#registry.getSingleMetric(name);
      if (metric === undefined) continue;
      const json = await metric.get();
      if (kept) this.#record(json as unknown as JsonMetric, atMs);
    }
    this.#lastSampleAt = atMs;
  }

  #record(metric: JsonMetric, atMs: number): void {
    const cumulative = metric.type === 'counter' || metric.type === 'histogram' || metric.type === 'summary';
    for (const v of metric.values) {
      if (!Number.isFinite(v.value)) continue;
      const name = v.metricName ?? metric.name;
      // Summary quantiles are gauges in all but name; only their _sum/_count accumulate.
      const isCounter = cumulative && !(metric.type === 'summary' && name === metric.name);
      const labels = stringLabels(v.labels);
      if (!isCounter) {
        this.#history.record(name, labels, atMs, v.value, 'gauge');
        continue;
      }
      const key = seriesKey(name, labels);
      // A labelled counter appears on its first increment, counting from 0: a series that is
      // new after the first round started at 0 at the previous sample (so the first second of
      // a storm of a never-seen outcome, e.g. auth `error`, is not lost).
      const prev =
        this.#previous.get(key) ??
        (this.#lastSampleAt === null ? undefined : { value: 0, atMs: this.#lastSampleAt });
      this.#previous.set(key, { value: v.value, atMs });
      if (prev === undefined || atMs <= prev.atMs) continue;
      const delta = v.value >= prev.value ? v.value - prev.value : v.value;
      this.#history.record(name, labels, atMs, delta / ((atMs - prev.atMs) / 1000), 'rate');
    }
  }
}
