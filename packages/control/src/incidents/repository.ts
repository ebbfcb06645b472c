/**
 * SQL repository for incidents, their timeline and attached alerts (portable SQL over
 * SqlExecutor, SQLite + PostgreSQL). Tables: migrations.ts (incidents, incident_timeline,
 * incident_alerts).
 */

import type { AuditRecord } from '../audit/model.js';
import { ApiError } from '../errors.js';
import type { SqlExecutor } from '../storage/executor.js';
import type { Page } from '../storage/page.js';
import { jsonOrNull, num, numOrNull, Params, type Row, strOrNull } from '../storage/sql-values.js';
import type {
  AlertSeverity,
  IncidentAlertRecord,
  IncidentFilter,
  IncidentPatch,
  IncidentRecord,
  IncidentRepository,
  IncidentState,
  IncidentType,
  NewIncident,
  NewTimelineEntry,
  StatusComponent,
  StoredTimelineKind,
  TimelineRecord,
} from './model.js';

const columns: Record<keyof IncidentPatch, string> = {
  state: 'state',
  severity: 'severity',
  commander: 'commander',
  components: 'components',
  runbook: 'runbook',
  startedAt: 'started_at',
  acknowledgedAt: 'acknowledged_at',
  mitigatedAt: 'mitigated_at',
  resolvedAt: 'resolved_at',
};

function mapIncident(r: Row): IncidentRecord {
  return {
    id: num(r.id),
    type: String(r.type) as IncidentType,
    severity: String(r.severity) as AlertSeverity,
    title: String(r.title),
    state: String(r.state) as IncidentState,
    commander: strOrNull(r.commander),
    runbook: String(r.runbook),
    components: String(r.components)
      .split(',')
      .filter((c) => c !== '') as StatusComponent[],
    source: String(r.source) as 'alert' | 'manual',
    startedAt: num(r.started_at),
    detectedAt: num(r.detected_at),
    acknowledgedAt: numOrNull(r.acknowledged_at),
    mitigatedAt: numOrNull(r.mitigated_at),
    resolvedAt: numOrNull(r.resolved_at),
    createdBy: String(r.created_by),
    updatedAt: num(r.updated_at),
  };
}

function mapAlert(r: Row): IncidentAlertRecord {
  return {
    incidentId: num(r.incident_id),
    alertKey: String(r.alert_key),
    ruleId: String(r.rule_id),
    name: String(r.name),
    severity: String(r.severity) as AlertSeverity,
    labels: JSON.parse(String(r.labels)) as Record<string, string>,
    firing: num(r.firing) === 1,
    startedAt: num(r.started_at),
    firstFiredAt: num(r.first_fired_at),
    lastEventAt: num(r.last_event_at),
    value: num(r.value),
    threshold: num(r.threshold),
    summary: String(r.summary),
  };
}

function cursorId(cursor: string): number {
  const value = Buffer.from(cursor, 'base64url').toString('utf8');
  if (!/^\d+$/.test(value) || Buffer.from(value, 'utf8').toString('base64url') !== cursor) {
    throw new ApiError('BW_ERR_API_VALIDATION', 'cursor is not a cursor returned by this API', {
      field: 'cursor',
    });
  }
  return Number(value);
}

/** Advisory lock id for alert grouping ("bwincidt"). */
const GROUPING_LOCK = 0x6277_696e_6369_6474n;

export class SqlIncidents implements IncidentRepository {
  constructor(private readonly db: SqlExecutor) {}

  async lockGrouping(): Promise<void> {
    if (this.db.dialect === 'postgres') {
      await this.db.query('SELECT pg_advisory_xact_lock($1)', [GROUPING_LOCK.toString()]);
    }
  }

  async insert(n: NewIncident): Promise<IncidentRecord> {
    const rows = await this.db.query<{ id: unknown }>(
      `INSERT INTO incidents (type, severity, title, state, commander, runbook, components, source,
         started_at, detected_at, created_by, updated_at)
       VALUES ($1, $2, $3, 'detected', $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id`,
      [
        n.type,
        n.severity,
        n.title,
        n.commander,
        n.runbook,
        n.components.join(','),
        n.source,
        n.startedAt,
        n.detectedAt,
        n.createdBy,
        n.detectedAt,
      ],
    );
    return (await this.get(num(rows[0]!.id)))!;
  }

  async get(id: number): Promise<IncidentRecord | null> {
    const rows = await this.db.query('SELECT * FROM incidents WHERE id = $1', [id]);
    return rows[0] ? mapIncident(rows[0]) : null;
  }

  async list(filter: IncidentFilter, limit: number, cursor: string | null): Promise<Page<IncidentRecord>> {
    const p = new Params();
    const where: string[] = [];
    if (filter.state === 'open') where.push(`state <> 'resolved'`);
    else if (filter.state !== undefined) where.push(`state = ${p.add(filter.state)}`);
    if (filter.type !== undefined) where.push(`type = ${p.add(filter.type)}`);
    if (cursor !== null) where.push(`id < ${p.add(cursorId(cursor))}`);
    const rows = await this.db.query(
      `SELECT * FROM incidents ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
       ORDER BY id DESC LIMIT ${p.add(limit + 1)}`,
      p.values,
    );
    const items = rows.slice(0, limit).map(mapIncident);
    const last = items.at(-1);
    return {
      items,
      nextCursor: rows.length > limit && last ? Buffer.from(String(last.id)).toString('base64url') : null,
    };
  }

