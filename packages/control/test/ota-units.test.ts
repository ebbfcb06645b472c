/** OTA campaigns: assignment determinism, gates, report transitions, wave validation. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ApiError } from '../src/errors.js';
import { assignWaves, cumulativeCounts, rankOf } from '../src/ota/assignment.js';
import { validateWaves } from '../src/ota/drafts.js';
import { countsToHealth, failureGate, soakGate } from '../src/ota/gates.js';
import { acceptTransition } from '../src/ota/job-reports.js';
import type { Gate, JobState, WaveSpec } from '../src/ota/types.js';

const ids = Array.from({ length: 1000 }, (_, i) => `dev-${i}`);
const wave = (percent: number, minDevices = 0): WaveSpec => ({ percent, minDevices, soakMs: 0, gate: {} });

function members(assignment: ReturnType<typeof assignWaves>, upTo: number): Set<string> {
  return new Set(assignment.filter((a) => a.wave <= upTo).map((a) => a.deviceId));
}

describe('wave assignment', () => {
  it('is a pure function of campaign id and device ids: input order does not matter', () => {
    const a = assignWaves('cmp_1', ids, [wave(1), wave(10), wave(100)]);
    const shuffled = [...ids].sort(() => Math.random() - 0.5);
    const b = assignWaves('cmp_1', shuffled, [wave(1), wave(10), wave(100)]);
    assert.deepEqual(a, b);
    assert.equal(a.length, 1000);
    assert.deepEqual(
      [0, 1, 2].map((w) => a.filter((x) => x.wave === w).length),
      [10, 90, 900],
    );
  });

  it('another campaign id picks other devices first', () => {
    const a = members(assignWaves('cmp_1', ids, [wave(5), wave(100)]), 0);
    const b = members(assignWaves('cmp_2', ids, [wave(5), wave(100)]), 0);
    assert.equal(a.size, 50);
    assert.notDeepEqual([...a].sort(), [...b].sort());
  });

  it('raising a percentage or a minimum only adds devices', () => {
    let previous = new Set<string>();
    for (const pct of [1, 2, 5, 10, 25, 50, 99, 100]) {
      const now = members(assignWaves('cmp_x', ids, [wave(pct), wave(100)]), 0);
      for (const d of previous) assert.ok(now.has(d), `${d} left wave 1 when it grew to ${pct}%`);
      assert.ok(now.size >= previous.size);
      previous = now;
    }
    const small = members(assignWaves('cmp_x', ids, [wave(1, 0), wave(100)]), 0);
    const min30 = members(assignWaves('cmp_x', ids, [wave(1, 30), wave(100)]), 0);
    assert.equal(min30.size, 30);
    for (const d of small) assert.ok(min30.has(d));
  });

  it('adding a device to the target set does not move the others between waves', () => {
    const before = assignWaves('cmp_y', ids, [wave(10), wave(100)]);
    const after = assignWaves('cmp_y', [...ids, 'newcomer'], [wave(10), wave(100)]);
    const movedOut = [...members(before, 0)].filter((d) => !members(after, 0).has(d));
    // The cut is a count, so at most one device (the one the newcomer outranks) moves out.
    assert.ok(movedOut.length <= 1, `moved: ${movedOut.join(', ')}`);
  });

  it('cumulative counts: ceil of the share, minimum, monotone, capped; a last wave below 100 % leaves devices out', () => {
    assert.deepEqual(cumulativeCounts(50, [wave(10), wave(40), wave(100)]), [5, 20, 50]);
    assert.deepEqual(cumulativeCounts(7, [wave(1), wave(50), wave(100)]), [1, 4, 7]);
    assert.deepEqual(cumulativeCounts(10, [wave(10, 20), wave(100)]), [10, 10]);
    assert.deepEqual(cumulativeCounts(0, [wave(10), wave(100)]), [0, 0]);
    assert.equal(assignWaves('c', ids, [wave(20)]).length, 200);
  });

  it('rank is stable and fixed-width hex', () => {
    assert.equal(rankOf('cmp_1', 'dev-1'), rankOf('cmp_1', 'dev-1'));
    assert.match(rankOf('cmp_1', 'dev-1'), /^[0-9a-f]{16}$/);
  });
});

describe('gates', () => {
  const gate: Gate = { maxFailureRatio: 0.1, maxOfflineRatio: 0.2, reportTimeoutMs: 1000 };
  const counts = (entries: Array<[JobState, number]>) => new Map(entries);

  it('failures: failed, rolled-back and timed-out count; over the ratio fails, at the ratio passes', () => {
    const ok = countsToHealth(
      counts([
        ['succeeded', 18],
        ['failed', 1],
        ['timed-out', 1],
      ]),
      0,
    );
    assert.equal(ok.failed, 2);
    assert.equal(ok.settled, true);
    assert.deepEqual(failureGate(ok, gate, 0), { ok: true });
    const bad = countsToHealth(
      counts([
        ['succeeded', 17],
        ['rolled-back', 2],
        ['timed-out', 1],
      ]),
      0,
    );
    const v = failureGate(bad, gate, 1);
    assert.equal(v.ok, false);
    assert.match((v as { reason: string }).reason, /^wave 2: failure ratio 15% \(3\/20\)/);
  });

  it('a wave with devices still working is not settled; cancelled is settled but not failed', () => {
    assert.equal(
      countsToHealth(
        counts([
          ['succeeded', 5],
          ['installing', 1],
        ]),
        0,
      ).settled,
      false,
    );
    assert.equal(countsToHealth(counts([['pending', 1]]), 0).settled, false);
    const h = countsToHealth(
      counts([
        ['succeeded', 5],
        ['cancelled', 5],
      ]),
      0,
    );
    assert.equal(h.settled, true);
    assert.equal(h.failed, 0);
  });

  it('soak gate: devices offline after updating over the ratio fail it', () => {
    const base = counts([['succeeded', 10]]);
    assert.equal(soakGate(countsToHealth(base, 2), gate, 0).ok, true);
    const v = soakGate(countsToHealth(base, 3), gate, 0);
    assert.equal(v.ok, false);
    assert.match((v as { reason: string }).reason, /went offline after updating/);
  });

  it('an empty wave passes', () => {
    assert.equal(soakGate(countsToHealth(new Map(), 0), gate, 0).ok, true);
  });
});

describe('report transitions', () => {
  it('progress moves forward only; final reports replace timeouts and cancels; nothing replaces succeeded', () => {
    assert.equal(acceptTransition('notified', 'downloading'), true);
    assert.equal(acceptTransition('installing', 'downloading'), false);
    assert.equal(acceptTransition('downloading', 'downloading'), true, 'progress updates');
    assert.equal(acceptTransition('installing', 'failed'), true);
    assert.equal(acceptTransition('timed-out', 'succeeded'), true);
    assert.equal(acceptTransition('cancelled', 'succeeded'), true);
    assert.equal(acceptTransition('cancelled', 'queued'), false);
    assert.equal(acceptTransition('failed', 'rolled-back'), true);
    assert.equal(acceptTransition('succeeded', 'failed'), false);
    assert.equal(acceptTransition('pending', 'succeeded'), false);
  });
});

describe('wave validation', () => {
  it('names the field of a percentage that does not increase', () => {
    assert.doesNotThrow(() => validateWaves([wave(1), wave(10), wave(100)]));
    assert.throws(
      () => validateWaves([wave(10), wave(10)]),
      (e: unknown) => e instanceof ApiError && e.field === 'waves[1].percent',
    );
    assert.throws(
      () => validateWaves([wave(10, 5), wave(50, 2)]),
      (e: unknown) => e instanceof ApiError && e.field === 'waves[1].minDevices',
    );
  });
});
