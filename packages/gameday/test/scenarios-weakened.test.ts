/**
 * The scorer can fail: each scenario with its weakened configuration (`--protections off`: no
 * admission, naive 1 s retries, revocation without a denylist, no responder, no OTA health gates)
 * fails the expectation that protection exists for — while the report's figures still agree with
 * the broker's own metrics. (auth-backend-outage's weakened cells: scenarios-matrix.test.ts.)
 */
import assert from 'node:assert/strict';
import { readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { describe, test } from 'node:test';
import { requireService } from '@breakwater/testkit';
import type { Report } from '../src/report/build.js';
import { runGameday } from '../src/run.js';
import { assertAgreesWithBroker, expectation, runSmall } from './scenario-checks.js';

describe('game-day scenarios, protections off', { concurrency: 1 }, () => {
  test('mass-disconnect: naive retries hammer during the cut', async (t) => {
    if (!(await requireService(t, 'PostgreSQL', '127.0.0.1', 5432))) return;
    const run = await runSmall('mass-disconnect', {
      // Few devices: retrying on a 1 s period (scaled) is bounded by CPU, not by the policy, so the
      // attempts per device stay high even on a loaded machine.
      devices: 50,
      durationS: 24,
      protections: 'off',
    });
    const r = run.report;
    const pressure = expectation(r, 'retry-pressure');
    assert.equal(pressure.pass, false, JSON.stringify(pressure));
    // Shown, but not held against the broker: the naive firmware's retries never reach it.
    assert.match(pressure.notJudged ?? '', /firmware/);
    assert.equal(r.params.policy, 'naive');
    assertAgreesWithBroker(run);
  });

  test('credential-leak: without a denylist the revoked devices get back in (exit code 1)', async () => {
    const dir = join(tmpdir(), `bw-gameday-weak-${process.pid}`);
    const out = new PassThrough();
    let text = '';
    out.on('data', (c: Buffer) => {
      text += c.toString();
    });
    try {
      const code = await runGameday(
        'credential-leak',
        { devices: 200, duration: '10s', protections: 'off', report: dir, seed: 3 },
        { stdout: out, stderr: out },
      );
      assert.equal(code, 1, text);
      assert.match(text, /FAIL {2}revoked devices never get back in/);
      const r = JSON.parse(await readFile(join(dir, 'report.json'), 'utf8')) as Report;
      const stayOut = expectation(r, 'revoked-stay-out');
      assert.equal(stayOut.pass, false);
      assert.ok((stayOut.value ?? 0) >= 1);
      // The kick itself still works: live sessions ended at once.
      assert.equal(expectation(r, 'sessions-ended').pass, true);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('telemetry-corruption: with no responder invalid data keeps flowing', async () => {
    const run = await runSmall('telemetry-corruption', { durationS: 10, protections: 'off' });
    const r = run.report;
    assert.equal(expectation(r, 'invalid-contained').pass, false);
    // Detection still works; only containment is missing.
    assert.equal(expectation(r, 'cohort-named').pass, true);
    assert.equal(r.measurements.quarantined, 0);
    assertAgreesWithBroker(run);
  });

  test('bad-firmware: without health gates the campaign rolls on to the whole fleet', async () => {
    const run = await runSmall('bad-firmware', {
      // The 16 s run's time scale, with time to spare for the waves on a loaded machine.
      durationS: 26,
      timeScale: 16 / 600,
      protections: 'off',
    });
    const r = run.report;
    assert.equal(expectation(r, 'auto-halt').pass, false);
    const blast = expectation(r, 'blast-radius');
    assert.equal(blast.pass, false, JSON.stringify(blast));
    assert.ok((blast.value ?? 0) > blast.threshold);
    assertAgreesWithBroker(run, false);
  });
});
