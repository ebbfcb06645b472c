import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FakeClock } from '@breakwater/testkit';
import { Registry } from 'prom-client';
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

describe('BackendGate', () => {
  it('rejects without calling when the bulkhead is full, the cap is reached or the breaker is open', async () => {
    const clock = new FakeClock();
    const metrics = new GuardMetrics(new Registry());
    const gate = new BackendGate(
      'b',
      limits({ maxInFlight: 2, ratePerSec: 1, burst: 3, breaker: { minRequests: 2 } }),
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
    assert.deepEqual(await gate.call(slow), { outcome: 'error', reason: 'bulkhead_full', retryAfterMs: 100 });
    assert.equal(calls, 2);
    pending[0]!({ outcome: 'allow' });
    pending[1]!({ outcome: 'deny', reason: 'x' });
    assert.equal((await a).outcome, 'allow');
    assert.equal((await b).outcome, 'deny');
    assert.equal(gate.inflight, 0);
    // Third token of the burst goes to a failing call; then the bucket is empty.
    assert.equal((await gate.call(async () => ({ outcome: 'error', reason: 'db down' }))).outcome, 'error');
    const limited = await gate.call(slow);
    assert.equal(limited.outcome === 'error' && limited.reason, 'rate_limited');
    assert.equal(calls, 2);
    clock.advance(1000);
    assert.equal((await gate.call(async () => ({ outcome: 'error', reason: 'db down' }))).outcome, 'error');
    const open = await gate.call(slow);
    assert.equal(open.outcome === 'error' && open.reason, 'breaker_open');
    const text = await metrics.backendQueries.get();
    assert.equal(text.values[0]!.value, 4, 'queries_total counts only calls that went out');
    assert.equal((await metrics.breakerState.get()).values[0]!.value, BreakerState.Open);
  });

  it('reports recovery when the breaker closes again (the guard starts admission slow start)', async () => {
    const clock = new FakeClock();
    let recovered = 0;
    const gate = new BackendGate(
      'b',
      limits({ ratePerSec: 100, burst: 100, breaker: { minRequests: 2 } }),
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
  });

  it('times out on the injected clock but holds the bulkhead slot until the call really ends', async () => {
    const clock = new FakeClock();
    const gate = new BackendGate('b', limits({ maxInFlight: 1, timeoutMs: 500 }), clock);
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
    const busy = await gate.call(async () => ({ outcome: 'allow' }));
    assert.equal(busy.outcome === 'error' && busy.reason, 'bulkhead_full');
    release({ outcome: 'allow' });
    await new Promise((r) => setImmediate(r));
    assert.equal(gate.inflight, 0);
  });
});
