import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FakeClock } from '@breakwater/testkit';
import { Registry } from 'prom-client';
import { AdaptiveLimit } from '../../src/guard/adaptive-limit.js';
import type { AuthResult } from '../../src/guard/authenticators/types.js';
import { BackendGate } from '../../src/guard/backend-gate.js';
import { BreakerState, CircuitBreaker, Permit } from '../../src/guard/circuit-breaker.js';
import { resolveGuardConfig } from '../../src/guard/config.js';
import { GuardMetrics } from '../../src/guard/metrics.js';
import { TokenBucket } from '../../src/guard/token-bucket.js';

const limits = (o: Record<string, unknown> = {}) =>
  resolveGuardConfig({ authenticators: { http: { h: { url: 'http://127.0.0.1:1/', limits: o } } } })
    .authenticators.http.h!.limits;

describe('TokenBucket', () => {
  it('grants at most burst + rate × elapsed', () => {
    const clock = new FakeClock();
    const b = new TokenBucket(10, 5, clock.now());
    let granted = 0;
    for (let i = 0; i < 100; i++) if (b.take(clock.now())) granted++;
    assert.equal(granted, 5);
    clock.advance(300);
    for (let i = 0; i < 100; i++) if (b.take(clock.now())) granted++;
    assert.equal(granted, 8, '3 tokens refilled in 300 ms');
    clock.advance(10_000);
    for (let i = 0; i < 100; i++) if (b.take(clock.now())) granted++;
    assert.equal(granted, 13, 'an idle bucket banks at most `burst`');
    assert.ok(b.msUntilToken(clock.now()) > 0);
  });
});

describe('CircuitBreaker', () => {
  const opts = {
    windowMs: 10_000,
    minRequests: 4,
    errorRatio: 0.5,
    openMs: 1000,
    maxOpenMs: 4000,
    halfOpenProbes: 1,
  };

  it('opens on the error ratio, probes half-open, backs off on a failed probe, closes on success', () => {
    const clock = new FakeClock();
    const states: number[] = [];
    const cb = new CircuitBreaker(opts, clock, (s) => states.push(s));
    cb.record(true, Permit.Normal);
    cb.record(false, Permit.Normal);
    cb.record(false, Permit.Normal);
    assert.equal(cb.state, BreakerState.Closed, 'below minRequests');
    cb.record(false, Permit.Normal);
    assert.equal(cb.state, BreakerState.Open);
    assert.equal(cb.tryAcquire(), Permit.Denied);
    clock.advance(1000);
    const probe = cb.tryAcquire();
    assert.equal(probe, Permit.Probe);
    assert.equal(cb.tryAcquire(), Permit.Denied, 'one probe at a time');
    cb.record(false, probe);
    assert.equal(cb.state, BreakerState.Open);
    clock.advance(1000);
    assert.equal(cb.tryAcquire(), Permit.Denied, 'open period doubled to 2 s');
    clock.advance(1000);
    const probe2 = cb.tryAcquire();
    cb.record(true, probe2);
    assert.equal(cb.state, BreakerState.Closed);
    assert.deepEqual(states, [
      BreakerState.Open,
      BreakerState.HalfOpen,
      BreakerState.Open,
      BreakerState.HalfOpen,
      BreakerState.Closed,
    ]);
  });

  it('old failures slide out of the window', () => {
    const clock = new FakeClock();
    const cb = new CircuitBreaker(opts, clock);
    for (let i = 0; i < 3; i++) cb.record(false, Permit.Normal);
    clock.advance(11_000);
    cb.record(false, Permit.Normal);
    assert.equal(cb.state, BreakerState.Closed);
  });
});

const tick = () => new Promise((r) => setImmediate(r));

