/**
 * Alert rules on synthetic series: samples are written straight into the metric history at
 * fake-clock times and the engine is evaluated second by second, so every assertion is about
 * which events came out, never about how long anything took.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AlertEngine } from '../src/alerts/engine.js';
import { resolveRules } from '../src/alerts/rules.js';
import { histogramQuantile, onsetOf } from '../src/alerts/series-math.js';
import type { AlertEvent } from '../src/alerts/types.js';
import { MetricHistory } from '../src/metrics-history/history.js';
import { SeriesRing } from '../src/metrics-history/ring.js';

const T0 = Date.UTC(2026, 0, 1, 12, 0, 0);

type Feed = (history: MetricHistory, at: number, second: number) => void;

class Scenario {
  readonly history = new MetricHistory({ retentionSec: 600 });
  readonly events: AlertEvent[] = [];
  readonly engine: AlertEngine;
  now = T0;
  second = 0;

  constructor(overrides: Parameters<typeof resolveRules>[0] = {}) {
    this.engine = new AlertEngine({
      rules: resolveRules(overrides),
      history: this.history,
      now: () => this.now,
    });
    this.engine.subscribe({ onAlert: (e) => void this.events.push(e) });
  }

  /** Runs `seconds` ticks: feed the second's samples, then evaluate. */
  run(seconds: number, feed: Feed): this {
    for (let i = 0; i < seconds; i++) {
      this.now += 1000;
      this.second++;
      feed(this.history, this.now, this.second);
      this.engine.evaluate(this.now);
    }
    return this;
  }

  of(ruleId: string, state?: 'firing' | 'resolved'): AlertEvent[] {
    return this.events.filter((e) => e.ruleId === ruleId && (state === undefined || e.state === state));
  }
}

function auth(success: number, failure: number, listener = 'tcp'): Feed {
  return (h, at) => {
    h.record(
      'breakwater_auth_total',
      { listener, method: 'postgres', outcome: 'success' },
      at,
      success,
      'rate',
    );
    h.record(
      'breakwater_auth_total',
      { listener, method: 'postgres', outcome: 'failure' },
      at,
      failure,
      'rate',
    );
  };
}

function gauge(name: string, value: number, labels: Record<string, string> = { listener: 'tcp' }): Feed {
  return (h, at) => void h.record(name, labels, at, value, 'gauge');
}

function attempts(perSecond: number, listener = 'tcp'): Feed {
  return (h, at) =>
    void h.record('breakwater_connection_attempts_total', { listener }, at, perSecond, 'rate');
}

describe('SeriesRing', () => {
  it('keeps the last N seconds and ignores slots from an earlier lap', () => {
    const ring = new SeriesRing(10);
    for (let s = 0; s < 25; s++) ring.record(T0 + s * 1000, s);
    assert.deepEqual(
      ring.range(T0, T0 + 30_000).map(([, v]) => v),
      [15, 16, 17, 18, 19, 20, 21, 22, 23, 24],
    );
    assert.equal(ring.at(T0 + 5000), undefined, 'overwritten');
    // A gap: seconds 25..32 never written; slots still hold the previous lap and must not be read.
    ring.record(T0 + 33_000, 33);
    assert.deepEqual(ring.range(T0 + 25_000, T0 + 40_000), [[T0 + 33_000, 33]]);
    assert.equal(ring.latestAt, T0 + 33_000);
  });
});

describe('series math', () => {
  it('histogramQuantile interpolates like Prometheus', () => {
    const buckets = new Map([
      [0.1, 50],
      [1, 100],
      [Number.POSITIVE_INFINITY, 100],
    ]);
    assert.equal(histogramQuantile(0.5, buckets), 0.1);
    assert.ok(Math.abs(histogramQuantile(0.99, buckets) - 0.982) < 1e-9);
    assert.ok(Number.isNaN(histogramQuantile(0.99, new Map([[1, 0]]))));
    // Beyond the last finite bound: that bound.
    assert.equal(
      histogramQuantile(
        0.99,
        new Map([
          [1, 10],
          [Number.POSITIVE_INFINITY, 100],
        ]),
      ),
      1,
    );
  });

  it('onsetOf finds the start of the trailing abnormal run, skipping unknown samples', () => {
    const points: Array<[number, number]> = [
      [1, 9],
      [2, 1],
      [3, 9],
      [4, -1],
      [5, 9],
    ];
    assert.equal(
      onsetOf(points, (v) => (v < 0 ? null : v > 5)),
      3,
    );
    assert.equal(
      onsetOf(points, (v) => v > 100),
      undefined,
    );
  });
});

