/**
 * Shared by the scenario tests: run a scenario at small scale and check that the report's figures
 * agree with the broker's own metrics, read straight from its prom-client registry (not through
 * the report's /metrics scraper and text parser).
 */
import assert from 'node:assert/strict';
import type { Report } from '../src/report/build.js';
import type { MatrixCellResult } from '../src/report/matrix.js';
import { findScenario } from '../src/scenarios/catalog.js';
import { cellName, cellSlug, defaultFirmware, withCell } from '../src/scenarios/matrix.js';
import { runScenario } from '../src/scenarios/runner.js';
import type { MatrixCell, ScenarioParams, SecondSample } from '../src/scenarios/types.js';

export interface DirectMetrics {
  connectionAttempts: number;
  backendQueries: number | null;
  messagesIn: number;
  messagesOut: number;
  connections: number;
}

export interface SmallRun {
  report: Report;
  direct: DirectMetrics;
}

type Registry = { getMetricsAsJSON(): Promise<{ name: string; values: { value: number }[] }[]> };

async function readRegistry(registry: Registry): Promise<DirectMetrics> {
  const all = await registry.getMetricsAsJSON();
  const sum = (name: string): number | null => {
    const m = all.find((x) => x.name === name);
    return m && m.values.length > 0 ? m.values.reduce((a, v) => a + v.value, 0) : null;
  };
  return {
    connectionAttempts: sum('breakwater_connection_attempts_total') ?? 0,
    backendQueries: sum('breakwater_auth_backend_queries_total'),
    messagesIn: sum('breakwater_messages_received_total') ?? 0,
    messagesOut: sum('breakwater_messages_sent_total') ?? 0,
    connections: sum('breakwater_connections') ?? 0,
  };
}

export async function runSmall(
  name: string,
  overrides: Partial<ScenarioParams> & { durationS: number },
): Promise<SmallRun> {
  const def = findScenario(name);
  assert.ok(def, `scenario ${name}`);
  const protections = overrides.protections ?? 'on';
  const params: ScenarioParams = {
    devices: 200,
    timeScale: overrides.durationS / def.defaults.durationS,
    protections,
    firmware: defaultFirmware(protections),
    cache: 'warm',
    target: null,
    seed: 42,
    ...overrides,
  };
  let direct: DirectMetrics | null = null;
  const report = await runScenario(def, params, {
    async beforeTeardown(env) {
      assert.ok(env.inProcess, 'in-process broker');
      direct = await readRegistry(env.inProcess.metrics.registry as unknown as Registry);
    },
  });
  assert.ok(direct, 'metrics read before teardown');
  return { report, direct };
}

/** One matrix cell at the scenario's CI scale (`defaults.ci`), as a MatrixCellResult. */
export async function runCellSmall(
  name: string,
  cell: MatrixCell,
  overrides: Partial<ScenarioParams> = {},
): Promise<SmallRun & { result: MatrixCellResult; params: ScenarioParams }> {
  const def = findScenario(name);
  assert.ok(def?.defaults.ci, `scenario ${name} has a CI scale`);
  const durationS = overrides.durationS ?? def.defaults.ci.durationS;
  const base: ScenarioParams = withCell(
    {
      devices: def.defaults.ci.devices,
      durationS,
      timeScale: durationS / def.defaults.durationS,
      protections: 'on',
      firmware: 'fleet',
      cache: 'warm',
      target: null,
      seed: 42,
      ...overrides,
    },
    cell,
  );
  const run = await runSmall(name, base);
  assert.equal(run.report.params.cell, cellName(cell));
  return {
    ...run,
    params: base,
    result: { cell, name: cellName(cell), slug: cellSlug(cell), report: run.report },
  };
}

function total(seconds: readonly SecondSample[], f: (s: SecondSample) => number | null): number {
  return seconds.reduce((a, s) => a + (f(s) ?? 0), 0);
}

/**
 * The report against the broker: per-second series add up to the totals, the totals to the
 * registry's counters, the gauges to what the fleet saw. `settled`: nothing moves after the run
 * (no crash-looping devices), so the last scrape equals the registry exactly.
 */
