/**
 * The postmortem draft (`GET /api/v1/incidents/:id/postmortem`, `breakwater incident postmortem`):
 * everything the incident knows, filled in; what only people know (root cause, what went well or
 * badly, action items) left as prompts. Blameless by construction: it lists what happened and
 * when, not who got it wrong.
 */
import { formatDuration } from './lifecycle.js';
import type { IncidentDetail } from './manager.js';
import { incidentRef } from './model.js';

export function iso(ms: number | null): string {
  return ms === null ? '—' : new Date(ms).toISOString().replace('.000Z', 'Z');
}

/** Markdown table cells: no pipes or newlines from user text. */
function cell(text: string): string {
  return text.replaceAll('|', '\\|').replace(/\s*\n\s*/g, ' ');
}

export function postmortemMarkdown(d: IncidentDetail, generatedAt: number): string {
  const i = d.incident;
  const ref = incidentRef(i.id);
  const t = d.durations;
  const firstAlert = d.alerts[0];
  const actions = d.timeline.filter((e) => e.kind === 'action');
  const updates = d.timeline.filter((e) => e.kind === 'update');
  const lines: string[] = [
    `# Postmortem draft: ${ref} ${i.title}`,
    '',
    `_Draft generated ${iso(generatedAt)} from the incident record. Blameless: describe what happened and why the system allowed it, not who._`,
    '',
    '## Summary',
    '',
    `| | |`,
    `|---|---|`,
    `| Incident | ${ref} |`,
    `| Type | ${i.type} |`,
    `| Severity | ${i.severity} |`,
    `| State | ${i.state} |`,
    `| Commander | ${cell(i.commander ?? '—')} |`,
    `| Runbook | ${i.runbook} (${d.runbook.path}) |`,
    `| Started (first abnormal sample) | ${iso(i.startedAt)} |`,
    `| Detected | ${iso(i.detectedAt)} |`,
    `| Acknowledged | ${iso(i.acknowledgedAt)} |`,
    `| Mitigated | ${iso(i.mitigatedAt)} |`,
    `| Resolved | ${iso(i.resolvedAt)} |`,
    '',
    '_One paragraph: what broke, for whom, for how long, how it was fixed._',
    '',
    '## Impact',
    '',
    `- Components affected: ${i.components.join(', ') || '—'}`,
    `- Duration of impact (start to mitigation): ${formatDuration(t.ttmMs)}; to resolution: ${formatDuration(t.ttrMs)}`,
    `- Customer-facing updates posted: ${updates.length}`,
    '- Devices affected: _to fill (e.g. from `breakwater` device counts by state)_',
    '- Data lost or delayed: _to fill_',
    '',
    '## Timeline',
    '',
    '| time (UTC) | kind | who | what |',
    '|---|---|---|---|',
    ...d.timeline.map((e) => `| ${iso(e.at)} | ${e.kind} | ${cell(e.actor)} | ${cell(e.text)} |`),
    '',
    '## Detection',
    '',
  ];
  if (firstAlert) {
    lines.push(
      `- Detected by alert **${firstAlert.name}** (rule \`${firstAlert.ruleId}\`), value ${firstAlert.value} against threshold ${firstAlert.threshold}.`,
      `- Alerts on this incident: ${d.alerts.map((a) => `${a.name}${a.firing ? ' (still firing)' : ''}`).join(', ')}.`,
    );
  } else {
    lines.push(
      `- Declared manually by ${cell(i.createdBy)} (no alert fired). Which alert would have caught it?`,
    );
  }
  lines.push(
    `- Time to detect (TTD): **${formatDuration(t.ttdMs)}** (first abnormal sample ${iso(i.startedAt)} → detection ${iso(i.detectedAt)}).`,
    '',
    '## Response',
    '',
    `- Time to acknowledge (TTA): **${formatDuration(t.ttaMs)}** (from detection)`,
    `- Time to mitigate (TTM): **${formatDuration(t.ttmMs)}** (from start)`,
    `- Time to resolve (TTR): **${formatDuration(t.ttrMs)}** (from start)`,
    '',
    'Actions taken (kill switches and break-glass, from the audit logs):',
    '',
    ...(actions.length
      ? actions.map((a) => `- ${iso(a.at)} ${cell(a.actor)}: ${cell(a.text)}`)
      : ['- _none recorded_']),
    '',
    '## Root cause',
    '',
    '_To fill: the chain of causes (five whys), including why safeguards did not stop it._',
    '',
    '## What went well',
    '',
    '- _to fill_',
    '',
    '## What went badly',
    '',
    '- _to fill_',
    '',
    '## Where we got lucky',
    '',
    '- _to fill_',
    '',
    '## Action items',
    '',
    '| action | type (prevent / detect / mitigate) | owner | due date | ticket |',
    '|---|---|---|---|---|',
    '| _to fill_ | | | YYYY-MM-DD | |',
    '',
  );
  return lines.join('\n');
}
