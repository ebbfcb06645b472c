import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  AuthBreaker,
  applyServerHint,
  exponentialPolicy,
  fleetPolicy,
  isAuthFailure,
  mulberry32,
  naivePolicy,
} from '@breakwater/device/policy';

const SAMPLES = 20_000;

function sample(attempt: number, seed: number, hint?: number): number[] {
  const policy = fleetPolicy();
  const random = mulberry32(seed);
  const out: number[] = [];
  for (let i = 0; i < SAMPLES; i++) out.push(policy.nextDelayMs({ attempt, serverHintMs: hint }, random));
  return out;
}

describe('mulberry32', () => {
  test('is deterministic per seed and stays in [0, 1)', () => {
    const a = mulberry32(42);
    const b = mulberry32(42);
    const c = mulberry32(43);
    const xs = Array.from({ length: 1000 }, () => a());
    assert.deepEqual(
      xs,
      Array.from({ length: 1000 }, () => b()),
    );
    assert.notDeepEqual(
      xs.slice(0, 10),
      Array.from({ length: 10 }, () => c()),
    );
    for (const x of xs) assert.ok(x >= 0 && x < 1, `${x} out of range`);
  });
});

describe('fleetPolicy schedule (DESIGN.md §3)', () => {
  const stages = [
    { attempt: 1, min: 5_000, max: 15_000 },
    { attempt: 2, min: 30_000, max: 120_000 },
    { attempt: 3, min: 300_000, max: 600_000 },
    { attempt: 4, min: 300_000, max: 600_000 },
    { attempt: 50, min: 300_000, max: 600_000 },
  ];
  for (const { attempt, min, max } of stages) {
    test(`attempt ${attempt}: every delay within [${min}, ${max}] ms and the whole range is used`, () => {
      const xs = sample(attempt, 1000 + attempt);
      const lo = Math.min(...xs);
      const hi = Math.max(...xs);
      assert.ok(lo >= min, `min ${lo} < ${min}`);
      assert.ok(hi <= max, `max ${hi} > ${max}`);
      // Uniform over the range: with 20k samples both ends are reached within 0.1 % of the width.
      const slack = (max - min) * 0.001;
      assert.ok(lo <= min + slack, `lowest ${lo} not near ${min}`);
      assert.ok(hi >= max - slack, `highest ${hi} not near ${max}`);
      for (const x of xs) assert.ok(Number.isInteger(x));
      // Roughly uniform: each tenth of the range holds ~10 % of the samples.
      const buckets = new Array(10).fill(0);
      for (const x of xs) buckets[Math.min(9, Math.floor(((x - min) / (max - min + 1)) * 10))]++;
      for (const b of buckets)
        assert.ok(b > SAMPLES * 0.08 && b < SAMPLES * 0.12, `bucket ${b} of ${SAMPLES}`);
    });
  }

  test('fresh jitter on every attempt: consecutive capped delays differ, and so do devices', () => {
    const policy = fleetPolicy();
    const random = mulberry32(7);
    const later = Array.from({ length: 100 }, (_, i) => policy.nextDelayMs({ attempt: 3 + i }, random));
    assert.ok(new Set(later).size > 90, `only ${new Set(later).size} distinct delays in 100 capped attempts`);
    const firstOf = (seed: number) => fleetPolicy().nextDelayMs({ attempt: 1 }, mulberry32(seed));
    const devices = Array.from({ length: 100 }, (_, i) => firstOf(i));
    assert.ok(new Set(devices).size > 90, 'devices with different seeds must not retry in lock-step');
  });

  test('the same seed replays the same schedule (the simulator relies on it)', () => {
    const run = () => {
      const r = mulberry32(99);
      return Array.from({ length: 10 }, (_, i) => fleetPolicy().nextDelayMs({ attempt: i + 1 }, r));
    };
    assert.deepEqual(run(), run());
  });

  test('server retry-after-ms is a lower bound, never a replacement', () => {
    // Hint above the stage: the hint wins.
    for (const x of sample(1, 5, 40_000)) assert.equal(x, 40_000);
    // Hint inside the stage: delays are >= hint and still within the stage.
    const xs = sample(1, 6, 10_000);
    for (const x of xs) assert.ok(x >= 10_000 && x <= 15_000);
    assert.ok(
      xs.filter((x) => x === 10_000).length > SAMPLES * 0.4,
      'the lower half collapses onto the hint',
    );
    assert.ok(
      xs.some((x) => x > 14_000),
      'above the hint the jitter is kept',
    );
    // Hint below the stage: no effect.
    assert.deepEqual(sample(2, 8, 1_000), sample(2, 8));
  });

  test('absurd hints are clamped (24 h by default) and garbage hints ignored', () => {
    assert.equal(applyServerHint(10, 10 * 24 * 3600_000), 24 * 3600_000);
    assert.equal(applyServerHint(10, Number.NaN), 10);
    assert.equal(applyServerHint(10, -5), 10);
    const p = fleetPolicy({ maxServerHintMs: 60_000 });
    assert.equal(p.nextDelayMs({ attempt: 1, serverHintMs: 3_600_000 }, mulberry32(1)), 60_000);
  });

  test('honorServerHint: false ignores the hint', () => {
    const p = fleetPolicy({ honorServerHint: false });
    const d = p.nextDelayMs({ attempt: 1, serverHintMs: 100_000 }, mulberry32(3));
    assert.ok(d >= 5_000 && d <= 15_000);
  });

  test('invalid stages are rejected at construction', () => {
    assert.throws(() => fleetPolicy({ stages: [] }), RangeError);
    assert.throws(() => fleetPolicy({ stages: [{ minMs: 10, maxMs: 5 }] }), RangeError);
  });
});