export function assertAgreesWithBroker(run: SmallRun, settled = true): void {
  const { report: r, direct } = run;
  const totals = r.broker.totals;
  const raw = r.broker.raw;
  assert.ok(totals && raw, `broker metrics scraped (errors: ${r.broker.lastScrapeError})`);
  assert.equal(r.broker.scrapeErrors, 0, 'every scrape succeeded');
  assert.equal(r.seconds.length, r.params.durationS, 'one sample per second');
  const withDrain = [...r.seconds, ...(r.drain ? [r.drain] : [])];
  // Series add up to the totals (same counters, sampled every second).
  assert.equal(
    total(withDrain, (s) => s.brokerAttempts),
    totals.connectionAttempts,
  );
  assert.equal(
    total(withDrain, (s) => s.messagesIn),
    totals.messagesIn,
  );
  assert.equal(
    total(withDrain, (s) => s.messagesOut),
    totals.messagesOut,
  );
  assert.equal(raw.last.connectionAttempts - raw.first.connectionAttempts, totals.connectionAttempts);
  // The last scrape is the broker's registry.
  if (settled) {
    assert.equal(raw.last.connectionAttempts, direct.connectionAttempts, 'attempts = registry');
    assert.equal(raw.last.messagesIn, direct.messagesIn, 'messages in = registry');
    assert.equal(raw.last.messagesOut, direct.messagesOut, 'messages out = registry');
    assert.equal(raw.last.connections, direct.connections, 'connections = registry');
  } else {
    assert.ok(raw.last.connectionAttempts <= direct.connectionAttempts);
    assert.ok(raw.last.messagesIn <= direct.messagesIn);
  }
  if (direct.backendQueries !== null) {
    assert.equal(raw.last.authBackendQueries, direct.backendQueries, 'backend queries = registry');
    assert.equal(
      total(withDrain, (s) => s.backendQueries),
      totals.authBackendQueries,
    );
    assert.ok((r.scores.peakBackendQueriesPerSec ?? 0) <= (totals.authBackendQueries ?? 0));
  }
  // The broker counted every CONNECT of the fleet and nothing else (the probe connects before the
  // baseline scrape); attempts that failed on the network (refused, reset before CONNECT) may not
  // have reached it.
  assert.ok(totals.connectionAttempts <= r.fleet.attempts, 'broker CONNECTs <= fleet attempts');
  if (settled) {
    // (With devices crash-looping, an attempt can still be on its way when the run ends.)
    assert.ok(
      totals.connectionAttempts >= r.fleet.attempts - r.fleet.networkErrors,
      'broker CONNECTs >= fleet attempts without network errors',
    );
  }
  // Whatever a device had acknowledged, the broker had received.
  assert.ok(r.scores.qos1Acked <= totals.messagesIn, 'acked <= received');
  // Connected as the fleet sees it = as the broker sees it (+1: the QoS probe), at the end.
  const last = r.seconds.at(-1) as SecondSample;
  assert.ok(last.brokerConnections !== null);
  assert.ok(
    Math.abs(last.brokerConnections - 1 - last.connected) <= Math.ceil(r.params.devices * 0.02),
    `broker ${last.brokerConnections} vs fleet ${last.connected}`,
  );
  assert.ok((r.scores.openSocketsPeak ?? 0) >= Math.min(r.params.devices, last.connected));
  assert.ok((r.scores.fdPeak ?? 0) > 0, 'FD series present');
}

export function expectation(r: Report, id: string) {
  const e = r.expectations.find((x) => x.id === id);
  assert.ok(e, `expectation ${id} in ${r.scenario.name}`);
  return e;
}

export function failed(r: Report): string {
  const probe = r.measurements.qosProbeUnavailable;
  return r.expectations
    .filter((e) => !e.pass && !e.notJudged)
    .map((e) => `${e.id}: ${e.value} ${e.unit} vs ${e.compare} ${e.threshold} (${e.detail ?? ''})`)
    .concat(probe ? [`QoS probe unavailable: ${probe}`] : [])
    .join('; ');
}
