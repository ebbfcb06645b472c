/**
 * `sink-outage` at small scale (200 devices, 40 s, the 10-minute outage scaled to ~22 s) against a
 * real PostgreSQL sink behind the fault proxy, with the broker in a child process as at full scale:
 * nothing acknowledged is lost, the backlog drains by itself at the bounded rate, and the report
 * carries the side-by-side publish latencies.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { requireService } from '@breakwater/testkit';
import { findScenario } from '../src/scenarios/catalog.js';
import { runScenario } from '../src/scenarios/runner.js';
import { failed } from './scenario-checks.js';

describe('game day: sink-outage', () => {
  test('the telemetry database goes down under load: zero loss, automatic resume, bounded drain', async (t) => {
    if (!(await requireService(t, 'PostgreSQL', '127.0.0.1', 5432))) return;
    const def = findScenario('sink-outage');
    assert.ok(def);
    const r = await runScenario(def, {
      devices: 200,
      durationS: 40,
      timeScale: 40 / def.defaults.durationS,
      protections: 'on',
      firmware: 'fleet',
      cache: 'warm',
      target: null,
      seed: 42,
    });
    assert.ok(r.passed, failed(r));
    const m = r.measurements;
    assert.equal(m.lost, 0);
    assert.ok((m.acked as number) > 1000, `acked ${m.acked}`);
    assert.ok((m.rowsDistinct as number) >= (m.acked as number));
    assert.ok((m.backlogAtRestore as number) > 0, 'the outage built a backlog');
    assert.ok((m.failedAttempts as number) > 0, 'the sink really failed during the outage');
    assert.equal(m.queuedAtEnd, 0);
    assert.equal(m.dropped, 0);
    assert.equal(m.deadLettered, 0);
    assert.notEqual(m.drainS, null);
    for (const phase of ['outage', 'draining'])
      assert.ok((m[`publishSamples_${phase}`] as number) > 0, phase);
    // The per-second series show the sink down and the backlog building then draining.
    assert.ok(r.seconds.some((s) => s.extra.sinkUp === 0));
    assert.ok(r.seconds.some((s) => (s.extra.sinkQueued ?? 0) > 0));
  });
});
