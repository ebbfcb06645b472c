/**
 * The incident state machine and the response-time arithmetic. Pure functions over records, so
 * they are tested with plain numbers (no storage, no clock).
 *
 * Definitions (all per incident, in ms):
 * - TTD, time to detect      = detectedAt − startedAt (startedAt: first abnormal sample)
 * - TTA, time to acknowledge = acknowledgedAt − detectedAt (how fast a human picked it up)
 * - TTM, time to mitigate    = mitigatedAt − startedAt (how long customers felt it)
 * - TTR, time to resolve     = resolvedAt − startedAt
 * TTA counts from detection because no human can acknowledge what has not been detected; TTM
 * and TTR count from the start because that is the impact the fleet saw.
 */
import { ApiError } from '../errors.js';
import { type IncidentPatch, type IncidentRecord, type IncidentState, incidentStates } from './model.js';

const rank: Record<IncidentState, number> = { detected: 0, acknowledged: 1, mitigated: 2, resolved: 3 };

export interface Transition {
  patch: IncidentPatch;
  /** States skipped on the way (resolving a detected incident implies acknowledging it). */
  implied: IncidentState[];
}

/**
 * Moves forward to `to`. Skipping is allowed (a false alarm goes straight to resolved) and the
 * skipped states get the same timestamp, so TTA ≤ TTM ≤ TTR still hold. Going back, repeating a
 * state, or leaving `resolved` is a 409 (BW_ERR_INCIDENT_TRANSITION).
 */
export function transition(
  incident: Pick<IncidentRecord, 'id' | 'state'>,
  to: IncidentState,
  at: number,
): Transition {
  if (to === 'detected' || rank[to] <= rank[incident.state]) {
    throw new ApiError(
      'BW_ERR_INCIDENT_TRANSITION',
      `INC-${incident.id} is ${incident.state}; it cannot become ${to} (order: ${incidentStates.join(' → ')})`,
    );
  }
  const patch: IncidentPatch = { state: to };
  const implied: IncidentState[] = [];
  for (const s of incidentStates) {
    if (rank[s] <= rank[incident.state] || rank[s] > rank[to]) continue;
    if (s === 'acknowledged') patch.acknowledgedAt = at;
    if (s === 'mitigated') patch.mitigatedAt = at;
    if (s === 'resolved') patch.resolvedAt = at;
    if (s !== to) implied.push(s);
  }
  return { patch, implied };
}

export interface Durations {
  ttdMs: number | null;
  ttaMs: number | null;
  ttmMs: number | null;
  ttrMs: number | null;
}

function since(from: number, to: number | null): number | null {
  return to === null ? null : Math.max(0, to - from);
}

export function durations(
  i: Pick<IncidentRecord, 'startedAt' | 'detectedAt' | 'acknowledgedAt' | 'mitigatedAt' | 'resolvedAt'>,
): Durations {
  return {
    ttdMs: since(i.startedAt, i.detectedAt),
    ttaMs: since(i.detectedAt, i.acknowledgedAt),
    ttmMs: since(i.startedAt, i.mitigatedAt),
    ttrMs: since(i.startedAt, i.resolvedAt),
  };
}

/** `2026Q4` → [Oct 1, Jan 1) UTC. */
export function quarterRange(quarter: string): { since: number; until: number } {
  const m = /^(\d{4})Q([1-4])$/.exec(quarter);
  if (!m) {
    throw new ApiError('BW_ERR_API_VALIDATION', `quarter must look like 2026Q4 (got "${quarter}")`, {
      field: 'quarter',
    });
  }
  const year = Number(m[1]);
  const q = Number(m[2]);
  return { since: Date.UTC(year, (q - 1) * 3, 1), until: Date.UTC(year, q * 3, 1) };
}

export function quarterOf(ms: number): string {
  const d = new Date(ms);
  return `${d.getUTCFullYear()}Q${Math.floor(d.getUTCMonth() / 3) + 1}`;
}

/**
 * Percentile by linear interpolation between closest ranks (the common "type 7" definition used
 * by NumPy and spreadsheets): p50 of [1, 2, 3, 4] is 2.5, p90 of [10, 20] is 19.
 */
export function percentile(sorted: readonly number[], p: number): number | null {
  if (sorted.length === 0) return null;
  const pos = (sorted.length - 1) * p;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
}

export interface DurationStats {
  /** Incidents that have this duration (e.g. TTR only for resolved ones). */
  count: number;
  medianMs: number | null;
  p90Ms: number | null;
}

export interface QuarterSummary {
  quarter: string;
  incidents: number;
  open: number;
  byType: Record<string, number>;
  bySeverity: Record<string, number>;
  ttd: DurationStats;
  tta: DurationStats;
  ttm: DurationStats;
  ttr: DurationStats;
}

function stats(values: Array<number | null>): DurationStats {
  const sorted = values.filter((v): v is number => v !== null).sort((a, b) => a - b);
  return { count: sorted.length, medianMs: percentile(sorted, 0.5), p90Ms: percentile(sorted, 0.9) };
}

/** `incidents` are those that started in the quarter. */
export function summarize(quarter: string, incidents: readonly IncidentRecord[]): QuarterSummary {
  const byType: Record<string, number> = {};
  const bySeverity: Record<string, number> = {};
  for (const i of incidents) {
    byType[i.type] = (byType[i.type] ?? 0) + 1;
    bySeverity[i.severity] = (bySeverity[i.severity] ?? 0) + 1;
  }
  const d = incidents.map(durations);
  return {
    quarter,
    incidents: incidents.length,
    open: incidents.filter((i) => i.state !== 'resolved').length,
    byType,
    bySeverity,
    ttd: stats(d.map((x) => x.ttdMs)),
    tta: stats(d.map((x) => x.ttaMs)),
    ttm: stats(d.map((x) => x.ttmMs)),
    ttr: stats(d.map((x) => x.ttrMs)),
  };
}

/** `95 s`, `12 min 5 s`, `2 h 3 min`: for markdown and messages. */
export function formatDuration(ms: number | null): string {
  if (ms === null) return '—';
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return s % 60 ? `${m} min ${s % 60} s` : `${m} min`;
  const h = Math.floor(m / 60);
  if (h < 48) return m % 60 ? `${h} h ${m % 60} min` : `${h} h`;
  return `${Math.floor(h / 24)} d ${h % 24} h`;
}
