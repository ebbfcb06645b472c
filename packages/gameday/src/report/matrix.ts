/**
 * The matrix report (`--matrix`): one table with a row per cell (protections × firmware × auth
 * cache) and the scores issue 11 asks for — time to 99 % connected after the start, the fault and
 * the repair, backend calls per CONNECT, peak backend calls/s, backend p99 — plus each cell's
 * failed expectations. Every cell also gets its full report in its own directory.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { MatrixCell, PhaseName, PhaseScore } from '../scenarios/types.js';
import type { ExpectationOutcome, Report } from './build.js';
import { expectationThreshold, expectationValue, fmt, withUnit } from './format.js';
import { escapeXml as esc } from './svg.js';
import { writeReport } from './write.js';

/** One cell's outcome, as the matrix report lists it. */
export interface MatrixCellResult {
  cell: MatrixCell;
  name: string;
  /** Sub-directory of the cell's own report (report.json, summary.md, report.html). */
  slug: string;
  report: Report;
}

export interface MatrixReport {
  version: number;
  kind: 'matrix';
  scenario: Report['scenario'] & { matrixNotes: string | null };
  params: {
    devices: number;
    durationS: number;
    timeScale: number;
    target: string | null;
    seed: number;
  };
  startedAt: string;
  finishedAt: string;
  /**
   * Every cell with protections on passed. Cells with protections off are the weakened baseline:
   * they are expected to fail, and are reported, not judged.
   */
  passed: boolean;
  cells: MatrixCellResult[];
}

export const MATRIX_REPORT_VERSION = 1;

export function matrixPassed(cells: readonly MatrixCellResult[]): boolean {
  return cells.filter((c) => c.cell.protections === 'on').every((c) => c.report.passed);
}

function phase(r: Report, name: PhaseName): PhaseScore | null {
  return r.scores.phases.find((p) => p.name === name) ?? null;
}

function time99(p: PhaseScore | null): string {
  if (!p) return '—';
  if (p.timeTo99S !== null) return `${fmt(p.timeTo99S)} s`;
  return p.target > 0 ? 'never' : 'n/a';
}

/** The labels the scenario gives its fault and repair ("drop", "fix"), from any cell that has them. */
function labels(m: MatrixReport): { fault: string; repair: string } {
  const out = { fault: 'fault', repair: 'repair' };
  for (const c of m.cells) {
    const f = phase(c.report, 'fault');
    const r = phase(c.report, 'repair');
    if (f) out.fault = f.label;
    if (r) out.repair = r.label;
  }
  return out;
}

export interface MatrixRow {
  cell: string;
  verdict: string;
  passed: boolean;
  afterStart: string;
  afterFault: string;
  afterRepair: string;
  callsPerConnect: string;
  peakCallsPerSec: string;
  backendP99: string;
  peakAttemptsPerMin: string;
  flappingBans: string;
  qos1Lost: string;
  failed: ExpectationOutcome[];
}

export function matrixRows(m: MatrixReport): MatrixRow[] {
  return m.cells.map((c) => {
    const r = c.report;
    const s = r.scores;
    const judged = r.expectations.filter((e) => !e.notJudged);
    const met = judged.filter((e) => e.pass).length;
    return {
      cell: c.name,
      verdict: `${r.passed ? 'PASS' : 'FAIL'} ${met}/${judged.length}`,
      passed: r.passed,
      afterStart: time99(phase(r, 'start')),
      afterFault: time99(phase(r, 'fault')),
      afterRepair: time99(phase(r, 'repair')),
      callsPerConnect: s.phases.map((p) => fmt(p.backendCallsPerAttempt, 3)).join(' · '),
      peakCallsPerSec: fmt(s.peakBackendQueriesPerSec),
      backendP99: withUnit(s.backendP99Ms, 'ms'),
      peakAttemptsPerMin: fmt(s.peakAttemptsPerMin),
      flappingBans: s.flappingBans === null ? 'n/a' : fmt(s.flappingBans),
      qos1Lost: s.qos1Lost === null ? 'n/a' : fmt(s.qos1Lost),
      failed: r.expectations.filter((e) => !e.pass),
    };
  });
}

function headers(m: MatrixReport): string[] {
  const l = labels(m);
  return [
    'cell (protections/firmware/cache)',
    'result',
    '99 % connected after start',
    `after the ${l.fault}`,
    `after the ${l.repair}`,
    'backend calls / CONNECT (per phase)',
    'peak backend calls/s',
    'backend p99',
    'peak attempts/min',
    'flapping bans',
    'QoS 1 lost',
  ];
}

function rowCells(r: MatrixRow): string[] {
  return [
    r.cell,
    r.verdict,
    r.afterStart,
    r.afterFault,
    r.afterRepair,
    r.callsPerConnect,
    r.peakCallsPerSec,
    r.backendP99,
    r.peakAttemptsPerMin,
    r.flappingBans,
    r.qos1Lost,
  ];
}

