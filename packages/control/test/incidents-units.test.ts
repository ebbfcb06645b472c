import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { FakeClock } from '@breakwater/testkit';
import { ApiError } from '../src/errors.js';
import {
  durations,
  formatDuration,
  percentile,
  quarterOf,
  quarterRange,
  summarize,
  transition,
} from '../src/incidents/lifecycle.js';
import { alertKey, betterRunbook, defaultComponents } from '../src/incidents/manager.js';
import type { IncidentRecord, IncidentState } from '../src/incidents/model.js';
import { parseRunbook } from '../src/incidents/runbooks.js';
import { readBrokerAudit } from '../src/incidents/timeline.js';

function incident(extra: Partial<IncidentRecord> = {}): IncidentRecord {
  return {
    id: 1,
    type: 'mass-disconnect',
    severity: 'critical',
    title: 't',
    state: 'detected',
    commander: null,
    runbook: 'mass-disconnect',
    components: ['broker'],
    source: 'alert',
    startedAt: 0,
    detectedAt: 0,
    acknowledgedAt: null,
    mitigatedAt: null,
    resolvedAt: null,
    createdBy: 'x',
    updatedAt: 0,
    ...extra,
  };
}

/** Walks an incident through `steps` with a fake clock, as the manager does. */
function walk(clock: FakeClock, steps: Array<[number, IncidentState]>): IncidentRecord {
  let i = incident({ startedAt: clock.now() });
  for (const [after, to] of steps) {
    clock.advance(after);
    const { patch } = transition(i, to, clock.now());
    i = { ...i, ...patch } as IncidentRecord;
  }
  return i;
}

describe('incident state machine', () => {
  it('moves forward one step at a time with timestamps', () => {
    const clock = new FakeClock(1_000_000);
    const i = walk(clock, [
      [60_000, 'acknowledged'],
      [60_000, 'mitigated'],
      [60_000, 'resolved'],
    ]);
    assert.equal(i.state, 'resolved');
    assert.deepEqual([i.acknowledgedAt, i.mitigatedAt, i.resolvedAt], [1_060_000, 1_120_000, 1_180_000]);
    assert.deepEqual(transition(incident(), 'acknowledged', 5), {
      patch: { state: 'acknowledged', acknowledgedAt: 5 },
      implied: [],
    });
  });

  it('skipping forward stamps the skipped states with the same time', () => {
    const t = transition(incident(), 'resolved', 42);
    assert.deepEqual(t.patch, { state: 'resolved', acknowledgedAt: 42, mitigatedAt: 42, resolvedAt: 42 });
    assert.deepEqual(t.implied, ['acknowledged', 'mitigated']);
    const m = transition(incident({ state: 'acknowledged' }), 'mitigated', 7);
    assert.deepEqual(m.patch, { state: 'mitigated', mitigatedAt: 7 });
  });

  it('rejects going back, repeating, and leaving resolved with BW_ERR_INCIDENT_TRANSITION', () => {
    const cases: Array<[IncidentState, IncidentState]> = [
      ['acknowledged', 'acknowledged'],
      ['mitigated', 'acknowledged'],
      ['resolved', 'mitigated'],
      ['resolved', 'resolved'],
      ['detected', 'detected'],
    ];
    for (const [from, to] of cases) {
      assert.throws(
        () => transition(incident({ state: from }), to, 1),
        (err: unknown) =>
          err instanceof ApiError && err.code === 'BW_ERR_INCIDENT_TRANSITION' && err.httpStatus === 409,
        `${from} → ${to}`,
      );
    }
  });
});

