/**
 * The incident timeline: what the incident stored itself (alerts, state changes, notes, status
 * updates) merged with the kill-switch actions taken while it was open.
 *
 * Kill-switch actions are read, not copied: every revocation, config push, OTA/campaign action
 * is already in the control audit log (written in the same transaction as the change), and every
 * break-glass bypass is in the broker's `<dataDir>/audit.log`. The incident's window is
 * [startedAt, resolvedAt ?? now]: an action an operator took before the alert fired (they
 * noticed first) belongs to the incident too. Overlapping incidents both show an action taken
 * while both were open, which is what their responders saw.
 */
import { readFileSync } from 'node:fs';
import type { AuditRecord } from '../audit/model.js';
import type { IncidentRecord, IncidentRepository, TimelineKind, TimelineRecord } from './model.js';

/**
 * Audit actions that are kill switches or fleet-wide changes: revocations, config pushes
 * (`config.push`, and `config-push` from /killswitch/config-push), OTA campaign actions
 * (`campaign.halt`, …) and the one-call kill switches (`killswitch.ota-halt`).
 */
export const KILL_SWITCH_ACTION_PREFIXES = [
  'revocation.',
  'config.',
  'config-push',
  'campaign.',
  'killswitch.',
  'ota.',
  'listener.',
] as const;

export interface TimelineItem {
  at: number;
  kind: TimelineKind;
  /** Where it came from: the incident itself, the control audit log, the broker's break-glass log. */
  source: 'incident' | 'control-audit' | 'broker-audit';
  actor: string;
  text: string;
  details: Record<string, unknown> | null;
}

/** The broker's break-glass log line (packages/broker/src/http/audit-log.ts). */
interface BrokerAuditLine {
  at: string;
  actor: string;
  action: string;
  listener: string;
  reason?: string;
  until?: string;
}

/** Break-glass entries in [since, until]; a missing or partly written file yields what parses. */
export function readBrokerAudit(path: string, since: number, until: number): TimelineItem[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return []; // no broker on this data dir, or no break-glass yet
  }
  const items: TimelineItem[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    let entry: BrokerAuditLine;
    try {
      entry = JSON.parse(line) as BrokerAuditLine;
    } catch {
      continue; // a torn last line while the broker appends
    }
    const at = Date.parse(entry.at);
    if (!Number.isFinite(at) || at < since || at > until) continue;
    const what =
      entry.action === 'bypass-authn'
        ? `authn bypass on listener ${entry.listener}${entry.until ? ` until ${entry.until}` : ''}`
        : entry.action === 'restore-authn'
          ? `authn restored on listener ${entry.listener}`
          : `${entry.action} on listener ${entry.listener}`;
    items.push({
      at,
      kind: 'action',
      source: 'broker-audit',
      actor: entry.actor,
      text: entry.reason ? `${what}: ${entry.reason}` : what,
      details: { action: `listener.${entry.action}`, listener: entry.listener, until: entry.until ?? null },
    });
  }
  return items;
}

export function auditItem(a: AuditRecord): TimelineItem {
  const target = a.targetId === null ? a.targetType : `${a.targetType} ${a.targetId}`;
  return {
    at: a.at,
    kind: 'action',
    source: 'control-audit',
    actor: a.actorName,
    text: `${a.action} ${target}${a.reason ? `: ${a.reason}` : ''}`,
    details: { action: a.action, auditSeq: a.seq, ...(a.details ?? {}) },
  };
}

export function storedItem(r: TimelineRecord): TimelineItem {
  return { at: r.at, kind: r.kind, source: 'incident', actor: r.actor, text: r.text, details: r.details };
}

export async function buildTimeline(
  repo: IncidentRepository,
  incident: IncidentRecord,
  options: { now: number; brokerAuditLog: string | null },
): Promise<TimelineItem[]> {
  const until = incident.resolvedAt ?? options.now;
  const stored = (await repo.timeline([incident.id])).map(storedItem);
  const actions = (await repo.auditActions(KILL_SWITCH_ACTION_PREFIXES, incident.startedAt, until)).map(
    auditItem,
  );
  const broker =
    options.brokerAuditLog === null ? [] : readBrokerAudit(options.brokerAuditLog, incident.startedAt, until);
  // Stable sort: equal times keep source order (incident entries first, in insertion order).
  return [...stored, ...actions, ...broker].sort((a, b) => a.at - b.at);
}
