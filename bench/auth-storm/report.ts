/**
 * auth-storm.md and auth-storm.svg. The chart is plain SVG written here (no browser, no
 * plotting library): one panel per run, log-scale y (1 .. 10,000) so a 50/s query cap and a
 * 5,000/s retry storm are both readable, the broken-backend period shaded.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fmtNumber, type MachineInfo, machineMarkdown, RESULTS_DIR, table } from '../report.js';
import type { AuthStormOptions, RunResult, Second } from './scenario.js';

const REFUSAL_NAMES: Record<string, string> = {
  '0x86': '0x86 bad user name or password',
  '0x87': '0x87 not authorized',
  '0x88': '0x88 server unavailable (auth backend)',
  '0x89': '0x89 server busy (admission)',
  '0x8a': '0x8a banned (flapping)',
  '0x9f': '0x9f connection rate exceeded (admission)',
  no_connack: 'closed before CONNACK',
};

const fmtS = (s: number | null) => (s === null ? 'never (in the run)' : `${s.toFixed(1)} s`);
const fmtQpa = (v: number | null) => (v === null ? 'n/a' : v < 0.1 ? v.toFixed(4) : v.toFixed(2));
const refusalsOf = (x: Second) => Object.values(x.refused).reduce((a, b) => a + b, 0);
const fmtMap = (m: Record<string, number>) =>
  Object.entries(m)
    .map(([k, v]) => `${k} ${v}`)
    .join(', ') || '—';

export interface Verdict {
  target: string;
  met: boolean;
  detail: string;
}

/** The issue's three targets, checked on the defaults run. */
export function verdicts(run: RunResult): Verdict[] {
  const t = run.totals;
  const cap = run.limits?.ratePerSec ?? 0;
  return [
    {
      target: `backend queries/s never above the cap (${cap}/s)`,
      met: t.peakQueriesPerSec <= cap,
      detail:
        `peak ${t.peakQueriesPerSec}/s at t=${t.peakQueriesAtS} s; ${t.secondsAboveRate} second(s) above ${cap}/s; ` +
        `token-bucket bound burst + rate × T (${run.limits?.burst} + ${cap} × T) ` +
        (t.capBoundExcess !== null && t.capBoundExcess <= 0
          ? 'held over every run of seconds'
          : `exceeded by up to ${t.capBoundExcess}`),
    },
    {
      target: 'backend queries per attempt ≤ 0.01',
      met: t.queriesPerAttempt !== null && t.queriesPerAttempt <= 0.01,
      detail: `${fmtQpa(t.queriesPerAttempt)} over the run (${t.queries} / ${t.attempts}); ${fmtQpa(t.brokenQueriesPerAttempt)} while broken (${t.brokenQueries} / ${t.brokenAttempts})`,
    },
    {
      target: '≥ 99 % of previously connected devices back within 10 s, backend still broken',
      met: t.backWithin10sPct >= 99 && t.recover99BeforeFix,
      detail: `${t.backWithin10s} / ${t.connectedBeforeDrop} (${t.backWithin10sPct.toFixed(2)} %) within 10 s; 99 % back after ${fmtS(t.recover99S)}`,
    },
  ];
}

function phaseSum(run: RunResult, from: number, to: number, f: (x: Second) => number): number {
  return run.seconds.filter((x) => x.t > from && x.t <= to).reduce((a, x) => a + f(x), 0);
}