describe('auth-failure-ratio', () => {
  it('fires once on a storm with startedAt at the first failing second, then resolves after clearSec', () => {
    const s = new Scenario();
    s.run(120, auth(100, 1)); // 1 % failures: normal
    assert.equal(s.events.length, 0);
    const faultAt = s.now + 1000;
    s.run(60, auth(100, 400)); // credential rotated wrong: 80 % failures
    const firing = s.of('auth-failure-ratio', 'firing');
    assert.equal(firing.length, 1, 'fired exactly once (deduplicated) over 60 s of storm');
    const e = firing[0]!;
    assert.equal(e.startedAt, faultAt, 'TTD baseline: the first abnormal sample');
    // The 1-min ratio passes 20 % after a few seconds of storm, then forSec (10 s) runs.
    assert.ok(e.at - e.startedAt >= 10_000, 'not before forSec');
    assert.ok(e.at - e.startedAt <= 30_000, 'detected within 30 s of the fault (issue 7)');
    assert.deepEqual(e.labels, { listener: 'tcp' });
    assert.equal(e.severity, 'critical');
    assert.equal(e.incidentType, 'mass-disconnect');
    assert.equal(e.runbook, 'auth-failing-fleet-wide');
    assert.equal(e.threshold, 0.2);
    assert.ok(e.value > 0.2);
    assert.match(e.summary, /^auth failures at [\d.]+ % of decisions \(threshold 20.0 %\) \(listener tcp\)$/);

    // Repaired: the 1-min ratio falls below 20 % within the window, then clearSec (60 s) of normal.
    s.run(200, auth(100, 1));
    const resolved = s.of('auth-failure-ratio', 'resolved');
    assert.equal(resolved.length, 1);
    assert.equal(resolved[0]!.startedAt, faultAt);
    assert.equal(s.of('auth-failure-ratio', 'firing').length, 1);
    assert.deepEqual(s.engine.active(), []);
  });

  it('ignores a storm below minVolume and a listener with no decisions', () => {
    const s = new Scenario();
    s.run(120, (h, at, sec) => {
      // one failure in a quiet minute would be 100 %, but 1 decision is below minVolume 20
      if (sec % 60 === 0) auth(0, 1)(h, at, sec);
    });
    assert.equal(s.events.length, 0);
  });

  it('threshold and forSec can be overridden; a disabled rule never fires', () => {
    const strict = new Scenario({ 'auth-failure-ratio': { threshold: 0.05, forSec: 0 } });
    strict.run(61, auth(90, 10)); // 10 %
    assert.equal(strict.of('auth-failure-ratio', 'firing').length, 1);
    assert.equal(strict.of('auth-failure-ratio', 'firing')[0]!.threshold, 0.05);

    const off = new Scenario({ 'auth-failure-ratio': { enabled: false } });
    off.run(61, auth(10, 90));
    assert.equal(off.events.length, 0);
  });
});

describe('hysteresis and dedup (zombie-sockets: > 500 for 30 s, clear after 60 s)', () => {
  it('a single noisy sample neither fires nor resolves', () => {
    const s = new Scenario();
    s.run(10, gauge('breakwater_sockets_without_connect', 10));
    s.run(1, gauge('breakwater_sockets_without_connect', 5000)); // one spike
    s.run(60, gauge('breakwater_sockets_without_connect', 10));
    assert.equal(s.events.length, 0, 'a spike shorter than forSec does not fire');
    assert.deepEqual(s.engine.active(), []);

    const spikeStart = s.now + 1000;
    s.run(45, gauge('breakwater_sockets_without_connect', 900));
    assert.equal(s.of('zombie-sockets', 'firing').length, 1);
    assert.equal(s.of('zombie-sockets', 'firing')[0]!.startedAt, spikeStart);
    s.run(1, gauge('breakwater_sockets_without_connect', 10)); // one quiet sample while firing
    s.run(30, gauge('breakwater_sockets_without_connect', 900));
    assert.equal(s.of('zombie-sockets', 'resolved').length, 0, 'one normal sample does not resolve');
    assert.equal(s.of('zombie-sockets', 'firing').length, 1, 'still one firing event (dedup)');
    s.run(59, gauge('breakwater_sockets_without_connect', 10));
    assert.equal(s.of('zombie-sockets', 'resolved').length, 0, 'clearSec not reached yet');
    s.run(2, gauge('breakwater_sockets_without_connect', 10));
    assert.equal(s.of('zombie-sockets', 'resolved').length, 1);
  });

  it('sums listeners and counts a vanished series as normal', () => {
    const s = new Scenario({ 'zombie-sockets': { forSec: 0, clearSec: 5 } });
    s.run(3, (h, at) => {
      h.record('breakwater_sockets_without_connect', { listener: 'tcp' }, at, 300, 'gauge');
      h.record('breakwater_sockets_without_connect', { listener: 'ws' }, at, 300, 'gauge');
    });
    assert.equal(s.of('zombie-sockets', 'firing').length, 1);
    assert.equal(s.of('zombie-sockets', 'firing')[0]!.value, 600);
    s.run(10, () => {}); // no samples at all
    assert.equal(s.of('zombie-sockets', 'resolved').length, 1);
  });
});

