/**
 * Communication templates filled from the incident (`GET /api/v1/incidents/:id/messages`).
 * Three audiences, three registers:
 * - internal: everything, for the incident channel / management (state, commander, TTx, runbook).
 * - customer: plain language, affected components and the latest public update only; no alert
 *   names, no internal people, nothing an attacker could use during a security incident.
 * - regulator: a formal notification (NIS2 / GDPR-style early warning) with the facts known and
 *   the fields only a human can fill marked `[to fill: …]`.
 */
import { formatDuration } from './lifecycle.js';
import type { IncidentDetail } from './manager.js';
import { incidentRef } from './model.js';
import { iso } from './postmortem.js';

export const audiences = ['internal', 'customer', 'regulator'] as const;
export type Audience = (typeof audiences)[number];

export interface Message {
  audience: Audience;
  subject: string;
  body: string;
}

const typeDescription: Record<string, string> = {
  'bad-firmware-push': 'a firmware update that caused devices to malfunction',
  'mass-disconnect': 'a large number of devices losing their connection to the service',
  security: 'a security event affecting device authentication or access',
  'data-quality': 'incorrect or missing device data',
  'capacity-cost': 'the service running short of capacity',
};

const customerState: Record<string, string> = {
  detected: 'We are investigating',
  acknowledged: 'We are investigating',
  mitigated: 'A fix is in place and we are monitoring',
  resolved: 'This incident is resolved',
};

export function message(d: IncidentDetail, audience: Audience, now: number): Message {
  const i = d.incident;
  const ref = incidentRef(i.id);
  const components = i.components.join(', ') || 'the service';
  const updates = d.timeline.filter((e) => e.kind === 'update');
  const latest = updates.at(-1);
  if (audience === 'internal') {
    const recent = d.timeline.slice(-5).map((e) => `  ${iso(e.at)} [${e.kind}] ${e.actor}: ${e.text}`);
    return {
      audience,
      subject: `[${i.severity.toUpperCase()}] ${ref} ${i.title} (${i.state})`,
      body: [
        `${ref} ${i.title}`,
        `Type: ${i.type}   Severity: ${i.severity}   State: ${i.state}`,
        `Commander: ${i.commander ?? 'none yet: whoever reads this first, acknowledge and take command'}`,
        `Runbook: ${i.runbook} (${d.runbook.path})`,
        `Started ${iso(i.startedAt)}, detected ${iso(i.detectedAt)} (TTD ${formatDuration(d.durations.ttdMs)})`,
        `TTA ${formatDuration(d.durations.ttaMs)}   TTM ${formatDuration(d.durations.ttmMs)}   TTR ${formatDuration(d.durations.ttrMs)}`,
        `Components: ${components}`,
        `Alerts firing: ${
          d.alerts
            .filter((a) => a.firing)
            .map((a) => a.name)
            .join(', ') || 'none'
        }`,
        '',
        'Latest timeline:',
        ...(recent.length ? recent : ['  (empty)']),
        '',
        `Next internal update by ${iso(now + 30 * 60_000)}.`,
      ].join('\n'),
    };
  }
  if (audience === 'customer') {
    const state = customerState[i.state]!;
    return {
      audience,
      subject: `${state}: ${i.title}`,
      body: [
        `${state}.`,
        '',
        latest ? latest.text : `We are aware of an issue affecting ${components} and are working on it.`,
        '',
        `Affected: ${components}.`,
        `Started: ${iso(i.startedAt)}.`,
        ...(i.resolvedAt !== null
          ? [`Resolved: ${iso(i.resolvedAt)}.`]
          : ['We will post the next update within 60 minutes.']),
        '',
        `Reference: ${ref}. Current status: /status`,
      ].join('\n'),
    };
  }
  const actions = d.timeline.filter((e) => e.kind === 'action');
  return {
    audience,
    subject: `Incident notification ${ref}: ${typeDescription[i.type] ?? i.type}`,
    body: [
      `Incident reference: ${ref}`,
      `Notification type: ${i.state === 'resolved' ? 'final report' : 'early warning / intermediate report'}`,
      `Nature of the incident: ${typeDescription[i.type] ?? i.type}.`,
      `Start of the incident: ${iso(i.startedAt)} (UTC)`,
      `Detection: ${iso(i.detectedAt)} (UTC)`,
      `Current status: ${i.state}${i.resolvedAt !== null ? ` since ${iso(i.resolvedAt)}` : ''}`,
      `Services affected: ${components}`,
      'Number of devices / users affected: [to fill: number and categories]',
      'Personal data involved: [to fill: yes/no, categories, approximate number of records]',
      'Suspected cause (unlawful or malicious act?): [to fill]',
      'Cross-border impact: [to fill]',
      `Measures taken: ${actions.length ? actions.map((a) => `${iso(a.at)} ${a.text}`).join('; ') : '[to fill]'}`,
      'Contact point: [to fill: name, role, phone, email]',
    ].join('\n'),
  };
}