/** For each missed target: by how much, and what the per-second data says about why. */
function missExplanations(run: RunResult, o: AuthStormOptions): string[] {
  const [cap, perAttempt, recovery] = verdicts(run);
  const t = run.totals;
  const l = run.limits;
  const out: string[] = [];
  if (cap && !cap.met && l) {
    const above = run.seconds.filter((x) => x.queries > l.ratePerSec);
    out.push(
      `- **Cap, per second: missed** by up to ${t.peakQueriesPerSec - l.ratePerSec} queries/s ` +
        `(${above.map((x) => `${x.queries} at t=${x.t} s`).join(', ')}). The cap is a token bucket of ` +
        `${l.ratePerSec}/s with a burst of ${l.burst}: after a quiet period ${l.burst} tokens are banked, so ` +
        `the first second of a wave can pass up to burst + rate = ${l.burst + l.ratePerSec}. ` +
        (t.capBoundExcess !== null && t.capBoundExcess <= 0
          ? `The bucket's own promise (at most ${l.burst} + ${l.ratePerSec} × T over any T seconds) held in every run of seconds. `
          : `The bucket's own bound was exceeded by up to ${t.capBoundExcess} queries. `) +
        'A per-second ceiling of exactly the rate needs burst ≤ rate − (refill within the second), i.e. a smaller burst.',
    );
  }
  if (perAttempt && !perAttempt.met) {
    const startQ = phaseSum(run, 0, o.breakAtS, (x) => x.queries);
    const startA = phaseSum(run, 0, o.breakAtS, (x) => x.attempts);
    out.push(
      `- **Queries per attempt: missed**: ${fmtQpa(t.queriesPerAttempt)} over the run against ≤ 0.01 ` +
        `(${(t.queriesPerAttempt ?? 0) / 0.01 >= 1 ? `${((t.queriesPerAttempt ?? 0) / 0.01).toFixed(1)}×` : ''} the target); ` +
        `${fmtQpa(t.brokenQueriesPerAttempt)} while the credential was broken. ${startQ} of the ${t.queries} queries ` +
        `came in the healthy start (${startA} attempts): every device's known-good entry was past the positive TTL, ` +
        `so the gate sent refreshes at the cap's pace and stale-if-error admitted the rest. The denominator is small ` +
        `because the guard admits at the first try: the naive 1 s retry loop never turns into a storm ` +
        `(${t.attempts} attempts by ${o.devices} devices in the whole run). With protections off the same fleet made ` +
        'the number of attempts in the other column, each one a query.',
    );
  }
  if (recovery && !recovery.met) {
    out.push(`- **Recovery: missed**: ${recovery.detail}.`);
  }
  if (out.length) out.unshift('### Missed targets: by how much and why', '');
  out.push('');
  return out;
}

/** What the unprotected run did to PostgreSQL, from its own counters. */
function offExplanation(run: RunResult, o: AuthStormOptions): string[] {
  const t = run.totals;
  const brokenS = o.fixAtS - o.breakAtS;
  const conns = phaseSum(run, o.breakAtS, o.fixAtS, (x) => x.pgConnections);
  const peak = Math.max(...run.seconds.map((x) => x.queriesIssued));
  return [
    '### Protections off',
    '',
    `Every attempt issued a query (${fmtNumber(t.queriesIssued)} issued for ${fmtNumber(t.attempts)} attempts; ` +
      `up to ${peak}/s). While the credential was broken PostgreSQL answered ` +
      `${fmtNumber(t.brokenQueries)} of them in ${brokenS} s (${fmtNumber(t.brokenQueries / brokenS)}/s) and the auth pool ` +
      `opened ${fmtNumber(conns)} new server connections: pg-pool discards a connection whose query failed, so each ` +
      'failing query also cost a backend process start. The rest of the issued queries waited longer than the ' +
      "pool's connect timeout for one of its 4 connections and failed inside the broker — PostgreSQL was the " +
      'bottleneck, which is the incident. No device got back in until the credential was fixed ' +
      `(99 % back after ${fmtS(t.recover99S)}).`,
    '',
  ];
}

