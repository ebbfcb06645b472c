/**
 * report.html: one self-contained page (inline CSS and SVG, no script, no external asset) with the
 * verdict, expectations, scores, the per-second charts and the timeline.
 */
import type { SecondSample } from '../scenarios/types.js';
import type { Report } from './build.js';
import { expectationTag, expectationThreshold, expectationValue, fmt, metLine } from './format.js';
import { PHASE_HEADERS, phaseRows, scoreRows } from './markdown.js';
import { histogramQuantile } from './scores.js';
import { type ChartMarker, escapeXml as esc, lineChart } from './svg.js';

const C = {
  blue: '#1565c0',
  teal: '#00897b',
  orange: '#ef6c00',
  red: '#c62828',
  purple: '#6a1b9a',
  grey: '#757575',
  green: '#2e7d32',
};

function sumValues(r: Record<string, number>): number {
  return Object.values(r).reduce((a, b) => a + b, 0);
}

function charts(r: Report): string[] {
  const s = r.seconds;
  const t = s.map((x) => x.t);
  const markers: ChartMarker[] = r.events
    .filter((e) => e.kind !== 'note' && e.t <= r.params.durationS)
    .map((e) => ({ t: e.t, label: shortLabel(e.label), kind: e.kind as ChartMarker['kind'] }));
  for (const a of r.alerts.filter((a) => a.state === 'firing')) {
    markers.push({ t: a.t, label: `alert: ${a.name}`, kind: 'alert' });
  }
  const fault = r.events.find((e) => e.kind === 'fault');
  const repair = [...r.events].reverse().find((e) => e.kind === 'repair');
  const band = fault ? { from: fault.t, to: repair ? repair.t : fault.t } : null;
  const common = { t, markers, band };
  const col = (f: (x: SecondSample) => number | null) => s.map(f);
  const out: string[] = [];
  out.push(
    lineChart({
      ...common,
      title: 'Connected devices',
      unit: 'devices',
      series: [
        { name: 'fleet (client side)', color: C.blue, values: col((x) => x.connected) },
        {
          name: 'broker connections',
          color: C.teal,
          values: col((x) => x.brokerConnections),
          dashed: true,
        },
      ],
      references: [{ value: r.params.devices, label: `fleet size ${fmt(r.params.devices)}`, color: C.grey }],
    }),
  );
  out.push(
    lineChart({
      ...common,
      title: 'Connection attempts and refusals per second',
      unit: 'per second',
      series: [
        { name: 'attempts (fleet)', color: C.orange, values: col((x) => x.attempts) },
        { name: 'CONNECTs (broker)', color: C.purple, values: col((x) => x.brokerAttempts), dashed: true },
        { name: 'refused', color: C.red, values: col((x) => sumValues(x.refusals)) },
      ],
    }),
  );
  if (s.some((x) => x.backendQueries !== null)) {
    out.push(
      lineChart({
        ...common,
        title: 'Auth backend calls per second',
        unit: 'calls/s',
        series: [
          { name: 'backend calls', color: C.red, values: col((x) => x.backendQueries) },
          {
            name: 'calls not made (limit, wait, breaker)',
            color: C.grey,
            values: col((x) => (x.backendQueries === null ? null : sumValues(x.backendRejected))),
            dashed: true,
          },
          { name: 'CONNECTs (broker)', color: C.purple, values: col((x) => x.brokerAttempts), dashed: true },
        ],
      }),
    );
    out.push(
      lineChart({
        ...common,
        title: 'Auth backend latency, p99 of each second (broker histogram)',
        unit: 'ms',
        series: [
          {
            name: 'p99 latency',
            color: C.red,
            values: col((x) => {
              const q = x.backendLatency ? histogramQuantile(0.99, x.backendLatency) : null;
              return q === null ? null : Math.round(q * 10_000) / 10;
            }),
          },
        ],
      }),
    );
    out.push(
      lineChart({
        ...common,
        title: 'Auth backend: adaptive limit and calls in flight (end of each second)',
        unit: 'calls',
        series: [
          { name: 'limit', color: C.teal, values: col((x) => x.backendLimit), dashed: true },
          { name: 'in flight', color: C.blue, values: col((x) => x.backendInflight) },
        ],
      }),
    );
  }
  if (s.some((x) => x.openSockets !== null || x.openFds !== null)) {
    out.push(
      lineChart({
        ...common,
        title: 'Broker sockets and process file descriptors',
        unit: 'count',
        series: [
          { name: 'broker open sockets', color: C.blue, values: col((x) => x.openSockets) },
          { name: 'sockets without CONNECT', color: C.red, values: col((x) => x.socketsWithoutConnect) },
          {
            name: r.broker.kind === 'in-process' ? 'process FDs (broker + simulator)' : 'broker process FDs',
            color: C.grey,
            values: col((x) => x.openFds),
            dashed: true,
          },
        ],
      }),
    );
  }
  out.push(
    lineChart({
      ...common,
      title: 'Messages per second',
      unit: 'messages/s',
      series: [
        { name: 'published (fleet)', color: C.orange, values: col((x) => x.published) },
        { name: 'in (broker)', color: C.blue, values: col((x) => x.messagesIn), dashed: true },
        { name: 'out (broker)', color: C.teal, values: col((x) => x.messagesOut), dashed: true },
        { name: 'delivered (probe)', color: C.green, values: col((x) => x.delivered) },
      ],
    }),
  );
  const extraNames = [...new Set(s.flatMap((x) => Object.keys(x.extra)))];
  if (extraNames.length) {
    const palette = [C.red, C.purple, C.teal, C.orange];
    out.push(
      lineChart({
        ...common,
        title: 'Scenario series',
        unit: 'per second',
        series: extraNames.map((n, i) => ({
          name: n,
          color: palette[i % palette.length] as string,
          values: col((x) => x.extra[n] ?? null),
        })),
      }),
    );
  }
  return out;
}

