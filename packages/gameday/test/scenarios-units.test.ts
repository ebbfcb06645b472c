/** The pure parts of the scenario runner and the report: parsing, scoring, charts, flags. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { histogramQuantile, peakWindowSum, phaseScores, timeToConnected } from '../src/report/scores.js';
import { lineChart, niceCeil } from '../src/report/svg.js';
import { parseDuration, parseTarget, resolveCells, resolveParams } from '../src/run.js';
import { findScenario, scenarios } from '../src/scenarios/catalog.js';
import { cellName, matrixCells, selectCells } from '../src/scenarios/matrix.js';
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
    backendLatency: null,
    backendLatencySumS: null,
    backendRejected: {},
    backendLimit: null,
    backendInflight: null,
    flappingBans: null,
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

describe('backend latency and phases', () => {
  test('histogram quantile as PromQL interpolates it', () => {
    // 100 calls: 90 under 1 ms, 8 in (1, 5] ms, 2 in (5, 10] ms.
    const h = { '0.001': 90, '0.005': 98, '0.01': 100, '+Inf': 100 };
    assert.equal(histogramQuantile(0.5, h), (0.001 * 50) / 90);
    assert.ok(Math.abs((histogramQuantile(0.99, h) ?? 0) - 0.0075) < 1e-12);
    assert.equal(histogramQuantile(0.99, { '0.001': 0, '+Inf': 0 }), null);
    // Past the highest finite bound: that bound (a timeout shows as "≥ the last bucket").
    assert.equal(histogramQuantile(0.99, { '0.001': 1, '5': 50, '+Inf': 100 }), 5);
  });
  test('phases cut at the fault and the repair, each with its own clock and target', () => {
    const s = [
      sample(1, 100, 90),
      sample(2, 10, 100),
      sample(3, 100, 0),
      sample(4, 50, 50),
      sample(5, 20, 100),
      sample(6, 30, 100),
      sample(7, 10, 108),
      sample(8, 0, 110),
    ];
    for (const x of s) {
      x.brokerAttempts = x.attempts;
      x.backendQueries = x.t <= 2 ? x.attempts : 0;
    }
    s[6]!.backendQueries = 10;
    s[6]!.backendLatency = { '0.001': 4, '0.005': 10, '+Inf': 10 };
    s[6]!.backendLatencySumS = 0.02;
    const phases = phaseScores({
      seconds: s,
      fleetFinal: {} as never,
      probe: null,
      alerts: null,
      alertEngine: null,
      faultAtS: 2.2,
      repairAtS: 6,
      expectedConnected: 110,
      initialDevices: 100,
      targets: { fault: 100 },
      phaseLabels: { fault: 'drop', repair: 'fix' },
    });
    assert.deepEqual(
      phases.map((p) => [p.name, p.label, p.target, p.timeTo99S]),
      [
        ['start', 'start', 100, 2],
        // Back to 100 at t = 5: 2.8 s after the drop.
        ['fault', 'drop', 100, 2.8],
        ['repair', 'fix', 110, 2],
      ],
    );
    const [start, drop, fix] = phases;
    assert.equal(start!.backendCalls, 110);
    assert.equal(start!.backendCallsPerAttempt, 1);
    assert.equal(drop!.backendCalls, 0);
    assert.equal(drop!.backendCallsPerAttempt, 0);
    assert.equal(drop!.brokerAttempts, 200);
    assert.equal(fix!.backendCalls, 10);
    assert.equal(fix!.backendMeanMs, 2);
    assert.equal(fix!.peakBackendCallsPerSec, 10);
    assert.ok(fix!.backendP99Ms !== null && fix!.backendP99Ms > 1 && fix!.backendP99Ms <= 5);
    // Not reached within its phase: null, even if reached later.
    const late = phaseScores({
      seconds: s,
      fleetFinal: {} as never,
      probe: null,
      alerts: null,
      alertEngine: null,
      faultAtS: 2.2,
      repairAtS: 4,
      expectedConnected: 110,
      initialDevices: 100,
    });
    assert.equal(late[1]!.timeTo99S, null);
  });
});

describe('matrix', () => {
  const def = findScenario('auth-backend-outage')!;
  test('storm scenarios run protections × firmware × auth cache', () => {
    assert.equal(matrixCells(def).length, 8);
    for (const name of ['ota-reboot-storm', 'mass-disconnect']) {
      assert.equal(matrixCells(findScenario(name)!).length, 8, name);
    }
    // capacity makes no CONNECT in its surge: no cache axis.
    assert.deepEqual(matrixCells(findScenario('capacity')!).map(cellName), [
      'on/fleet/warm',
      'on/naive/warm',
      'off/fleet/warm',
      'off/naive/warm',
    ]);
    for (const s of scenarios) assert.ok(s.defaults.ci === undefined || s.defaults.ci.devices <= 200, s.name);
  });
  test('cell selection', () => {
    assert.equal(selectCells(def, true).length, 8);
    assert.equal(selectCells(def, 'all').length, 8);
    assert.deepEqual(selectCells(def, 'on/naive/warm').map(cellName), ['on/naive/warm']);
    assert.deepEqual(selectCells(def, 'off/*/cold').map(cellName), ['off/fleet/cold', 'off/naive/cold']);
    assert.deepEqual(selectCells(def, 'on-naive,on/naive/cold').map(cellName), [
      'on/naive/cold',
      'on/naive/warm',
    ]);
    assert.throws(() => selectCells(def, 'on/smart'), /no such cell .*on\/fleet\/cold/);
    assert.throws(() => resolveCells(def, { matrix: true, protections: 'off' }), /--matrix picks/);
    assert.equal(resolveCells(def, {}), null);
  });
  test('firmware, cache and scale flags', () => {
    const p = resolveParams(def, { firmware: 'naive', cache: 'cold', scale: 'ci', seed: 1 });
    assert.equal(p.firmware, 'naive');
    assert.equal(p.cache, 'cold');
    assert.equal(p.devices, def.defaults.ci!.devices);
    assert.equal(p.durationS, def.defaults.ci!.durationS);
    // Without --firmware: what the protections setting always ran (off: naive).
    assert.equal(resolveParams(def, { protections: 'off', seed: 1 }).firmware, 'naive');
    assert.equal(resolveParams(def, { seed: 1 }).cache, 'warm');
    assert.throws(() => resolveParams(def, { firmware: 'smart' }), /--firmware/);
    assert.throws(() => resolveParams(findScenario('capacity')!, { cache: 'cold' }), /no such cell/);
    assert.throws(() => resolveParams(def, { scale: 'huge' }), /--scale/);
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