describe('comparison policies', () => {
  test('naive: fixed 1 s, no jitter, hint ignored (MQTT.js default)', () => {
    const p = naivePolicy();
    const r = mulberry32(1);
    for (let a = 1; a < 20; a++) assert.equal(p.nextDelayMs({ attempt: a, serverHintMs: 30_000 }, r), 1000);
  });

  test('exponential defaults: 1 s doubling to 120 s, no jitter (paho-python default)', () => {
    const p = exponentialPolicy();
    const r = mulberry32(1);
    const xs = Array.from({ length: 10 }, (_, i) => p.nextDelayMs({ attempt: i + 1 }, r));
    assert.deepEqual(xs, [1000, 2000, 4000, 8000, 16000, 32000, 64000, 120000, 120000, 120000]);
  });
});

describe('AuthBreaker', () => {
  const now = Date.UTC(2026, 0, 1);

  test('opens on exactly the 3rd consecutive authentication failure, for 60-90 min', () => {
    const b = new AuthBreaker();
    const r = mulberry32(11);
    assert.equal(b.recordAuthFailure(now, r), null);
    assert.equal(b.state(now), 'closed');
    assert.equal(b.recordAuthFailure(now, r), null);
    const openFor = b.recordAuthFailure(now, r);
    assert.ok(openFor !== null && openFor >= 3_600_000 && openFor <= 5_400_000, `open for ${openFor}`);
    assert.equal(b.state(now), 'open');
    assert.equal(b.state(now + openFor - 1), 'open');
    assert.equal(b.state(now + openFor), 'half-open');
  });

  test('the open duration is jittered across the whole 60-90 min range', () => {
    const r = mulberry32(12);
    const xs: number[] = [];
    for (let i = 0; i < 5000; i++) {
      const b = new AuthBreaker();
      b.recordAuthFailure(now, r);
      b.recordAuthFailure(now, r);
      xs.push(b.recordAuthFailure(now, r)!);
    }
    assert.ok(Math.min(...xs) >= 3_600_000 && Math.min(...xs) < 3_600_000 + 60_000);
    assert.ok(Math.max(...xs) <= 5_400_000 && Math.max(...xs) > 5_400_000 - 60_000);
  });

  test('half-open: one more authentication failure reopens at once', () => {
    const b = new AuthBreaker();
    const r = mulberry32(13);
    b.recordAuthFailure(now, r);
    b.recordAuthFailure(now, r);
    const first = b.recordAuthFailure(now, r)!;
    const later = now + first;
    assert.equal(b.state(later), 'half-open');
    const again = b.recordAuthFailure(later, r);
    assert.ok(again !== null, 'must reopen on the first failure after the cool-down');
    assert.equal(b.state(later), 'open');
    assert.equal(b.timesOpened, 2);
  });

  test('success resets the count and closes the breaker', () => {
    const b = new AuthBreaker();
    const r = mulberry32(14);
    b.recordAuthFailure(now, r);
    b.recordAuthFailure(now, r);
    b.recordSuccess();
    assert.equal(b.consecutiveFailures, 0);
    assert.equal(b.recordAuthFailure(now, r), null);
    assert.equal(b.recordAuthFailure(now, r), null);
    assert.notEqual(b.recordAuthFailure(now, r), null);
  });

  test('isAuthFailure: v5 0x86/0x87/0x8C and v3.1.1 return codes 4/5 only', () => {
    for (const c of [0x86, 0x87, 0x8c]) assert.ok(isAuthFailure(5, c));
    for (const c of [0x80, 0x88, 0x89, 0x8a, 0x9c, 0x9f, 4, 5]) assert.ok(!isAuthFailure(5, c), `v5 ${c}`);
    for (const c of [4, 5]) assert.ok(isAuthFailure(4, c));
    for (const c of [1, 2, 3, 0x86]) assert.ok(!isAuthFailure(4, c), `v4 ${c}`);
  });
});