function shortLabel(label: string): string {
  const first = label.split(/[:(]/)[0]?.trim() ?? label;
  return first.length > 48 ? `${first.slice(0, 45)}…` : first;
}

const CSS = `
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;margin:0;background:#f6f7f9;color:#1d1d1f;line-height:1.45}
main{max-width:980px;margin:0 auto;padding:24px 28px 48px}
h1{font-size:24px;margin:0 0 4px}
h2{font-size:17px;margin:28px 0 10px;border-bottom:1px solid #dcdfe4;padding-bottom:4px}
.meta{color:#555;font-size:13px;margin:6px 0 14px}
.verdict{display:inline-block;font-weight:700;font-size:15px;padding:4px 12px;border-radius:4px;color:#fff;margin-right:8px}
.pass{background:#2e7d32}.fail{background:#c62828}.base{background:#757575}
.summary{font-size:14px;margin:10px 0}
table{border-collapse:collapse;width:100%;font-size:13.5px;background:#fff}
th,td{border:1px solid #e0e3e8;padding:6px 8px;text-align:left;vertical-align:top}
th{background:#eef1f5;font-weight:600}
td.num{text-align:right;white-space:nowrap;font-variant-numeric:tabular-nums}
.tag{font-weight:700;font-size:12px;padding:1px 7px;border-radius:3px;color:#fff;white-space:nowrap}
.chart{background:#fff;border:1px solid #e0e3e8;border-radius:4px;margin:12px 0;padding:6px}
.detail{color:#555;font-size:12.5px}
ul.timeline{font-size:13.5px;padding-left:18px}
.k-fault{color:#c62828;font-weight:600}.k-repair{color:#2e7d32;font-weight:600}.k-action{color:#6a1b9a;font-weight:600}.k-alert{color:#ef6c00;font-weight:600}
.scores{display:grid;grid-template-columns:repeat(auto-fill,minmax(210px,1fr));gap:10px}
.score{background:#fff;border:1px solid #e0e3e8;border-radius:4px;padding:8px 10px}
.score .k{font-size:12px;color:#555}.score .v{font-size:18px;font-weight:600;margin-top:2px}
.score .n{font-size:11.5px;color:#666;margin-top:2px;overflow-wrap:anywhere}
.legend-note{font-size:12px;color:#666;margin:4px 0 0}
`;

export function renderHtml(r: Report): string {
  const p = r.params;
  const rows = r.expectations
    .map(
      (e) =>
        `<tr><td><span class="tag ${e.pass ? 'pass' : e.notJudged ? 'base' : 'fail'}">${esc(expectationTag(e).toUpperCase())}</span></td><td>${esc(e.name)}${e.detail ? `<div class="detail">${esc(e.detail)}</div>` : ''}${e.notJudged ? `<div class="detail">not judged: ${esc(e.notJudged)}</div>` : ''}</td><td class="num">${esc(expectationValue(e))}</td><td class="num">${esc(expectationThreshold(e))}</td></tr>`,
    )
    .join('');
  const scores = scoreRows(r)
    .map(
      (row) =>
        `<div class="score"><div class="k">${esc(row.name)}</div><div class="v">${esc(row.value)}</div>${row.note ? `<div class="n">${esc(row.note)}</div>` : ''}</div>`,
    )
    .join('');
  const events = [
    ...r.events.map((e) => ({ t: e.t, kind: e.kind, label: e.label })),
    ...r.alerts.map((a) => ({ t: a.t, kind: 'alert', label: `${a.state}: ${a.name} (${a.severity})` })),
  ]
    .sort((a, b) => a.t - b.t)
    .map(
      (e) =>
        `<li>t=${fmt(e.t)} s — ${e.kind === 'note' ? '' : `<span class="k-${e.kind}">${esc(e.kind)}</span>: `}${esc(e.label)}</li>`,
    )
    .join('');
  const totals = r.broker.totals;
  const totalsHtml = totals
    ? `<table><tr><th>connection attempts</th><th>auth backend calls</th><th>messages in</th><th>messages out</th><th>dropped by the broker</th><th>auth outcomes</th><th>admission refusals</th><th>backend calls not made</th><th>flapping bans</th></tr><tr><td class="num">${fmt(totals.connectionAttempts)}</td><td class="num">${fmt(totals.authBackendQueries)}</td><td class="num">${fmt(totals.messagesIn)}</td><td class="num">${fmt(totals.messagesOut)}</td><td>${esc(
        Object.entries(totals.messagesDropped)
          .map(([k, v]) => `${k} ${fmt(v)}`)
          .join(', ') || '—',
      )}</td><td>${esc(
        Object.entries(totals.authOutcomes)
          .map(([k, v]) => `${k} ${fmt(v)}`)
          .join(', ') || '—',
      )}</td><td>${esc(
        Object.entries(totals.admissionRefusals)
          .map(([k, v]) => `${k} ${fmt(v)}`)
          .join(', ') || '—',
      )}</td><td>${esc(
        Object.entries(totals.backendRejected ?? {})
          .map(([k, v]) => `${k} ${fmt(v)}`)
          .join(', ') || '—',
      )}</td><td class="num">${fmt(totals.flappingBans ?? 0)}</td></tr></table>`
    : '<p class="detail">No /metrics scrape succeeded.</p>';
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>Game day ${esc(r.scenario.name)}: ${r.passed ? 'passed' : 'failed'}</title>
<style>${CSS}</style></head>
<body><main>
<h1>Game day: ${esc(r.scenario.title)}</h1>
<div class="meta">${esc(r.scenario.name)} · cell <b>${esc(p.cell)}</b> · ${fmt(p.devices)} devices · ${p.durationS} s · time scale ${p.timeScale} · policy ${esc(p.policy)} · protections <b>${p.protections}</b> · ${esc(p.target ?? 'in-process Breakwater')} · ${esc(r.startedAt)}</div>
<div><span class="verdict ${r.passed ? 'pass' : 'fail'}">${r.passed ? 'PASSED' : 'FAILED'}</span><b>${esc(metLine(r.expectations))}</b></div>
<p class="summary">${esc(r.scenario.summary)}</p>
${p.protections === 'off' ? `<p class="summary"><b>Protections off:</b> ${esc(r.scenario.weakened)}.</p>` : ''}
<h2>Expectations</h2>
<table><tr><th style="width:60px"></th><th>expectation</th><th style="width:150px">measured</th><th style="width:130px">threshold</th></tr>${rows}</table>
<h2>Scores</h2>
<div class="scores">${scores}</div>
<h2>Phases</h2>
<table><tr>${PHASE_HEADERS.map((h) => `<th>${esc(h)}</th>`).join('')}</tr>${phaseRows(r)
    .map(
      (row) =>
        `<tr>${row.map((c, i) => `<td${i > 0 && i < 9 ? ' class="num"' : ''}>${esc(c)}</td>`).join('')}</tr>`,
    )
    .join('')}</table>
<h2>Per second</h2>
<p class="legend-note">Shaded: fault to repair. Dashed verticals: <span class="k-fault">fault</span>, <span class="k-repair">repair</span>, <span class="k-action">action</span>${r.alerts.length ? ', <span class="k-alert">alert fired</span> (named in the timeline)' : ''}.</p>
${charts(r)
  .map((c) => `<div class="chart">${c}</div>`)
  .join('\n')}
<h2>Broker totals <span class="detail">(its own /metrics, first to last scrape)</span></h2>
${totalsHtml}
<h2>Timeline</h2>
<ul class="timeline">${events}</ul>
</main></body></html>
`;
}
