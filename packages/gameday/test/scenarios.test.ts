/**
 * Every scenario at small scale (200 devices, a few seconds, fleet delays scaled down) with
 * Breakwater's protections on: every expectation passes, and the report's figures agree with the
 * broker's own metrics. Scenarios run one after another (each starts its own broker). The storm
 * scenarios' devices authenticate against PostgreSQL; `auth-backend-outage` runs its whole matrix
 * in scenarios-matrix.test.ts.
 */
import assert from 'node:assert/strict';
import { readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { describe, test } from 'node:test';
import { requireService } from '@breakwater/testkit';
import { writeReport } from '../src/report/write.js';
import { runGameday } from '../src/run.js';
import { assertAgreesWithBroker, expectation, failed, runCellSmall, runSmall } from './scenario-checks.js';

describe('game-day scenarios, protections on', { concurrency: 1 }, () => {
  test('ota-reboot-storm: a third reboots, sockets stay at the fleet size, all back', async (t) => {
    if (!(await requireService(t, 'PostgreSQL', '127.0.0.1', 5432))) return;
    const run = await runSmall('ota-reboot-storm', { durationS: 10 });
    const r = run.report;
    assert.ok(r.passed, failed(r));
    assertAgreesWithBroker(run);
    assert.equal(r.measurements.rebooted, 67);
    assert.ok((r.fleet.reboots ?? 0) >= 67);
    // The rebooted devices dropped and came back: more CONNECTs than devices.
    assert.ok((r.broker.totals?.connectionAttempts ?? 0) >= 200 + 67);
    // Warm: they came back on what their first connect earned, not through the backend.
    assert.ok((r.broker.totals?.authOutcomes.cache_hit ?? 0) >= 67, JSON.stringify(r.broker.totals));
  });

  test('ota-reboot-storm, cold cell with naive firmware: the wave is a third of the fleet booting for the first time', async (t) => {
    if (!(await requireService(t, 'PostgreSQL', '127.0.0.1', 5432))) return;
    const run = await runCellSmall('ota-reboot-storm', {
      protections: 'on',
      firmware: 'naive',
      cache: 'cold',
    });
    const r = run.report;
    assert.ok(r.passed, failed(r));
    assertAgreesWithBroker(run);
    assert.equal(r.params.initialDevices, 200 - 67);
    assert.equal(r.measurements.rebooted, 67);
    // Each device of the wave needed the backend once; none was known before.
    const wave = r.scores.phases.find((p) => p.name === 'fault');
    assert.ok(wave && (wave.authOutcomes.success ?? 0) >= 67, JSON.stringify(wave?.authOutcomes));
    assert.equal(r.scores.flappingBans, 0);
  });

  test('mass-disconnect: the fleet backs off during the cut and comes back', async (t) => {
    if (!(await requireService(t, 'PostgreSQL', '127.0.0.1', 5432))) return;
    const run = await runSmall('mass-disconnect', { durationS: 24 });
    const r = run.report;
    assert.ok(r.passed, failed(r));
    assertAgreesWithBroker(run);
    const cut = r.seconds.find((s) => s.connected === 0);
    assert.ok(cut, 'the cut dropped every device');
    assert.ok((r.scores.timeTo99ReconnectedS ?? -1) >= 0);
  });

  test('mass-disconnect, cold cell with naive firmware: the fleet powers on into a cut network', async (t) => {
    if (!(await requireService(t, 'PostgreSQL', '127.0.0.1', 5432))) return;
    const run = await runCellSmall('mass-disconnect', {
      protections: 'on',
      firmware: 'naive',
      cache: 'cold',
    });
    const r = run.report;
    assertAgreesWithBroker(run);
    assert.equal(r.params.initialDevices, 0);
    assert.equal(r.measurements.poweredOnDuringCut, 200);
    // Nobody got in before the restore; everyone did after it, each verified once by the backend.
    assert.equal(r.scores.phases.find((p) => p.name === 'fault')?.timeTo99S, null);
    assert.equal(expectation(r, 'reconnected').pass, true, failed(r));
    assert.ok((r.broker.totals?.authOutcomes.success ?? 0) >= 200);
    assert.equal(r.scores.flappingBans, 0);
    // Naive firmware hammers the cut network: the retry-pressure expectation says so, without
    // failing the cell (that is the firmware's doing, not the broker's).
    const pressure = expectation(r, 'retry-pressure');
    assert.equal(pressure.pass, false);
    assert.ok(pressure.notJudged);
    assert.ok(r.passed, failed(r));
  });

  test('credential-leak: revoked sessions end within a second and stay out', async () => {
    const run = await runSmall('credential-leak', { durationS: 10 });
    const r = run.report;
    assert.ok(r.passed, failed(r));
    assertAgreesWithBroker(run);
    assert.equal(r.measurements.revoked, 5);
    assert.equal(r.measurements.revokedConnectedAtEnd, 0);
    assert.ok(['control-plane', 'guard'].includes(String(r.measurements.revokedVia)));
    assert.ok(Object.keys(r.fleet.refusals).length > 0, 'reconnects were refused');
  });

  test('bad-firmware: the campaign halts at its first wave', async () => {
    const run = await runSmall('bad-firmware', { durationS: 16 });
    const r = run.report;
    assert.ok(r.passed, failed(r));
    assertAgreesWithBroker(run, false);
    assert.equal(r.measurements.campaignState, 'halted');
    assert.ok(Number(r.measurements.devicesOnBadFirmware) > 0, 'some devices did get the bad firmware');
  });

  test('telemetry-corruption: the cohort is named and contained', async () => {
    const run = await runSmall('telemetry-corruption', { durationS: 10 });
    const r = run.report;
    assert.ok(r.passed, failed(r));
    assertAgreesWithBroker(run);
    assert.equal(r.measurements.cohort, 10);
    assert.equal(r.measurements.healthyBlamed, 0);
    assert.ok(Number(r.measurements.invalidMessages) > 0);
    assert.ok(
      r.seconds.some((s) => (s.extra.invalidMessages ?? 0) > 0),
      'invalid series in the report',
    );
  });

  test('capacity: ten times the publish rate, everything delivered; report files written', async () => {
    const run = await runSmall('capacity', { durationS: 8 });
    const r = run.report;
    assert.ok(r.passed, failed(r));
    assertAgreesWithBroker(run);
    const received = expectation(r, 'received-all');
    assert.ok(received.detail?.includes('received'));
    // The surge is visible: the busiest second carries several times the quietest full second.
    const inSeries = r.seconds.map((s) => s.messagesIn ?? 0).filter((v) => v > 0);
    assert.ok(Math.max(...inSeries) >= 4 * Math.min(...inSeries.slice(1, 3)));

    const dir = join(tmpdir(), `bw-gameday-report-${process.pid}`);
    try {
      const files = await writeReport(r, dir);
      const json = JSON.parse(await readFile(files.json, 'utf8')) as typeof r;
      assert.equal(json.scenario.name, 'capacity');
      assert.equal(json.seconds.length, 8);
      const md = await readFile(files.markdown, 'utf8');
      assert.match(md, /\*\*PASSED\*\*/);
      assert.match(md, /QoS 1 messages lost \| 0 /);
      const html = await readFile(files.html, 'utf8');
      assert.match(html, /<svg /);
      // Self-contained: no external script, stylesheet, image or font.
      assert.doesNotMatch(html, /<script|<link|src=|url\(/i);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('runGameday --matrix: one directory per cell and a matrix table (capacity, protections on)', async () => {
    const dir = join(tmpdir(), `bw-gameday-cli-matrix-${process.pid}`);
    const out = new PassThrough();
    let text = '';
    out.on('data', (c: Buffer) => {
      text += c.toString();
    });
    try {
      const code = await runGameday(
        'capacity',
        { devices: 60, duration: '5s', report: dir, seed: 7, matrix: 'on' },
        { stdout: out, stderr: out },
      );
      assert.equal(code, 0, text);
      assert.match(text, /cell 1\/2: on\/fleet\/warm/);
      assert.match(text, /PASSED: matrix report in/);
      const md = await readFile(join(dir, 'summary.md'), 'utf8');
      assert.match(md, /\| on\/fleet\/warm \| PASS/);
      assert.match(md, /\| on\/naive\/warm \| PASS/);
      await readFile(join(dir, 'on-naive-warm', 'report.html'), 'utf8');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('runGameday: exit code 0 when every expectation passes; files in --report', async (t) => {
    if (!(await requireService(t, 'PostgreSQL', '127.0.0.1', 5432))) return;
    const dir = join(tmpdir(), `bw-gameday-cli-${process.pid}`);
    const out = new PassThrough();
    let text = '';
    out.on('data', (c: Buffer) => {
      text += c.toString();
    });
    try {
      const code = await runGameday(
        'ota-reboot-storm',
        { devices: 60, duration: '5s', report: dir, seed: 7 },
        { stdout: out, stderr: out },
      );
      assert.equal(code, 0, text);
      assert.match(text, /PASSED: report in/);
      // Not a TTY: no progress line (no carriage returns).
      assert.doesNotMatch(text, /\r/);
      await readFile(join(dir, 'report.html'), 'utf8');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
