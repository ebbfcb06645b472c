/** summary.md: the verdict, the scores, the expectations and the timeline, for a PR or a ticket. */
import type { Report } from './build.js';
import { expectationThreshold, expectationValue, fmt, withUnit } from './format.js';

function cell(s: string): string {
  return s.replaceAll('|', '\\|').replaceAll('\n', ' ');
}

export interface ScoreRow {
  name: string;
  value: string;
  note: string | null;
}

export function scoreRows(r: Report): ScoreRow[] {
  const s = r.scores;
  return [
    {
      name: 'Time to detect (first alert after the fault)',
      value: s.timeToDetectS === null ? 'n/a' : `${fmt(s.timeToDetectS)} s`,
      note: s.timeToDetectNote,
    },
    {
      name: 'Peak connection attempts/min',
      value: fmt(s.peakAttemptsPerMin),
      note: 'fleet side, rolling 60 s',
    },
    { name: 'Peak auth backend queries/s', value: fmt(s.peakBackendQueriesPerSec), note: null },
    {
      name: 'Time to 99 % reconnected',
      value: withUnit(s.timeTo99ReconnectedS, 's'),
      note: r.events.some((e) => e.kind === 'repair') ? 'after the repair' : 'after the fault',
    },
    {
      name: 'QoS 1 messages lost',
      value: s.qos1Lost === null ? 'n/a' : fmt(s.qos1Lost),
      note:
        s.qos1Lost === null
          ? 'no QoS probe'
          : `${fmt(s.qos1Acked)} acked by the broker, ${fmt(s.qos1Delivered)} delivered`,
    },
    {
      name: 'FD peak',
      value: fmt(s.fdPeak),
      note: r.broker.kind === 'in-process' ? 'one process: broker + simulator' : 'broker process',
    },
    { name: 'Broker open sockets peak', value: fmt(s.openSocketsPeak), note: null },
  ];
}

export function renderMarkdown(r: Report): string {
  const p = r.params;
  const lines: string[] = [];
  lines.push(`# Game day: ${r.scenario.title}`);
  lines.push('');
  lines.push(
    `**${r.passed ? 'PASSED' : 'FAILED'}** — ${r.expectations.filter((e) => e.pass).length} of ${r.expectations.length} expectations met.`,
  );
  lines.push('');
  lines.push(r.scenario.summary);
  lines.push('');
  lines.push(
    `Scenario \`${r.scenario.name}\` · ${fmt(p.devices)} devices · ${p.durationS} s · time scale ${p.timeScale} · reconnect policy ${p.policy} · protections **${p.protections}**${p.protections === 'off' ? ` (${r.scenario.weakened})` : ''} · broker ${p.target ?? 'in-process Breakwater'} · seed ${p.seed} · ${r.startedAt}`,
  );
  lines.push('');
  lines.push('## Expectations');
  lines.push('');
  lines.push('| | expectation | measured | threshold | detail |');
  lines.push('|---|---|---|---|---|');
  for (const e of r.expectations) {
    lines.push(
      `| ${e.pass ? '✅ pass' : '❌ fail'} | ${cell(e.name)} | ${cell(expectationValue(e))} | ${cell(expectationThreshold(e))} | ${cell(e.detail ?? '')} |`,
    );
  }
  lines.push('');
  lines.push('## Scores');
  lines.push('');
  lines.push('| score | value |');
  lines.push('|---|---|');
  for (const row of scoreRows(r)) {
    lines.push(`| ${row.name} | ${cell(row.value)}${row.note ? ` (${cell(row.note)})` : ''} |`);
  }
  lines.push('');
  const t = r.broker.totals;
  if (t) {
    lines.push('## Broker totals (its own /metrics, first to last scrape)');
    lines.push('');
    lines.push(`- connection attempts: ${fmt(t.connectionAttempts)}`);
    lines.push(`- auth backend queries: ${fmt(t.authBackendQueries)}`);
    lines.push(`- messages in / out: ${fmt(t.messagesIn)} / ${fmt(t.messagesOut)}`);
    const outcomes = Object.entries(t.authOutcomes);
    if (outcomes.length)
      lines.push(`- auth outcomes: ${outcomes.map(([k, v]) => `${k} ${fmt(v)}`).join(', ')}`);
    const dropped = Object.entries(t.messagesDropped);
    if (dropped.length)
      lines.push(`- messages dropped: ${dropped.map(([k, v]) => `${k} ${fmt(v)}`).join(', ')}`);
    const refusals = Object.entries(t.admissionRefusals);
    if (refusals.length)
      lines.push(`- admission refusals: ${refusals.map(([k, v]) => `${k} ${fmt(v)}`).join(', ')}`);
    if (r.broker.scrapeErrors)
      lines.push(`- failed scrapes: ${r.broker.scrapeErrors} (${r.broker.lastScrapeError})`);
    lines.push('');
  }
  lines.push('## Timeline');
  lines.push('');
  for (const e of r.events)
    lines.push(`- t=${e.t} s — ${e.kind === 'note' ? '' : `**${e.kind}**: `}${e.label}`);
  for (const a of r.alerts) lines.push(`- t=${a.t} s — alert ${a.state}: ${a.name} (${a.severity})`);
  lines.push('');
  const m = Object.entries(r.measurements);
  if (m.length) {
    lines.push('## Measurements');
    lines.push('');
    for (const [k, v] of m) lines.push(`- ${k}: ${typeof v === 'number' ? fmt(v, 3) : String(v)}`);
    lines.push('');
  }
  lines.push('Per-second series: `report.json` (`seconds`); charts: `report.html`.');
  lines.push('');
  return lines.join('\n');
}