export function authStormMarkdown(
  machine: MachineInfo,
  o: AuthStormOptions,
  runs: readonly RunResult[],
  commentary: string,
): string {
  const out: string[] = [];
  out.push('# Auth storm: the incident, replayed (issue 3)', '');
  out.push(
    `${o.devices} simulated devices (MQTT 5, username + password, ${o.processes} processes, raw sockets) ` +
      `connect to one listener; credentials in PostgreSQL (salted SHA-256). At t=${o.breakAtS} s the ` +
      `broker's Postgres credential breaks (REVOKE SELECT from its role) and every client is dropped ` +
      `(broker.disconnectClient); devices retry on a fixed ${o.retryMs} ms period and ignore retry-after hints. ` +
      `At t=${o.fixAtS} s the credential is fixed (GRANT). Run ends at t=${o.endAtS} s. ` +
      '`npm run bench -- auth-storm` (see bench/auth-storm/README.md).',
    '',
  );
  out.push(machineMarkdown(machine), '', '![chart](auth-storm.svg)', '');
  const defaults = runs.find((r) => r.protection === 'defaults');
  if (defaults) {
    out.push('## Targets (guard defaults)', '');
    out.push(
      table(
        ['target', 'met', 'measured'],
        verdicts(defaults).map((v) => [v.target, v.met ? 'yes' : '**no**', v.detail]),
      ),
      '',
    );
  }
  if (defaults) out.push(...missExplanations(defaults, o));
  const off = runs.find((r) => r.protection === 'off');
  if (off) out.push(...offExplanation(off, o));
  if (commentary) out.push(commentary.trim(), '');
  out.push('## By phase', '');
  const phases = [
    { name: `start, backend healthy (0–${o.breakAtS} s)`, from: 0, to: o.breakAtS },
    { name: `credential broken (${o.breakAtS}–${o.fixAtS} s)`, from: o.breakAtS, to: o.fixAtS },
    { name: `credential fixed (${o.fixAtS}–${o.endAtS} s)`, from: o.fixAtS, to: o.endAtS },
  ];
  const phaseRows: string[][] = [];
  for (const r of runs) {
    for (const ph of phases) {
      const xs = r.seconds.filter((x) => x.t > ph.from && x.t <= ph.to);
      const a = xs.reduce((n, x) => n + x.attempts, 0);
      const q = xs.reduce((n, x) => n + x.queries, 0);
      phaseRows.push([
        r.protection,
        ph.name,
        fmtNumber(a),
        fmtNumber(q),
        a ? fmtQpa(q / a) : 'n/a',
        String(Math.max(0, ...xs.map((x) => x.queries))),
      ]);
    }
  }
  out.push(
    table(
      ['protections', 'phase', 'attempts', 'pg queries', 'queries / attempt', 'peak queries/s'],
      phaseRows,
    ),
    '',
  );
  out.push('## Totals', '');
  const col = (f: (r: RunResult) => string) => runs.map(f);
  const rows: string[][] = [
    ['connection attempts', ...col((r) => fmtNumber(r.totals.attempts))],
    ['auth queries issued by the broker', ...col((r) => fmtNumber(r.totals.queriesIssued))],
    ['  of which failed (server error or pool wait timeout)', ...col((r) => fmtNumber(r.totals.queryErrors))],
    ['Postgres queries (reached the server)', ...col((r) => fmtNumber(r.totals.queries))],
    ['Postgres connections opened by the auth pool', ...col((r) => fmtNumber(r.totals.pgConnections))],
    ['server transactions, db `test` (cross-check)', ...col((r) => fmtNumber(r.totals.serverXacts))],
    ['queries per attempt (run)', ...col((r) => fmtQpa(r.totals.queriesPerAttempt))],
    [
      `queries per attempt (broken, t=${o.breakAtS}–${o.fixAtS} s)`,
      ...col((r) => fmtQpa(r.totals.brokenQueriesPerAttempt)),
    ],
    ['peak queries/s', ...col((r) => `${r.totals.peakQueriesPerSec} (t=${r.totals.peakQueriesAtS} s)`)],
    [
      'backend cap (rate / burst / in flight)',
      ...col((r) =>
        r.limits ? `${r.limits.ratePerSec}/s / ${r.limits.burst} / ${r.limits.maxInFlight}` : 'none',
      ),
    ],
    ['99 % of fleet first connected', ...col((r) => fmtS(r.totals.initial99S))],
    ['connected before the drop', ...col((r) => fmtNumber(r.totals.connectedBeforeDrop))],
    [
      'back within 10 s of the drop',
      ...col((r) => `${fmtNumber(r.totals.backWithin10s)} (${r.totals.backWithin10sPct.toFixed(2)} %)`),
    ],
    ['99 % back after', ...col((r) => fmtS(r.totals.recover99S))],
    ['connected at the end', ...col((r) => fmtNumber(r.totals.finalConnected))],
    ['refusals', ...col((r) => fmtMap(r.totals.refused))],
    ['max sampler lag (event loop)', ...col((r) => `${r.maxSampleLagMs} ms`)],
  ];
  out.push(table(['', ...runs.map((r) => `protections ${r.protection}`)], rows), '');
  out.push(
    'Refusal codes: ' +
      Object.entries(REFUSAL_NAMES)
        .map(([k, v]) => (k === v ? k : `${v}`))
        .join('; ') +
      '.',
    '',
  );
  for (const r of runs) {
    out.push(`## Per second: protections ${r.protection}`, '');
    if (r.seed)
      out.push(
        `Before t=0: ${r.seed.devices} devices put in the known-good store as last verified ${r.seed.ageMin} min ago ` +
          `(past the 1 h positive TTL, within the 24 h stale-if-error window; ${r.seed.durationS.toFixed(1)} s, not counted below).`,
        '',
      );
    const guard = r.protection === 'defaults';
    const header = [
      't (s)',
      'attempts',
      'accepted',
      'refused (by code)',
      'connected',
      'pg queries',
      'issued',
      'failed',
      'pg conns',
      'server xacts',
      ...(guard ? ['admission refused', 'guard decisions', 'gate skipped', 'breaker'] : []),
      'broker CPU %',
    ];
    const rowsPs = r.seconds.map((x) => [
      String(x.t),
      String(x.attempts),
      String(x.accepted),
      fmtMap(x.refused),
      String(x.connected),
      String(x.queries),
      String(x.queriesIssued),
      String(x.queryErrors),
      String(x.pgConnections),
      String(x.serverXacts),
      ...(guard
        ? [
            fmtMap(x.admissionRefused),
            fmtMap(x.auth),
            fmtMap(x.gateRejected),
            ['closed', 'half-open', 'open'][x.breaker ?? 0] ?? '?',
          ]
        : []),
      String(x.brokerCpuPct),
    ]);
    out.push(table(header, rowsPs), '');
  }
  return out.join('\n');
}

