/** The pure parts of the scenario runner and the report: parsing, scoring, charts, flags. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { peakWindowSum, timeToConnected } from '../src/report/scores.js';
import { lineChart, niceCeil } from '../src/report/svg.js';
import { parseDuration, parseTarget, resolveParams } from '../src/run.js';
import { findScenario } from '../src/scenarios/catalog.js';
import { MetricsSnapshot, parsePrometheusText } from '../src/scenarios/prometheus.js';
import type { SecondSample } from '../src/scenarios/types.js';

const exposition = `# HELP breakwater_auth_total Authentication decisions
# TYPE breakwater_auth_total counter
breakwater_auth_total{listener="mqtt",method="pg",outcome="success"} 40
breakwater_auth_total{listener="mqtt",method="pg",outcome="stale_admit"} 2
breakwater_auth_total{listener="probe",method="anonymous",outcome="success"} 1
breakwater_disconnects_total{reason="a \\"quoted\\", {odd} value"} 3
process_open_fds 57
process_max_fds 20000
nodejs_heap_space_size_total_bytes{space="new"} 1.6e+06
weird_metric NaN
`;

describe('Prometheus text', () => {
  test('labels, escapes, exponents and sums', () => {
    const samples = parsePrometheusText(exposition);
    assert.equal(samples.length, 8);
    const odd = samples.find((s) => s.name === 'breakwater_disconnects_total');
    assert.deepEqual(odd?.labels, { reason: 'a "quoted", {odd} value' });
    const m = new MetricsSnapshot(samples);
    assert.equal(m.sum('breakwater_auth_total'), 43);
    assert.equal(m.sum('breakwater_auth_total', { listener: 'mqtt' }), 42);
    assert.deepEqual(m.byLabel('breakwater_auth_total', 'outcome'), { success: 41, stale_admit: 2 });
    assert.equal(m.max('process_open_fds'), 57);
    assert.equal(m.sum('nodejs_heap_space_size_total_bytes'), 1_600_000);
    assert.equal(m.has('breakwater_auth_backend_queries_total'), false);
    assert.equal(m.max('breakwater_auth_backend_queries_total'), null);
  });
});

function sample(t: number, attempts: number, connected: number): SecondSample {
  return {
    t,
    attempts,
    connected,
    refusals: {},
    networkErrors: 0,
    published: 0,
    acked: 0,
    delivered: 0,
    brokerAttempts: null,
    brokerConnections: null,
    backendQueries: null,
    authOutcomes: {},
    admissionRefusals: {},
    messagesDropped: {},
    openSockets: null,
    socketsWithoutConnect: null,
    openFds: null,
    maxFds: null,
    messagesIn: null,
    messagesOut: null,
    breakerOpen: null,
    alertsFiring: null,
    extra: {},
  };
}

describe('scores', () => {
  const seconds = [
    sample(1, 10, 100),
    sample(2, 50, 0),
    sample(3, 30, 40),
    sample(4, 0, 99),
    sample(5, 5, 100),
  ];
  test('peak window sums', () => {
    assert.equal(
      peakWindowSum(seconds, (s) => s.attempts, 2),
      80,
    );
    assert.equal(
      peakWindowSum(seconds, (s) => s.attempts, 1),
      50,
    );
    // Shorter than the window: the whole run, not an extrapolation.
    assert.equal(
      peakWindowSum(seconds, (s) => s.attempts, 60),
      95,
    );
  });
  test('time to 99 % connected counts from the reference second', () => {
    assert.equal(timeToConnected(seconds, 2, 100), 2);
    assert.equal(timeToConnected(seconds, 2, 100, 1), 3);
    assert.equal(timeToConnected(seconds, 1, 100, 0.4), 2);
    assert.equal(timeToConnected(seconds, 5, 100), null);
  });
});

describe('flags', () => {
  test('durations', () => {
    assert.equal(parseDuration('90'), 90);
    assert.equal(parseDuration('90s'), 90);
    assert.equal(parseDuration('5m'), 300);
    assert.equal(parseDuration('1m30s'), 90);
    assert.equal(parseDuration('1h'), 3600);
    assert.throws(() => parseDuration('5 minutes'), /--duration/);
    assert.throws(() => parseDuration(''), /--duration/);
  });
  test('target', () => {
    assert.deepEqual(parseTarget('mqtt://broker.local:1884'), {
      host: 'broker.local',
      port: 1884,
      metricsUrl: 'http://broker.local:8080/metrics',
    });
    assert.throws(() => parseTarget('http://x:1'), /mqtt:\/\//);
  });
  test('time scale follows the duration; protections validated', () => {
    const def = findScenario('mass-disconnect')!;
    const p = resolveParams(def, { devices: '300', duration: '90s', seed: 1 });
    assert.equal(p.devices, 300);
    assert.equal(p.durationS, 90);
    assert.equal(p.timeScale, 0.1);
    assert.equal(p.protections, 'on');
    assert.throws(() => resolveParams(def, { protections: 'maybe' }), /--protections/);
    assert.throws(() => resolveParams(def, { devices: '0' }), /--devices/);
  });
});

describe('charts', () => {
  test('round ticks and a path per series', () => {
    assert.equal(niceCeil(0.3), 1);
    assert.equal(niceCeil(180), 200);
    assert.equal(niceCeil(201), 250);
    assert.equal(niceCeil(2.2), 5);
    assert.equal(niceCeil(2100), 2500);
    const svg = lineChart({
      title: 'Connected <devices>',
      unit: 'devices',
      t: [1, 2, 3],
      series: [
        { name: 'a', color: '#000', values: [1, null, 3] },
        { name: 'b', color: '#f00', values: [2, 2, 2] },
      ],
      markers: [{ t: 2, label: 'fault & more', kind: 'fault' }],
      band: { from: 2, to: 3 },
    });
    assert.match(svg, /^<svg /);
    assert.match(svg, /Connected &lt;devices&gt;/);
    assert.match(svg, /fault &amp; more/);
    // Series a has a gap: two path segments (M … M …).
    assert.equal((svg.match(/<path d="M[^"]*M/g) ?? []).length, 1);
    assert.equal((svg.match(/<path /g) ?? []).length, 2);
  });
});
