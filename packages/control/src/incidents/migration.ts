/**
 * Incidents (issue 7): lifecycle, timeline (alerts, state changes, notes, status updates) and the
 * alert series attached to each incident (dedup key `alert_key` = rule id + sorted labels).
 * One entry of storage/migrations.ts; placeholders as documented there.
 */
export const INCIDENTS_MIGRATION = `
  CREATE TABLE incidents (
    id {{serial}},
    type TEXT NOT NULL,
    severity TEXT NOT NULL,
    title TEXT NOT NULL,
    state TEXT NOT NULL,
    commander TEXT,
    runbook TEXT NOT NULL,
    components TEXT NOT NULL,
    source TEXT NOT NULL,
    started_at {{bigint}} NOT NULL,
    detected_at {{bigint}} NOT NULL,
    acknowledged_at {{bigint}},
    mitigated_at {{bigint}},
    resolved_at {{bigint}},
    created_by TEXT NOT NULL,
    updated_at {{bigint}} NOT NULL
  );
  CREATE INDEX incidents_type_state ON incidents (type, state);
  CREATE INDEX incidents_started ON incidents (started_at);
  CREATE TABLE incident_timeline (
    seq {{serial}},
    incident_id {{bigint}} NOT NULL,
    at {{bigint}} NOT NULL,
    kind TEXT NOT NULL,
    actor TEXT NOT NULL,
    text TEXT NOT NULL,
    details TEXT
  );
  CREATE INDEX incident_timeline_incident ON incident_timeline (incident_id, at);
  CREATE TABLE incident_alerts (
    incident_id {{bigint}} NOT NULL,
    alert_key {{key}} NOT NULL,
    rule_id TEXT NOT NULL,
    name TEXT NOT NULL,
    severity TEXT NOT NULL,
    labels TEXT NOT NULL,
    firing INTEGER NOT NULL,
    started_at {{bigint}} NOT NULL,
    first_fired_at {{bigint}} NOT NULL,
    last_event_at {{bigint}} NOT NULL,
    value DOUBLE PRECISION NOT NULL,
    threshold DOUBLE PRECISION NOT NULL,
    summary TEXT NOT NULL,
    PRIMARY KEY (incident_id, alert_key)
  );
  CREATE INDEX incident_alerts_key ON incident_alerts (alert_key);
`;
