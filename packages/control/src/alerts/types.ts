/**
 * The alert engine's public event contract. Incidents (packages/control/src/incidents/) subscribe
 * to these events; keep this file stable and additive.
 */

export type AlertSeverity = 'critical' | 'warning' | 'info';

export type IncidentType =
  | 'bad-firmware-push'
  | 'mass-disconnect'
  | 'security'
  | 'data-quality'
  | 'capacity-cost';

export interface AlertEvent {
  ruleId: string;
  name: string;
  state: 'firing' | 'resolved';
  severity: AlertSeverity;
  incidentType: IncidentType;
  /** Runbook slug, e.g. 'auth-failing-fleet-wide' (runbooks/<slug>.md). */
  runbook: string;
  /** Labels of the triggering series, e.g. { listener: 'tcp' }. */
  labels: Record<string, string>;
  value: number;
  threshold: number;
  /** Epoch ms of the first abnormal sample of the triggering series (TTD is computed from it). */
  startedAt: number;
  /** Epoch ms when this event was emitted. */
  at: number;
  summary: string;
}

export interface AlertSink {
  onAlert(event: AlertEvent): void | Promise<void>;
}