  async findOpen(type: IncidentType): Promise<IncidentRecord | null> {
    const rows = await this.db.query(
      `SELECT * FROM incidents WHERE type = $1 AND state <> 'resolved' ORDER BY id DESC LIMIT 1`,
      [type],
    );
    return rows[0] ? mapIncident(rows[0]) : null;
  }

  async update(id: number, patch: IncidentPatch, at: number, expectedState: IncidentState): Promise<boolean> {
    const p = new Params();
    const set = [`updated_at = ${p.add(at)}`];
    for (const [key, value] of Object.entries(patch)) {
      if (value === undefined) continue;
      const stored = Array.isArray(value) ? value.join(',') : value;
      set.push(`${columns[key as keyof IncidentPatch]} = ${p.add(stored)}`);
    }
    const n = await this.db.execute(
      `UPDATE incidents SET ${set.join(', ')} WHERE id = ${p.add(id)} AND state = ${p.add(expectedState)}`,
      p.values,
    );
    return n > 0;
  }

  async startedBetween(since: number, until: number): Promise<IncidentRecord[]> {
    const rows = await this.db.query(
      'SELECT * FROM incidents WHERE started_at >= $1 AND started_at < $2 ORDER BY started_at, id',
      [since, until],
    );
    return rows.map(mapIncident);
  }

  async activeBetween(since: number, until: number): Promise<IncidentRecord[]> {
    const rows = await this.db.query(
      `SELECT * FROM incidents WHERE started_at < $2 AND (resolved_at IS NULL OR resolved_at >= $1)
       ORDER BY started_at DESC, id DESC`,
      [since, until],
    );
    return rows.map(mapIncident);
  }

  async appendTimeline(e: NewTimelineEntry): Promise<number> {
    const rows = await this.db.query<{ seq: unknown }>(
      `INSERT INTO incident_timeline (incident_id, at, kind, actor, text, details)
       VALUES ($1, $2, $3, $4, $5, $6) RETURNING seq`,
      [e.incidentId, e.at, e.kind, e.actor, e.text, e.details === null ? null : JSON.stringify(e.details)],
    );
    return num(rows[0]!.seq);
  }

  async timeline(incidentIds: readonly number[], kind?: StoredTimelineKind): Promise<TimelineRecord[]> {
    if (incidentIds.length === 0) return [];
    const p = new Params();
    const ids = incidentIds.map((id) => p.add(id));
    const rows = await this.db.query(
      `SELECT * FROM incident_timeline WHERE incident_id IN (${ids.join(', ')})
       ${kind === undefined ? '' : `AND kind = ${p.add(kind)}`} ORDER BY at, seq`,
      p.values,
    );
    return rows.map((r) => ({
      seq: num(r.seq),
      incidentId: num(r.incident_id),
      at: num(r.at),
      kind: String(r.kind) as StoredTimelineKind,
      actor: String(r.actor),
      text: String(r.text),
      details: jsonOrNull(r.details),
    }));
  }

  async upsertAlert(a: IncidentAlertRecord): Promise<void> {
    await this.db.execute(
      `INSERT INTO incident_alerts (incident_id, alert_key, rule_id, name, severity, labels, firing,
         started_at, first_fired_at, last_event_at, value, threshold, summary)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
       ON CONFLICT (incident_id, alert_key) DO UPDATE SET
         severity = $5, firing = $7, last_event_at = $10, value = $11, threshold = $12, summary = $13`,
      [
        a.incidentId,
        a.alertKey,
        a.ruleId,
        a.name,
        a.severity,
        JSON.stringify(a.labels),
        a.firing ? 1 : 0,
        a.startedAt,
        a.firstFiredAt,
        a.lastEventAt,
        a.value,
        a.threshold,
        a.summary,
      ],
    );
  }

  async alerts(incidentId: number): Promise<IncidentAlertRecord[]> {
    const rows = await this.db.query(
      'SELECT * FROM incident_alerts WHERE incident_id = $1 ORDER BY first_fired_at, alert_key',
      [incidentId],
    );
    return rows.map(mapAlert);
  }

  async findAlert(alertKey: string): Promise<IncidentAlertRecord | null> {
    const rows = await this.db.query(
      `SELECT a.* FROM incident_alerts a JOIN incidents i ON i.id = a.incident_id
       WHERE a.alert_key = $1 AND i.state <> 'resolved' ORDER BY a.incident_id DESC LIMIT 1`,
      [alertKey],
    );
    return rows[0] ? mapAlert(rows[0]) : null;
  }

  async auditActions(prefixes: readonly string[], since: number, until: number): Promise<AuditRecord[]> {
    if (prefixes.length === 0) return [];
    const p = new Params();
    const like = prefixes.map((prefix) => `action LIKE ${p.add(`${prefix.replace(/[%_]/g, '')}%`)}`);
    const rows = await this.db.query(
      `SELECT * FROM audit_log WHERE at >= ${p.add(since)} AND at <= ${p.add(until)} AND (${like.join(' OR ')})
       ORDER BY seq LIMIT 1000`,
      p.values,
    );
    return rows.map((r) => ({
      seq: num(r.seq),
      at: num(r.at),
      actorId: String(r.actor_id),
      actorName: String(r.actor_name),
      action: String(r.action),
      targetType: String(r.target_type),
      targetId: strOrNull(r.target_id),
      reason: strOrNull(r.reason),
      details: jsonOrNull(r.details),
    }));
  }
}