describe('the other metric rules fire on their incident and stay quiet in normal operation', () => {
  const cases: Array<{ rule: string; normal: Feed; abnormal: Feed; seconds?: number; labels?: object }> = [
    {
      rule: 'connection-attempts-doubling',
      normal: attempts(20),
      abnormal: attempts(100),
      labels: { listener: 'tcp' },
    },
    {
      rule: 'new-connection-burst',
      normal: attempts(50),
      abnormal: attempts(150), // 750 in 5 s
    },
    {
      rule: 'connected-devices-drop',
      normal: gauge('breakwater_connections', 1000),
      abnormal: (h, at, sec) => gauge('breakwater_connections', sec % 2 ? 850 : 840)(h, at, sec),
    },
    {
      rule: 'open-sockets-high',
      normal: gauge('breakwater_open_sockets', 40_000),
      abnormal: gauge('breakwater_open_sockets', 60_000),
      seconds: 90,
    },
    {
      rule: 'fd-usage-high',
      normal: (h, at) => {
        h.record('process_open_fds', {}, at, 1000, 'gauge');
        h.record('process_max_fds', {}, at, 20_000, 'gauge');
      },
      abnormal: (h, at) => {
        h.record('process_open_fds', {}, at, 17_000, 'gauge');
        h.record('process_max_fds', {}, at, 20_000, 'gauge');
      },
    },
    {
      rule: 'auth-backend-breaker-open',
      normal: gauge('breakwater_auth_backend_breaker_state', 0, { backend: 'postgres' }),
      abnormal: gauge('breakwater_auth_backend_breaker_state', 2, { backend: 'postgres' }),
      labels: { backend: 'postgres' },
    },
    {
      rule: 'auth-backend-latency',
      normal: histogram(0.02),
      abnormal: histogram(3),
      labels: { backend: 'postgres' },
    },
    {
      rule: 'message-rate-over-budget',
      normal: (h, at) => void h.record('breakwater_messages_received_total', { qos: '1' }, at, 5000, 'rate'),
      abnormal: (h, at) =>
        void h.record('breakwater_messages_received_total', { qos: '1' }, at, 30_000, 'rate'),
      seconds: 200,
    },
  ];

  for (const c of cases) {
    it(c.rule, () => {
      const s = new Scenario();
      s.run(180, c.normal);
      assert.deepEqual(s.of(c.rule), [], 'quiet while normal');
      s.run(c.seconds ?? 60, c.abnormal);
      const firing = s.of(c.rule, 'firing');
      assert.equal(firing.length, 1, `${c.rule} fired once`);
      if (c.labels) assert.deepEqual(firing[0]!.labels, c.labels);
      assert.ok(firing[0]!.startedAt <= firing[0]!.at);
      assert.ok(firing[0]!.startedAt > T0 + 180_000, 'onset is in the abnormal phase');
    });
  }
});

/** Auth backend calls per second, all taking `seconds`, as bucket rates. */
function histogram(seconds: number): Feed {
  const bounds = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];
  return (h, at) => {
    for (const le of bounds) {
      h.record(
        'breakwater_auth_backend_duration_seconds_bucket',
        { backend: 'postgres', le: String(le) },
        at,
        seconds <= le ? 20 : 0,
        'rate',
      );
    }
    h.record(
      'breakwater_auth_backend_duration_seconds_bucket',
      { backend: 'postgres', le: '+Inf' },
      at,
      20,
      'rate',
    );
  };
}