// ---- SVG ----

const W = 900;
const PANEL_H = 260;
const M = { left: 60, right: 20, top: 30, bottom: 36 };
const SERIES = [
  { key: 'connected', label: 'connected devices', color: '#1f77b4', get: (x: Second) => x.connected },
  { key: 'attempts', label: 'connection attempts/s', color: '#7f7f7f', get: (x: Second) => x.attempts },
  { key: 'refused', label: 'refusals/s', color: '#ff7f0e', get: refusalsOf },
  { key: 'queries', label: 'Postgres queries/s', color: '#d62728', get: (x: Second) => x.queries },
] as const;

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function panel(r: RunResult, o: AuthStormOptions, top: number): string {
  const pw = W - M.left - M.right;
  const ph = PANEL_H - M.top - M.bottom;
  const x0 = M.left;
  const y0 = top + M.top;
  const xs = (t: number) => x0 + (t / o.endAtS) * pw;
  // log10 scale from 1 to 10^4; zero is drawn on the axis.
  const maxDec = 4;
  const ys = (v: number) => y0 + ph - (v <= 1 ? 0 : Math.min(1, Math.log10(v) / maxDec)) * ph;
  const parts: string[] = [];
  const title = r.protection === 'defaults' ? 'guard defaults' : 'every protection off';
  parts.push(
    `<text x="${x0}" y="${top + 18}" font-size="14" font-weight="bold">${esc(title)}</text>`,
    `<rect x="${xs(o.breakAtS)}" y="${y0}" width="${xs(o.fixAtS) - xs(o.breakAtS)}" height="${ph}" fill="#f2dede" />`,
    `<text x="${xs(o.breakAtS) + 4}" y="${y0 + 12}" font-size="11" fill="#a94442">Postgres credential broken</text>`,
  );
  for (let d = 0; d <= maxDec; d++) {
    const y = ys(10 ** d);
    parts.push(
      `<line x1="${x0}" x2="${x0 + pw}" y1="${y}" y2="${y}" stroke="#ddd" />`,
      `<text x="${x0 - 6}" y="${y + 4}" font-size="11" text-anchor="end">${fmtNumber(10 ** d)}</text>`,
    );
  }
  for (let t = 0; t <= o.endAtS; t += 10) {
    parts.push(
      `<line x1="${xs(t)}" x2="${xs(t)}" y1="${y0 + ph}" y2="${y0 + ph + 4}" stroke="#333" />`,
      `<text x="${xs(t)}" y="${y0 + ph + 16}" font-size="11" text-anchor="middle">${t}</text>`,
    );
  }
  parts.push(
    `<text x="${x0 + pw / 2}" y="${y0 + ph + 30}" font-size="11" text-anchor="middle">time (s)</text>`,
    `<rect x="${x0}" y="${y0}" width="${pw}" height="${ph}" fill="none" stroke="#333" />`,
  );
  if (r.limits) {
    const y = ys(r.limits.ratePerSec);
    parts.push(
      `<line x1="${x0}" x2="${x0 + pw}" y1="${y}" y2="${y}" stroke="#d62728" stroke-dasharray="6 4" />`,
      `<text x="${x0 + pw - 4}" y="${y - 4}" font-size="11" fill="#d62728" text-anchor="end">query cap ${r.limits.ratePerSec}/s</text>`,
    );
  }
  for (const s of SERIES) {
    const pts = [
      `${xs(0)},${ys(0)}`,
      ...r.seconds.map((x) => `${xs(x.t).toFixed(1)},${ys(s.get(x)).toFixed(1)}`),
    ];
    parts.push(`<polyline fill="none" stroke="${s.color}" stroke-width="1.8" points="${pts.join(' ')}" />`);
  }
  return parts.join('\n');
}