describe('AdaptiveLimit', () => {
  const opts = {
    initial: 4,
    min: 1,
    max: 64,
    tolerance: 1.5,
    smoothing: 0.5,
    baselineWindowMs: 5000,
    backoffRatio: 0.5,
  };

  it('grows while latency stays near the no-load baseline and the limit is used', () => {
    const l = new AdaptiveLimit(opts, 0);
    for (let i = 0; i < 20; i++) l.onSample(2, l.current, i);
    assert.ok(l.current > 4, `grew to ${l.current}`);
    assert.equal(l.baselineMs, 2);
  });

  it('does not grow while the caller uses less than half of the limit', () => {
    const l = new AdaptiveLimit(opts, 0);
    for (let i = 0; i < 20; i++) l.onSample(2, 1, i);
    assert.equal(l.current, 4);
  });

  it('shrinks when latency rises above tolerance × baseline, and on timeouts', () => {
    const l = new AdaptiveLimit({ ...opts, initial: 32 }, 0);
    l.onSample(2, 32, 0);
    const before = l.current;
    for (let i = 1; i < 10; i++) l.onSample(40, l.current, i);
    assert.ok(l.current < before, `${l.current} < ${before}`);
    const afterLatency = l.current;
    l.onTimeout();
    assert.ok(l.current < afterLatency || l.current === opts.min);
  });

  it('re-learns the baseline when the backend becomes slow for good (two windows later)', () => {
    const l = new AdaptiveLimit(opts, 0);
    l.onSample(2, 4, 0);
    // 200 ms per call from now on: first the limit drops, then the old baseline ages out.
    for (let t = 100; t < 12_000; t += 100) l.onSample(200, l.current, t);
    assert.equal(l.baselineMs, 200);
    const settled = l.current;
    for (let t = 12_000; t < 14_000; t += 100) l.onSample(200, l.current, t);
    assert.ok(l.current >= settled, 'grows again against the new baseline');
  });

  it('reset starts from the initial limit and forgets the baseline', () => {
    const l = new AdaptiveLimit(opts, 0);
    for (let i = 0; i < 20; i++) l.onSample(2, l.current, i);
    l.reset(100);
    assert.equal(l.current, 4);
    assert.equal(l.baselineMs, Number.POSITIVE_INFINITY);
  });
});

