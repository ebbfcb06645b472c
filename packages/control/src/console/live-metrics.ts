/**
 * What the console's charts plot, computed from the control plane's metric history (the same
 * per-second rings the alert rules read): a fixed list of named series, each a sum of one metric
 * by at most one label. Keys are `id` or `id:labelValue` (`attempts:mqtt`, `drops:queue_full`).
 * The console derives ratios itself (auth failure % = authFail / authAll).
 */
import { quantileSorted, sumBy } from '../alerts/series-math.js';
import type { Labels, MetricHistory } from '../metrics-history/history.js';

interface LiveSeriesDef {
  id: string;
  metric: string;
  by?: string;
  filter?: (labels: Labels) => boolean;
}

// The outcomes the auth-failure-ratio rule counts as failed (alerts/rules.ts).
const AUTH_FAILED = new Set(['failure', 'error', 'negative_cache_hit']);

export const LIVE_SERIES: readonly LiveSeriesDef[] = [
  { id: 'attempts', metric: 'breakwater_connection_attempts_total', by: 'listener' },
  { id: 'authAll', metric: 'breakwater_auth_total' },
  { id: 'authFail', metric: 'breakwater_auth_total', filter: (l) => AUTH_FAILED.has(l.outcome ?? '') },
  { id: 'auth', metric: 'breakwater_auth_total', by: 'outcome' },
  { id: 'refused', metric: 'breakwater_admission_refused_total', by: 'reason' },
  { id: 'breaker', metric: 'breakwater_auth_backend_breaker_state', by: 'backend' },
  { id: 'limit', metric: 'breakwater_auth_backend_limit', by: 'backend' },
  { id: 'inflight', metric: 'breakwater_auth_backend_inflight', by: 'backend' },
  { id: 'waiting', metric: 'breakwater_auth_backend_waiting', by: 'backend' },
  { id: 'backendRejected', metric: 'breakwater_auth_backend_rejected_total', by: 'reason' },
  { id: 'connections', metric: 'breakwater_connections' },
  { id: 'sockets', metric: 'breakwater_open_sockets' },
  { id: 'fds', metric: 'process_open_fds' },
  { id: 'fdMax', metric: 'process_max_fds' },
  { id: 'msgIn', metric: 'breakwater_messages_received_total' },
  { id: 'msgOut', metric: 'breakwater_messages_sent_total' },
  { id: 'drops', metric: 'breakwater_messages_dropped_total', by: 'reason' },
  { id: 'bypass', metric: 'breakwater_auth_bypass_active', by: 'listener' },
  { id: 'flapBans', metric: 'breakwater_flapping_bans_total', by: 'scope' },
];

const P99_BUCKETS = 'breakwater_auth_backend_duration_seconds_bucket';

/** Per-second values of every live series over `(fromMs, toMs]`: key → (second → value). */
export function liveSeries(
  history: MetricHistory,
  fromMs: number,
  toMs: number,
): Map<string, Map<number, number>> {
  const out = new Map<string, Map<number, number>>();
  for (const def of LIVE_SERIES) {
    for (const group of sumBy(history, def.metric, def.by ? [def.by] : [], fromMs, toMs, def.filter)) {
      const key = def.by ? `${def.id}:${group.labels[def.by] || '-'}` : def.id;
      out.set(key, new Map(group.points));
    }
  }
  const p99 = backendP99(history, fromMs, toMs);
  if (p99.size > 0) out.set('backendP99', p99);
  return out;
}

/** Auth backend latency p99 per second, all backends together (seconds). */
function backendP99(history: MetricHistory, fromMs: number, toMs: number): Map<number, number> {
  const byLe = sumBy(history, P99_BUCKETS, ['le'], fromMs, toMs)
    .map((g) => ({ g, le: g.labels.le === '+Inf' ? Number.POSITIVE_INFINITY : Number(g.labels.le) }))
    .sort((a, b) => a.le - b.le);
  const bounds = byLe.map((x) => x.le);
  const rows = new Map<number, Float64Array>();
  byLe.forEach(({ g }, i) => {
    for (const [t, v] of g.points) {
      let row = rows.get(t);
      if (!row) {
        row = new Float64Array(bounds.length);
        rows.set(t, row);
      }
      row[i] = v;
    }
  });
  const out = new Map<number, number>();
  for (const [t, row] of rows) {
    const q = quantileSorted(0.99, bounds, row);
    if (Number.isFinite(q)) out.set(t, q);
  }
  return out;
}

export interface LiveSnapshot {
  stepSec: number;
  /** Bucket start times (epoch ms), oldest first. */
  t: number[];
  /** key → one value per `t` (bucket average), null where the series had no sample. */
  series: Record<string, Array<number | null>>;
}

/** The last `windowSec` in `stepSec` buckets: the history the charts start from. */
export function liveSnapshot(
  history: MetricHistory,
  nowMs: number,
  windowSec: number,
  stepSec: number,
): LiveSnapshot {
  const stepMs = stepSec * 1000;
  const first = Math.floor((nowMs - windowSec * 1000) / stepMs) * stepMs;
  const t: number[] = [];
  for (let b = first; b <= nowMs; b += stepMs) t.push(b);
  const series: Record<string, Array<number | null>> = {};
  for (const [key, points] of liveSeries(history, first - 1, nowMs)) {
    const sums = new Float64Array(t.length);
    const counts = new Uint32Array(t.length);
    for (const [at, v] of points) {
      const i = Math.floor((at - first) / stepMs);
      if (i < 0 || i >= t.length) continue;
      sums[i] = sums[i]! + v;
      counts[i] = counts[i]! + 1;
    }
    series[key] = t.map((_, i) => (counts[i]! > 0 ? sums[i]! / counts[i]! : null));
  }
  return { stepSec, t, series };
}

/** The newest second of every series at or before `nowMs` (one SSE delta). */
export function liveLatest(
  history: MetricHistory,
  nowMs: number,
): { at: number; values: Record<string, number> } {
  const values: Record<string, number> = {};
  let at = 0;
  for (const [key, points] of liveSeries(history, nowMs - 2000, nowMs)) {
    let newest: [number, number] | null = null;
    for (const p of points) if (newest === null || p[0] > newest[0]) newest = p;
    if (newest === null) continue;
    values[key] = newest[1];
    if (newest[0] > at) at = newest[0];
  }
  return { at: at || nowMs, values };
}