export function authStormSvg(o: AuthStormOptions, runs: readonly RunResult[]): string {
  const legendH = 30;
  const H = runs.length * PANEL_H + legendH;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif">`,
    '<!-- Generated by bench/auth-storm/report.ts; do not edit. -->',
    `<rect width="${W}" height="${H}" fill="white" />`,
  ];
  runs.forEach((r, i) => {
    parts.push(panel(r, o, i * PANEL_H));
  });
  let lx = M.left;
  const ly = runs.length * PANEL_H + 16;
  for (const s of SERIES) {
    parts.push(
      `<line x1="${lx}" x2="${lx + 24}" y1="${ly}" y2="${ly}" stroke="${s.color}" stroke-width="3" />`,
      `<text x="${lx + 30}" y="${ly + 4}" font-size="12">${esc(s.label)}</text>`,
    );
    lx += 40 + s.label.length * 7;
  }
  parts.push(
    `<text x="${W - M.right}" y="${ly + 4}" font-size="11" text-anchor="end">log scale; 0 drawn on the axis</text>`,
    '</svg>',
  );
  return `${parts.join('\n')}\n`;
}

export function writeSvg(name: string, svg: string): string {
  const path = join(RESULTS_DIR, `${name}.svg`);
  writeFileSync(path, svg);
  return path;
}