describe('TTx arithmetic', () => {
  it('TTD from the first abnormal sample, TTA from detection, TTM and TTR from the start', () => {
    const clock = new FakeClock(Date.UTC(2026, 9, 1));
    let i = incident({ startedAt: clock.now() });
    clock.advance(30_000);
    i = { ...i, detectedAt: clock.now() };
    for (const [after, to] of [
      [90_000, 'acknowledged'],
      [600_000, 'mitigated'],
      [3_000_000, 'resolved'],
    ] as const) {
      clock.advance(after);
      i = { ...i, ...transition(i, to, clock.now()).patch } as IncidentRecord;
    }
    assert.deepEqual(durations(i), { ttdMs: 30_000, ttaMs: 90_000, ttmMs: 720_000, ttrMs: 3_720_000 });
    assert.deepEqual(durations(incident({ startedAt: 0, detectedAt: 10 })), {
      ttdMs: 10,
      ttaMs: null,
      ttmMs: null,
      ttrMs: null,
    });
  });

  it('percentiles interpolate between ranks', () => {
    assert.equal(percentile([], 0.5), null);
    assert.equal(percentile([7], 0.9), 7);
    assert.equal(percentile([1, 2, 3, 4], 0.5), 2.5);
    assert.equal(percentile([10, 20], 0.9), 19);
    assert.equal(percentile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 0.9), 9.1);
  });

  it('quarters are UTC calendar quarters', () => {
    assert.deepEqual(quarterRange('2026Q4'), { since: Date.UTC(2026, 9, 1), until: Date.UTC(2027, 0, 1) });
    assert.deepEqual(quarterRange('2026Q1'), { since: Date.UTC(2026, 0, 1), until: Date.UTC(2026, 3, 1) });
    assert.equal(quarterOf(Date.UTC(2026, 11, 31, 23, 59)), '2026Q4');
    assert.equal(quarterOf(Date.UTC(2027, 0, 1)), '2027Q1');
    assert.throws(
      () => quarterRange('2026-Q4'),
      (e: unknown) => e instanceof ApiError && e.field === 'quarter',
    );
  });

  it('summary: median and p90 per duration, counts by type and severity', () => {
    const resolved = [60, 120, 180, 240, 300].map((m, n) =>
      incident({
        id: n + 1,
        startedAt: 0,
        detectedAt: 10_000 * (n + 1),
        acknowledgedAt: 10_000 * (n + 1) + 60_000,
        mitigatedAt: m * 30_000,
        resolvedAt: m * 60_000,
        state: 'resolved',
        severity: n === 0 ? 'warning' : 'critical',
      }),
    );
    const open = incident({ id: 9, type: 'security', startedAt: 0, detectedAt: 5_000 });
    const s = summarize('2026Q4', [...resolved, open]);
    assert.equal(s.incidents, 6);
    assert.equal(s.open, 1);
    assert.deepEqual(s.byType, { 'mass-disconnect': 5, security: 1 });
    assert.deepEqual(s.bySeverity, { warning: 1, critical: 5 });
    assert.deepEqual(s.ttd, { count: 6, medianMs: 25_000, p90Ms: 45_000 });
    assert.deepEqual(s.tta, { count: 5, medianMs: 60_000, p90Ms: 60_000 });
    assert.deepEqual(s.ttr, { count: 5, medianMs: 180 * 60_000, p90Ms: 276 * 60_000 });
    assert.equal(summarize('2026Q3', []).ttr.medianMs, null);
  });

  it('formats durations for humans', () => {
    assert.equal(formatDuration(null), '—');
    assert.equal(formatDuration(30_000), '30 s');
    assert.equal(formatDuration(125_000), '2 min 5 s');
    assert.equal(formatDuration(3_720_000), '1 h 2 min');
  });
});

describe('grouping keys, components, runbook parsing, broker log', () => {
  it('alert keys ignore label order', () => {
    assert.equal(alertKey('r', { b: '2', a: '1' }), alertKey('r', { a: '1', b: '2' }));
    assert.notEqual(alertKey('r', { a: '1' }), alertKey('r', { a: '2' }));
    assert.deepEqual(defaultComponents('security', 'auth-failing-fleet-wide'), ['auth', 'broker']);
    assert.deepEqual(defaultComponents('bad-firmware-push', 'bad-firmware-push'), ['ota']);
  });

  it('a specific runbook replaces a generic one; the more severe alert wins between equals', () => {
    const generic = { runbook: 'mass-disconnect', severity: 'warning' as const };
    assert.equal(betterRunbook(generic, 'auth-failing-fleet-wide', 'warning'), true);
    assert.equal(betterRunbook(generic, 'mass-disconnect', 'critical'), false, 'same runbook');
    assert.equal(betterRunbook(generic, 'capacity-cost', 'critical'), true, 'generic, more severe');
    assert.equal(betterRunbook(generic, 'capacity-cost', 'warning'), false);
    const specific = { runbook: 'auth-failing-fleet-wide', severity: 'warning' as const };
    assert.equal(betterRunbook(specific, 'mass-disconnect', 'critical'), false, 'never specific → generic');
    assert.equal(betterRunbook(specific, 'socket-fd-exhaustion', 'critical'), true);
    assert.equal(
      betterRunbook({ ...specific, severity: 'critical' }, 'socket-fd-exhaustion', 'critical'),
      false,
    );
  });

  it('parses front matter, title and sections', () => {
    const r = parseRunbook(
      'x',
      '---\ntitle: X fails\nincidentTypes: security, data-quality\nsummary: s\n---\n\n# X\n\n## Confirm\n\n## Contain\n',
    );
    assert.equal(r.title, 'X fails');
    assert.deepEqual(r.incidentTypes, ['security', 'data-quality']);
    assert.deepEqual(r.sections, ['Confirm', 'Contain']);
    assert.ok(r.markdown.startsWith('# X'));
    assert.equal(parseRunbook('y', '# Only a title\n').title, 'Only a title');
  });

  it('reads break-glass entries in the window, skipping torn lines', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'bw-incidents-'));
    try {
      const file = join(dir, 'audit.log');
      const line = (at: number, action: string) =>
        JSON.stringify({
          at: new Date(at).toISOString(),
          actor: 'a@h',
          action,
          listener: 'tcp',
          reason: 'r',
        });
      await writeFile(
        file,
        `${line(1_000, 'bypass-authn')}\n${line(5_000, 'restore-authn')}\nnot json\n${line(9_000, 'bypass-authn')}\n{"at":`,
      );
      const items = readBrokerAudit(file, 1_000, 5_000);
      assert.deepEqual(
        items.map((i) => i.text),
        ['authn bypass on listener tcp: r', 'authn restored on listener tcp: r'],
      );
      assert.deepEqual(readBrokerAudit(join(dir, 'missing.log'), 0, 1e15), []);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