describe('BackendGate', () => {
  // min = max pins the adaptive limit, so these tests are about the gate, not the arithmetic.
  const fixed = (n: number, o: Record<string, unknown> = {}) =>
    limits({ maxInFlight: n, adaptive: { initial: n, min: n }, ...o });

  it('waits in FIFO order for a slot, rejects beyond maxWaiting and callers that may not wait', async () => {
    const clock = new FakeClock();
    const metrics = new GuardMetrics(new Registry());
    const gate = new BackendGate(
      'b',
      fixed(2, { queue: { maxWaiting: 2, maxWaitMs: 1000 } }),
      clock,
      metrics,
    );
    let calls = 0;
    const pending: Array<(r: AuthResult) => void> = [];
    const slow = () => {
      calls++;
      return new Promise<AuthResult>((resolve) => pending.push(resolve));
    };
    const a = gate.call(slow);
    const b = gate.call(slow);
    const c = gate.call(slow);
    const d = gate.call(slow);
    assert.equal(gate.waiting, 2);
    const e = await gate.call(slow);
    assert.deepEqual(e, { outcome: 'error', reason: 'limit', retryAfterMs: 100, busy: true });
    const noWait = await gate.call(slow, { wait: false });
    assert.equal(noWait.outcome === 'error' && noWait.reason, 'limit');
    assert.equal(calls, 2);
    pending[0]!({ outcome: 'allow' });
    assert.equal((await a).outcome, 'allow');
    await tick();
    assert.equal(calls, 3, 'the first waiter started when a slot freed');
    assert.equal(gate.waiting, 1);
    pending[1]!({ outcome: 'deny', reason: 'x' });
    pending[2]!({ outcome: 'allow' });
    assert.equal((await b).outcome, 'deny');
    assert.equal((await c).outcome, 'allow');
    await tick();
    assert.equal(calls, 4);
    pending[3]!({ outcome: 'allow' });
    assert.equal((await d).outcome, 'allow');
    await tick();
    assert.equal(gate.inflight, 0);
    assert.equal(gate.waiting, 0);
    const rejected = await metrics.backendRejected.get();
    assert.equal(rejected.values.find((v) => v.labels.reason === 'limit')?.value, 2);
    assert.equal(
      (await metrics.backendQueries.get()).values[0]!.value,
      4,
      'queries_total counts only calls that went out',
    );
    gate.close();
  });

  it('answers a waiter that got no slot within maxWaitMs with wait_timeout, on the injected clock', async () => {
    const clock = new FakeClock();
    const gate = new BackendGate('b', fixed(1, { queue: { maxWaiting: 10, maxWaitMs: 300 } }), clock);
    let release!: (r: AuthResult) => void;
    const held = gate.call(() => new Promise<AuthResult>((resolve) => (release = resolve)));
    let ran = false;
    const waiter = gate.call(async () => {
      ran = true;
      return { outcome: 'allow' };
    });
    clock.advance(300);
    const r = await waiter;
    assert.equal(r.outcome === 'error' && r.reason, 'wait_timeout');
    assert.equal(r.outcome === 'error' && r.busy, true);
    assert.equal(ran, false);
    assert.equal(gate.waiting, 0);
    release({ outcome: 'allow' });
    assert.equal((await held).outcome, 'allow');
  });

  it('rejects on the operator ceiling (calls/s) and when the breaker is open', async () => {
    const clock = new FakeClock();
    const metrics = new GuardMetrics(new Registry());
    const gate = new BackendGate(
      'b',
      limits({ ratePerSec: 1, burst: 2, breaker: { minRequests: 2 } }),
      clock,
      metrics,
    );
    const fail = async (): Promise<AuthResult> => ({ outcome: 'error', reason: 'db down' });
    assert.equal((await gate.call(fail)).outcome, 'error');
    assert.equal(gate.breaker.state, BreakerState.Closed, 'one failure is below minRequests');
    assert.equal((await gate.call(fail)).outcome, 'error');
    assert.equal(gate.breaker.state, BreakerState.Open);
    const open = await gate.call(fail);
    assert.equal(open.outcome === 'error' && open.reason, 'breaker_open');
    assert.equal(open.outcome === 'error' && open.busy, true);

    const ceiling = new BackendGate('c', limits({ ratePerSec: 1, burst: 1 }), clock);
    const ok = async (): Promise<AuthResult> => ({ outcome: 'allow' });
    assert.equal((await ceiling.call(ok)).outcome, 'allow');
    const limited = await ceiling.call(ok);
    assert.equal(limited.outcome === 'error' && limited.reason, 'rate_limited');
    clock.advance(1000);
    assert.equal((await ceiling.call(ok)).outcome, 'allow', 'a token refilled after 1 s');
    assert.equal((await metrics.breakerState.get()).values[0]!.value, BreakerState.Open);
  });

  it('reports recovery when the breaker closes again and restarts the limit from its initial value', async () => {
    const clock = new FakeClock();
    let recovered = 0;
    const gate = new BackendGate(
      'b',
      limits({ breaker: { minRequests: 2 } }),
      clock,
      undefined,
      () => recovered++,
    );
    const fail = async (): Promise<AuthResult> => ({ outcome: 'error', reason: 'db down' });
    await gate.call(fail);
    await gate.call(fail);
    assert.equal(gate.breaker.state, BreakerState.Open);
    assert.equal(recovered, 0);
    clock.advance(60_000);
    assert.equal((await gate.call(async () => ({ outcome: 'allow' }))).outcome, 'allow');
    assert.equal(gate.breaker.state, BreakerState.Closed);
    assert.equal(recovered, 1);
    assert.equal(gate.limiter.current, 4);
  });

  it('keeps the limit at the ceiling given by the caller (postgres: the pool size)', () => {
    const gate = new BackendGate(
      'b',
      limits({ maxInFlight: 64, adaptive: { initial: 16 } }),
      new FakeClock(),
      undefined,
      undefined,
      8,
    );
    assert.equal(gate.limiter.current, 8);
  });

  it('times out on the injected clock but holds the slot until the call really ends', async () => {
    const clock = new FakeClock();
    const gate = new BackendGate('b', fixed(1, { timeoutMs: 500 }), clock);
    let release!: (r: AuthResult) => void;
    let aborted = false;
    const p = gate.call((signal) => {
      signal.addEventListener('abort', () => {
        aborted = true;
      });
      return new Promise<AuthResult>((resolve) => {
        release = resolve;
      });
    });
    clock.advance(500);
    assert.deepEqual(await p, { outcome: 'error', reason: 'timeout' });
    assert.equal(aborted, true);
    assert.equal(gate.inflight, 1);
    const busy = await gate.call(async () => ({ outcome: 'allow' }), { wait: false });
    assert.equal(busy.outcome === 'error' && busy.reason, 'limit');
    release({ outcome: 'allow' });
    await tick();
    assert.equal(gate.inflight, 0);
  });
});