describe('event rules', () => {
  it('raise fires once per label set, clear resolves; telemetry expires by itself', () => {
    const s = new Scenario();
    s.engine.raise('ota-gate-failed', { labels: { campaign: 'c1', wave: '2' }, value: 0.12 });
    s.engine.raise('ota-gate-failed', { labels: { campaign: 'c1', wave: '2' }, value: 0.15 });
    s.engine.raise('ota-gate-failed', { labels: { campaign: 'c2', wave: '1' }, value: 0.3, threshold: 0.05 });
    assert.equal(s.of('ota-gate-failed', 'firing').length, 2);
    const first = s.of('ota-gate-failed', 'firing')[0]!;
    assert.equal(first.incidentType, 'bad-firmware-push');
    assert.equal(first.runbook, 'bad-firmware-push');
    assert.equal(s.of('ota-gate-failed', 'firing')[1]!.threshold, 0.05, "the campaign's gate");
    s.run(3600, () => {});
    assert.equal(s.of('ota-gate-failed', 'resolved').length, 0, 'stays until cleared');
    assert.equal(s.engine.clear('ota-gate-failed', { campaign: 'c1', wave: '2' }), true);
    assert.equal(s.engine.clear('ota-gate-failed', { campaign: 'c1', wave: '2' }), false);
    assert.equal(s.of('ota-gate-failed', 'resolved').length, 1);
    assert.equal(s.of('ota-gate-failed', 'resolved')[0]!.value, 0.15);

    const at = s.now;
    s.engine.raise('telemetry-validation-failures', {
      labels: { schema: 'temp' },
      value: 40,
      startedAt: at - 5000,
    });
    s.run(200, () => {});
    s.engine.raise('telemetry-validation-failures', { labels: { schema: 'temp' }, value: 10 });
    s.run(299, () => {});
    assert.equal(s.of('telemetry-validation-failures', 'resolved').length, 0);
    s.run(2, () => {});
    const tv = s.of('telemetry-validation-failures');
    assert.deepEqual(
      tv.map((e) => e.state),
      ['firing', 'resolved'],
    );
    assert.equal(tv[0]!.startedAt, at - 5000);
    assert.equal(tv[0]!.incidentType, 'data-quality');
  });

  it('a throwing sink does not stop the others', () => {
    const s = new Scenario();
    s.engine.subscribe({
      onAlert: () => {
        throw new Error('boom');
      },
    });
    const seen: string[] = [];
    s.engine.subscribe({ onAlert: async (e) => void seen.push(e.ruleId) });
    s.engine.raise('ota-gate-failed', { labels: { campaign: 'x' } });
    assert.deepEqual(seen, ['ota-gate-failed']);
    assert.equal(s.engine.recent().length, 1);
  });
});