function mdCell(s: string): string {
  return s.replaceAll('|', '\\|').replaceAll('\n', ' ');
}

function verdictLine(m: MatrixReport): string {
  const on = m.cells.filter((c) => c.cell.protections === 'on');
  const off = m.cells.filter((c) => c.cell.protections === 'off');
  const parts = [`protections on: ${on.filter((c) => c.report.passed).length} of ${on.length} cells passed`];
  if (off.length)
    parts.push(
      `protections off (the weakened baseline, reported, not judged): ${off.filter((c) => !c.report.passed).length} of ${off.length} failed`,
    );
  return parts.join('; ');
}

export function renderMatrixMarkdown(m: MatrixReport): string {
  const p = m.params;
  const lines: string[] = [];
  lines.push(`# Game-day matrix: ${m.scenario.title}`);
  lines.push('');
  lines.push(`**${m.passed ? 'PASSED' : 'FAILED'}** — ${verdictLine(m)}.`);
  lines.push('');
  lines.push(m.scenario.summary);
  lines.push('');
  if (m.scenario.matrixNotes) {
    lines.push(`Cells: ${m.scenario.matrixNotes}`);
    lines.push('');
  }
  lines.push(
    `Scenario \`${m.scenario.name}\` · ${fmt(p.devices)} devices · ${p.durationS} s · time scale ${p.timeScale} · broker ${p.target ?? 'in-process Breakwater'} · seed ${p.seed} · ${m.startedAt} – ${m.finishedAt}. Protections off: ${m.scenario.weakened}. Firmware fleet: the device SDK's policy (5-15 s, 30-120 s, then 5-10 min, jittered; the server's retry-after-ms is a lower bound); naive: a fixed 1 s retry.`,
  );
  lines.push('');
  const h = headers(m);
  lines.push(`| ${h.join(' | ')} |`);
  lines.push(`|${h.map(() => '---').join('|')}|`);
  for (const r of matrixRows(m)) lines.push(`| ${rowCells(r).map(mdCell).join(' | ')} |`);
  lines.push('');
  lines.push(
    'Times count from the start of each phase until 99 % of the devices that phase expects were connected (1 s resolution); "never" = not within the phase. Backend calls / CONNECT: calls the broker made to its auth backend per CONNECT it received, per phase (start · fault · repair). Backend p99: the broker\'s latency histogram over the run, interpolated as PromQL histogram_quantile does.',
  );
  lines.push('');
  const failing = matrixRows(m).filter((r) => r.failed.length);
  if (failing.length) {
    lines.push('## Expectations that failed');
    lines.push('');
    for (const r of failing) {
      lines.push(`- **${r.cell}**`);
      for (const e of r.failed)
        lines.push(
          `  - ${e.notJudged ? '(not judged) ' : ''}${e.name}: ${expectationValue(e)} (${expectationThreshold(e)})${e.detail ? ` — ${e.detail}` : ''}${e.notJudged ? ` — not judged: ${e.notJudged}` : ''}`,
        );
    }
    lines.push('');
  }
  lines.push('## Cells');
  lines.push('');
  for (const c of m.cells) {
    const t = c.report.broker.totals;
    const outcomes = t
      ? Object.entries(t.authOutcomes)
          .map(([k, v]) => `${k} ${fmt(v)}`)
          .join(', ')
      : 'n/a';
    lines.push(
      `- [${c.name}](${c.slug}/summary.md): ${fmt(t?.connectionAttempts)} CONNECTs, ${fmt(t?.authBackendQueries)} backend calls; auth outcomes ${outcomes || '—'}`,
    );
  }
  lines.push('');
  return lines.join('\n');
}

const CSS = `
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;margin:0;background:#f6f7f9;color:#1d1d1f;line-height:1.45}
main{max-width:1200px;margin:0 auto;padding:24px 28px 48px}
h1{font-size:24px;margin:0 0 4px}
h2{font-size:17px;margin:28px 0 10px;border-bottom:1px solid #dcdfe4;padding-bottom:4px}
.meta{color:#555;font-size:13px;margin:6px 0 14px}
.verdict{display:inline-block;font-weight:700;font-size:15px;padding:4px 12px;border-radius:4px;color:#fff;margin-right:8px}
.pass{background:#2e7d32}.fail{background:#c62828}.base{background:#757575}
.summary{font-size:14px;margin:10px 0}
table{border-collapse:collapse;width:100%;font-size:13px;background:#fff}
th,td{border:1px solid #e0e3e8;padding:6px 8px;text-align:left;vertical-align:top}
th{background:#eef1f5;font-weight:600}
td.num{text-align:right;white-space:nowrap;font-variant-numeric:tabular-nums}
.tag{font-weight:700;font-size:12px;padding:1px 7px;border-radius:3px;color:#fff;white-space:nowrap}
.detail{color:#555;font-size:12.5px}
tr.off td{background:#fafafa}
`;

