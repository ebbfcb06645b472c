/** summary.md: the verdict, the scores, the expectations and the timeline, for a PR or a ticket. */
import type { Report } from './build.js';
import { expectationTag, expectationThreshold, expectationValue, fmt, metLine, withUnit } from './format.js';

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
    {
      name: 'Time to 99 % connected',
      value: phaseTimes(r),
      note: `after ${r.scores.phases.map((x) => x.label).join(' / ')}`,
    },
    { name: 'Peak auth backend calls/s', value: fmt(s.peakBackendQueriesPerSec), note: null },
    {
      name: 'Backend calls per CONNECT',
      value: fmt(s.backendCallsPerAttempt, 3),
      note: r.scores.phases.length > 1 ? `${phaseList(r, (x) => fmt(x.backendCallsPerAttempt, 3))}` : null,
    },
    {
      name: 'Backend latency p99',
      value: withUnit(s.backendP99Ms, 'ms'),
      note: s.backendMeanMs === null ? null : `mean ${fmt(s.backendMeanMs, 2)} ms (broker histogram)`,
    },
    {
      name: 'Flapping bans',
      value: s.flappingBans === null ? 'n/a' : fmt(s.flappingBans),
      note: s.flappingBans === null ? 'no admission control' : null,
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

/** `3.0 s / 8.0 s / never` over the phases. */
export function phaseTimes(r: Report): string {
  return r.scores.phases
    .map((x) => (x.timeTo99S === null ? (x.target > 0 ? 'never' : 'n/a') : `${fmt(x.timeTo99S)} s`))
    .join(' / ');
}

function phaseList(r: Report, f: (x: Report['scores']['phases'][number]) => string): string {
  return r.scores.phases.map((x) => `${x.label} ${f(x)}`).join(', ');
}

function entries(rec: Record<string, number>): string {
  const e = Object.entries(rec).filter(([, v]) => v !== 0);
  return e.length ? e.map(([k, v]) => `${k} ${fmt(v)}`).join(', ') : '—';
}

/** The per-phase table (start, fault, repair) of summary.md. */
export function phaseRows(r: Report): string[][] {
  return r.scores.phases.map((x) => [
    `${x.label} (t=${fmt(x.fromS)}–${fmt(x.toS)} s)`,
    x.timeTo99S === null ? (x.target > 0 ? 'never' : 'n/a') : `${fmt(x.timeTo99S)} s`,
    fmt(x.target),
    fmt(x.fleetAttempts),
    fmt(x.brokerAttempts),
    fmt(x.backendCalls),
    fmt(x.backendCallsPerAttempt, 3),
    fmt(x.peakBackendCallsPerSec),
    withUnit(x.backendP99Ms, 'ms'),
    entries(x.authOutcomes),
    entries(x.backendRejected),
    entries(x.refusals),
  ]);
}

export const PHASE_HEADERS = [
  'phase',
  '99 % connected after',
  'devices counted',
  'attempts (fleet)',
  'CONNECTs (broker)',
  'backend calls',
  'calls / CONNECT',
  'peak calls/s',
  'backend p99',
  'auth outcomes',
  'backend calls not made',
  'refusals seen by devices',
];

export function renderMarkdown(r: Report): string {
  const p = r.params;
  const lines: string[] = [];
  lines.push(`# Game day: ${r.scenario.title}`);
  lines.push('');
  lines.push(`**${r.passed ? 'PASSED' : 'FAILED'}** — ${metLine(r.expectations)}.`);
  lines.push('');
  lines.push(r.scenario.summary);
  lines.push('');
  lines.push(
    `Scenario \`${r.scenario.name}\` · cell **${p.cell}** (protections/firmware/auth cache) · ${fmt(p.devices)} devices${p.initialDevices < p.devices ? ` (${fmt(p.initialDevices)} at start)` : ''} · ${p.durationS} s · time scale ${p.timeScale} · firmware ${p.policy} · protections **${p.protections}**${p.protections === 'off' ? ` (${r.scenario.weakened})` : ''} · broker ${p.target ?? 'in-process Breakwater'} · seed ${p.seed} · ${r.startedAt}`,
  );
  lines.push('');
  lines.push('## Expectations');
  lines.push('');
  lines.push('| | expectation | measured | threshold | detail |');
  lines.push('|---|---|---|---|---|');
  for (const e of r.expectations) {
    lines.push(
      `| ${{ pass: '✅ pass', fail: '❌ fail', 'not judged': '➖ not judged' }[expectationTag(e)]} | ${cell(e.name)} | ${cell(expectationValue(e))} | ${cell(expectationThreshold(e))} | ${cell([e.detail, e.notJudged ? `not judged: ${e.notJudged}` : null].filter(Boolean).join('; '))} |`,
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
  lines.push('## Phases');
  lines.push('');
  lines.push(`| ${PHASE_HEADERS.join(' | ')} |`);
  lines.push(`|${PHASE_HEADERS.map(() => '---').join('|')}|`);
  for (const row of phaseRows(r)) lines.push(`| ${row.map(cell).join(' | ')} |`);
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
    const rejected = Object.entries(t.backendRejected ?? {});
    if (rejected.length)
      lines.push(`- backend calls not made: ${rejected.map(([k, v]) => `${k} ${fmt(v)}`).join(', ')}`);
    lines.push(`- flapping bans: ${fmt(t.flappingBans ?? 0)}`);
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