describe('RegistrySampler', () => {
  it('records gauges as read, counters and histogram buckets as per-second rates, survives a reset', async () => {
    const { Counter, Gauge, Histogram, Registry } = await import('prom-client');
    const { RegistrySampler } = await import('../src/metrics-history/sampler.js');
    const registry = new Registry();
    const attempts = new Counter({
      name: 'breakwater_x_total',
      help: 'x',
      labelNames: ['listener'],
      registers: [registry],
    });
    const open = new Gauge({ name: 'breakwater_open', help: 'x', registers: [registry] });
    const latency = new Histogram({
      name: 'breakwater_lat_seconds',
      help: 'x',
      buckets: [0.1, 1],
      registers: [registry],
    });
    new Gauge({ name: 'unrelated_gauge', help: 'x', registers: [registry] }).set(1);
    const history = new MetricHistory();
    const sampler = new RegistrySampler(registry, history);

    attempts.inc({ listener: 'tcp' }, 10);
    open.set(7);
    await sampler.sample(T0);
    attempts.inc({ listener: 'tcp' }, 30);
    latency.observe(0.5);
    latency.observe(0.05);
    await sampler.sample(T0 + 2000); // two seconds later: 30 / 2 s
    attempts.reset();
    attempts.inc({ listener: 'tcp' }, 4);
    await sampler.sample(T0 + 3000);

    const rate = history.series('breakwater_x_total')[0]!;
    assert.equal(rate.kind, 'rate');
    assert.deepEqual(rate.ring.range(T0, T0 + 3000), [
      [T0 + 2000, 15],
      [T0 + 3000, 4],
    ]);
    assert.deepEqual(history.series('breakwater_open')[0]!.ring.range(T0, T0 + 3000)[0], [T0, 7]);
    const buckets = history.series('breakwater_lat_seconds_bucket');
    assert.deepEqual(buckets.map((b) => b.labels.le).sort(), ['+Inf', '0.1', '1']);
    const le1 = buckets.find((b) => b.labels.le === '1')!;
    assert.equal(le1.ring.at(T0 + 2000), 1, '2 observations <= 1 s over 2 s');
    assert.deepEqual(history.series('unrelated_gauge'), []);
    // A label set first used after sampling began counts from 0 at the previous sample.
    attempts.inc({ listener: 'ws' }, 8);
    await sampler.sample(T0 + 5000);
    const ws = history.series('breakwater_x_total').find((x) => x.labels.listener === 'ws')!;
    assert.deepEqual(ws.ring.range(T0, T0 + 5000), [[T0 + 5000, 4]]);
  });

  it('runs only the collectors of the metrics it keeps', async () => {
    // prom-client's active-handle lists are one entry per socket: read every second they were
    // most of an idle broker's garbage.
    const { Gauge, Registry } = await import('prom-client');
    const { RegistrySampler } = await import('../src/metrics-history/sampler.js');
    const registry = new Registry();
    let skippedRuns = 0;
    let keptRuns = 0;
    new Gauge({
      name: 'nodejs_active_handles',
      help: 'x',
      registers: [registry],
      collect() {
        skippedRuns++;
      },
    });
    new Gauge({
      name: 'breakwater_kept',
      help: 'x',
      registers: [registry],
      collect() {
        keptRuns++;
        this.set(keptRuns);
      },
    });
    const history = new MetricHistory();
    const sampler = new RegistrySampler(registry, history);
    await sampler.sample(T0);
    await sampler.sample(T0 + 1000);
    assert.equal(skippedRuns, 0, 'an excluded metric is not collected');
    assert.equal(keptRuns, 2);
    assert.deepEqual(history.series('breakwater_kept')[0]!.ring.range(T0, T0 + 1000), [
      [T0, 1],
      [T0 + 1000, 2],
    ]);
  });

  it('keeps CPU time and event-loop lag fresh, though prom-client sets them from metrics it does not keep', async () => {
    const { collectDefaultMetrics, Registry } = await import('prom-client');
    const { RegistrySampler } = await import('../src/metrics-history/sampler.js');
    const registry = new Registry();
    collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: 10 });
    const history = new MetricHistory();
    const sampler = new RegistrySampler(registry, history);
    await sampler.sample(T0);
    // 200 ms of CPU on the event loop: CPU time grows by as much.
    const until = Date.now() + 200;
    while (Date.now() < until) {}
    await new Promise((r) => setTimeout(r, 50));
    await sampler.sample(T0 + 1000);
    const cpu = history.series('process_cpu_seconds_total')[0]?.ring.at(T0 + 1000);
    // Stale, the counter would not move: a rate of exactly 0 (how much CPU the loop got is load-bound).
    assert.ok(cpu !== undefined && cpu > 0, `CPU seconds per second recorded: ${cpu}`);
    const lag = history.series('nodejs_eventloop_lag_p99_seconds')[0]?.ring.at(T0 + 1000);
    // The percentiles have no value until their driver's collector has run once.
    assert.ok(lag !== undefined && lag > 0, `event-loop lag p99 recorded: ${lag}`);
    assert.deepEqual(history.series('process_cpu_user_seconds_total'), [], 'the driver is not recorded');
  });

  it('caps the number of series', () => {
    const history = new MetricHistory({ retentionSec: 60, maxSeries: 2 });
    assert.equal(history.record('a', {}, T0, 1), true);
    assert.equal(history.record('b', {}, T0, 1), true);
    assert.equal(history.record('c', {}, T0, 1), false);
    assert.equal(history.record('a', {}, T0 + 1000, 2), true, 'existing series keep recording');
    assert.equal(history.droppedSamples, 1);
    assert.deepEqual(history.names(), ['a', 'b']);
  });
});