export function renderMatrixHtml(m: MatrixReport): string {
  const p = m.params;
  const rows = matrixRows(m);
  const h = headers(m);
  const body = rows
    .map((r, i) => {
      const c = m.cells[i] as MatrixCellResult;
      const cls = r.passed ? 'pass' : c.cell.protections === 'off' ? 'base' : 'fail';
      const cells = rowCells(r);
      return `<tr class="${c.cell.protections}"><td><a href="${esc(c.slug)}/report.html">${esc(r.cell)}</a></td><td><span class="tag ${cls}">${esc(r.verdict)}</span></td>${cells
        .slice(2)
        .map((v) => `<td class="num">${esc(v)}</td>`)
        .join('')}</tr>`;
    })
    .join('');
  const failing = rows
    .filter((r) => r.failed.length)
    .map(
      (r) =>
        `<li><b>${esc(r.cell)}</b><ul>${r.failed
          .map(
            (e) =>
              `<li>${e.notJudged ? '(not judged) ' : ''}${esc(e.name)}: ${esc(expectationValue(e))} (${esc(expectationThreshold(e))})${e.detail ? ` <span class="detail">— ${esc(e.detail)}</span>` : ''}${e.notJudged ? ` <span class="detail">— not judged: ${esc(e.notJudged)}</span>` : ''}</li>`,
          )
          .join('')}</ul></li>`,
    )
    .join('');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>Game-day matrix ${esc(m.scenario.name)}: ${m.passed ? 'passed' : 'failed'}</title>
<style>${CSS}</style></head>
<body><main>
<h1>Game-day matrix: ${esc(m.scenario.title)}</h1>
<div class="meta">${esc(m.scenario.name)} · ${fmt(p.devices)} devices · ${p.durationS} s · time scale ${p.timeScale} · ${esc(p.target ?? 'in-process Breakwater')} · seed ${p.seed} · ${esc(m.startedAt)}</div>
<div><span class="verdict ${m.passed ? 'pass' : 'fail'}">${m.passed ? 'PASSED' : 'FAILED'}</span>${esc(verdictLine(m))}</div>
<p class="summary">${esc(m.scenario.summary)}</p>
${m.scenario.matrixNotes ? `<p class="summary"><b>Cells:</b> ${esc(m.scenario.matrixNotes)}</p>` : ''}
<p class="summary"><b>Protections off:</b> ${esc(m.scenario.weakened)}. <b>Firmware fleet:</b> the device SDK's policy (jittered 5-15 s, 30-120 s, then 5-10 min; the server's retry-after-ms is a lower bound). <b>Naive:</b> a fixed 1 s retry.</p>
<h2>Matrix</h2>
<table><tr>${h.map((x) => `<th>${esc(x)}</th>`).join('')}</tr>${body}</table>
<p class="detail">Times count from the start of each phase until 99 % of the devices that phase expects were connected (1 s resolution); "never" = not within the phase. Backend calls / CONNECT per phase (start · fault · repair). Backend p99 from the broker's histogram, interpolated as PromQL histogram_quantile does. Each cell links to its full report (charts, phases, timeline).</p>
${failing ? `<h2>Expectations that failed</h2><ul>${failing}</ul>` : ''}
</main></body></html>
`;
}

/** What matrix.json holds per cell: the scores and outcomes, not the per-second series. */
function compact(m: MatrixReport): unknown {
  return {
    ...m,
    cells: m.cells.map((c) => ({
      cell: c.cell,
      name: c.name,
      slug: c.slug,
      passed: c.report.passed,
      params: c.report.params,
      scores: c.report.scores,
      expectations: c.report.expectations,
      totals: c.report.broker.totals,
      measurements: c.report.measurements,
      events: c.report.events,
    })),
  };
}

/** Writes `<dir>/<cell>/` (each cell's full report) and the matrix files: matrix.json, summary.md, report.html. */
export async function writeMatrixReport(
  m: MatrixReport,
  dir: string,
  options: { cells?: boolean } = {},
): Promise<{ dir: string; json: string; markdown: string; html: string }> {
  const abs = resolve(dir);
  await mkdir(abs, { recursive: true });
  if (options.cells !== false) {
    for (const c of m.cells) await writeReport(c.report, join(abs, c.slug));
  }
  const json = join(abs, 'matrix.json');
  const markdown = join(abs, 'summary.md');
  const html = join(abs, 'report.html');
  await writeFile(json, `${JSON.stringify(compact(m), null, 2)}\n`);
  await writeFile(markdown, renderMatrixMarkdown(m));
  await writeFile(html, renderMatrixHtml(m));
  return { dir: abs, json, markdown, html };
}
