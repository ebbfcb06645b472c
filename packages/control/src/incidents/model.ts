/**
 * Incidents (DESIGN.md section 6): the records, their timeline and the repository contract.
 * Times are epoch milliseconds; the HTTP layer renders ISO strings.
 */
import type { AlertSeverity, IncidentType } from '../alerts/types.js';
import type { AuditRecord } from '../audit/model.js';
import type { Page } from '../storage/page.js';

export type { AlertSeverity, IncidentType } from '../alerts/types.js';

export const incidentTypes = [
  'bad-firmware-push',
  'mass-disconnect',
  'security',
  'data-quality',
  'capacity-cost',
] as const satisfies readonly IncidentType[];

export const severities = ['critical', 'warning', 'info'] as const satisfies readonly AlertSeverity[];

/** The lifecycle, in order. An incident only moves forward; resolved is final. */
export const incidentStates = ['detected', 'acknowledged', 'mitigated', 'resolved'] as const;
export type IncidentState = (typeof incidentStates)[number];

/** What the status page shows (public names). */
export const statusComponents = ['broker', 'auth', 'control-plane', 'ota'] as const;
export type StatusComponent = (typeof statusComponents)[number];

/** Statuspage-style phases of a customer-facing update. */
export const updateStatuses = ['investigating', 'identified', 'monitoring', 'resolved'] as const;
export type UpdateStatus = (typeof updateStatuses)[number];

export interface IncidentRecord {
  /** Sequential; rendered as `INC-<id>`. */
  id: number;
  type: IncidentType;
  severity: AlertSeverity;
  title: string;
  state: IncidentState;
  commander: string | null;
  /** Runbook slug (runbooks/<slug>.md). */
  runbook: string;
  components: StatusComponent[];
  source: 'alert' | 'manual';
  /** The first abnormal sample of the triggering series (or the operator's estimate). */
  startedAt: number;
  detectedAt: number;
  acknowledgedAt: number | null;
  mitigatedAt: number | null;
  resolvedAt: number | null;
  createdBy: string;
  updatedAt: number;
}

export type NewIncident = Omit<
  IncidentRecord,
  'id' | 'state' | 'acknowledgedAt' | 'mitigatedAt' | 'resolvedAt' | 'updatedAt'
>;

export interface IncidentPatch {
  state?: IncidentState;
  severity?: AlertSeverity;
  commander?: string | null;
  components?: StatusComponent[];
  runbook?: string;
  startedAt?: number;
  acknowledgedAt?: number | null;
  mitigatedAt?: number | null;
  resolvedAt?: number | null;
}

/**
 * Stored timeline kinds. Kill-switch actions are not copied here: they are read from the control
 * audit log and the broker's break-glass log for the incident's window when the timeline is built
 * (incidents/timeline.ts), so an action taken by any tool shows up without that tool knowing
 * about incidents.
 */
export type StoredTimelineKind = 'alert' | 'state' | 'note' | 'update';
export type TimelineKind = StoredTimelineKind | 'action';

export interface TimelineRecord {
  seq: number;
  incidentId: number;
  at: number;
  kind: StoredTimelineKind;
  actor: string;
  text: string;
  details: Record<string, unknown> | null;
}

export type NewTimelineEntry = Omit<TimelineRecord, 'seq'>;

/** One alert series (rule + labels) attached to an incident; dedup key for repeated events. */
export interface IncidentAlertRecord {
  incidentId: number;
  /** `ruleId{label="value",…}` with sorted labels. */
  alertKey: string;
  ruleId: string;
  name: string;
  severity: AlertSeverity;
  labels: Record<string, string>;
  firing: boolean;
  startedAt: number;
  firstFiredAt: number;
  lastEventAt: number;
  value: number;
  threshold: number;
  summary: string;
}

export interface IncidentFilter {
  /** `open` = not resolved. */
  state?: IncidentState | 'open';
  type?: IncidentType;
}

export interface IncidentRepository {
  /**
   * Call first in an alert-grouping transaction: serialises grouping between control planes
   * sharing PostgreSQL (transaction-scoped advisory lock), so one alert storm seen by two
   * processes opens one incident. SQLite transactions are already serial.
   */
  lockGrouping(): Promise<void>;
  insert(incident: NewIncident): Promise<IncidentRecord>;
  get(id: number): Promise<IncidentRecord | null>;
  /** Newest first. */
  list(filter: IncidentFilter, limit: number, cursor: string | null): Promise<Page<IncidentRecord>>;
  /** The most recent unresolved incident of `type`, if any. */
  findOpen(type: IncidentType): Promise<IncidentRecord | null>;
  /**
   * Applies `patch` only while the incident is in `expectedState` (optimistic check: two
   * operators acknowledging at once, one wins). Returns false when it is not.
   */
  update(id: number, patch: IncidentPatch, at: number, expectedState: IncidentState): Promise<boolean>;
  /** Incidents that started in [since, until). */
  startedBetween(since: number, until: number): Promise<IncidentRecord[]>;
  /** Incidents open at some point in [since, until): started before until, not resolved before since. */
  activeBetween(since: number, until: number): Promise<IncidentRecord[]>;
  appendTimeline(entry: NewTimelineEntry): Promise<number>;
  /** Ordered by time, then insertion. */
  timeline(incidentIds: readonly number[], kind?: StoredTimelineKind): Promise<TimelineRecord[]>;
  upsertAlert(alert: IncidentAlertRecord): Promise<void>;
  alerts(incidentId: number): Promise<IncidentAlertRecord[]>;
  /** The unresolved incident holding `alertKey`, with that alert, if any. */
  findAlert(alertKey: string): Promise<IncidentAlertRecord | null>;
  /** Control audit entries whose action starts with one of `prefixes`, in [since, until]. */
  auditActions(prefixes: readonly string[], since: number, until: number): Promise<AuditRecord[]>;
}

export function incidentRef(id: number): string {
  return `INC-${id}`;
}
