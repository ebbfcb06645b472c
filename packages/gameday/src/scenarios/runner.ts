/**
 * Runs one scenario: set-up (PostgreSQL, broker, fault proxy, control plane, QoS probe), the
 * fleet, the fault timeline with one sample per second, a drain, the scores and the expectations.
 * Everything started is torn down in reverse order whatever happens.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { mulberry32 } from '@breakwater/device/policy';
import { FaultProxy } from '../fault/proxy.js';
import { Fleet } from '../fleet/fleet.js';
import type { FleetStats } from '../fleet/types.js';
import { buildReport, type Report } from '../report/build.js';
import {
  MATRIX_REPORT_VERSION,
  type MatrixCellResult,
  type MatrixReport,
  matrixPassed,
} from '../report/matrix.js';
import { startChildBroker } from './child-broker.js';
import { type ControlAdapter, startControl } from './control.js';
import { type BrokerEnv, remoteEnv, startInProcessBroker } from './environment.js';
import { cellName, cellSlug, withCell } from './matrix.js';
import { PostgresBackend } from './postgres-backend.js';
import { QosProbe } from './qos-probe.js';
import { Sampler } from './sampler.js';
import type {
  MatrixCell,
  RunContext,
  ScenarioDefinition,
  ScenarioParams,
  SecondSample,
  TimelineEvent,
  TimelineStep,
} from './types.js';

export interface RunHooks {
  /** Every second, after sampling (the live progress line). */
  onSecond?: (sample: SecondSample, ctx: RunContext) => void;
  /** Timeline events and notes as they happen. */
  onEvent?: (event: TimelineEvent) => void;
  /** Set-up and teardown messages. */
  log?: (line: string) => void;
  /** After the run, before teardown: the broker and its /metrics are still up (tests compare). */
  beforeTeardown?: (env: BrokerEnv, ctx: RunContext) => Promise<void> | void;
}

export function deviceIds(n: number, prefix = 'sim-'): string[] {
  return Array.from({ length: n }, (_, i) => `${prefix}${String(i + 1).padStart(5, '0')}`);
}

/** How long the drain after the timeline may take: until the probe has everything in flight. */
const DRAIN_MAX_MS = 15_000;
const DRAIN_QUIET_MS = 1_500;

export async function runScenario(
  def: ScenarioDefinition,
  params: ScenarioParams,
  hooks: RunHooks = {},
): Promise<Report> {
  const log = hooks.log ?? (() => {});
  if (def.requiresInProcess && params.target) {
    throw new Error(
      `scenario ${def.name} needs the in-process broker (its fault acts on the broker's internals); drop --target`,
    );
  }
  const plan = def.build(params);
  const durationS = plan.durationS ?? params.durationS;
  const devices = plan.devices ?? params.devices;
  const initialDevices = Math.min(devices, plan.fleet.initialDevices ?? devices);
  const ids = deviceIds(devices, plan.fleet.idPrefix ?? 'sim-');
  const dataDir = mkdtempSync(join(tmpdir(), `bw-gameday-${def.name}-`));
  const cleanups: (() => Promise<void> | void)[] = [() => rmSync(dataDir, { recursive: true, force: true })];
  const events: TimelineEvent[] = [];
  const measurements: Record<string, number | string | boolean | null> = {};
  const seconds: SecondSample[] = [];
  const startedAt = new Date();
  let fleetFinal: FleetStats | null = null;
  let sampler: Sampler | null = null;

  try {
    let postgres: PostgresBackend | null = null;
    if (plan.broker.postgres) {
      postgres = new PostgresBackend();
      const pg = postgres;
      cleanups.push(() => pg.close());
      await postgres.create(ids);
      // Nothing else: no device is known to the broker before it connects in this run.
      log(`postgres: schema ${postgres.name} with ${ids.length} device credentials`);
    }

    const env = params.target
      ? remoteEnv(params.target)
      : plan.broker.process === 'child'
        ? await startChildBroker(plan.broker, dataDir)
        : await startInProcessBroker(plan.broker, dataDir);
    cleanups.push(() => env.close());
    log(
      params.target
        ? `target: mqtt://${env.mqtt.host}:${env.mqtt.port} (metrics ${env.metricsUrl ?? 'none'})`
        : `broker: ${plan.broker.process === 'child' ? 'child process' : 'in-process'} on mqtt://127.0.0.1:${env.mqtt.port}, metrics ${env.metricsUrl}`,
    );

    let proxy: FaultProxy | null = null;
    let fleetTarget = env.mqtt;
    if (plan.viaProxy) {
      proxy = new FaultProxy({ listen: { host: '127.0.0.1', port: 0 }, target: env.mqtt });
      const p = proxy;
      const { port } = await proxy.start();
      cleanups.push(() => p.close());
      fleetTarget = { host: '127.0.0.1', port };
      log(`fault proxy: 127.0.0.1:${port} -> ${env.mqtt.host}:${env.mqtt.port}`);
    }

    let control: ControlAdapter | null = null;
    // In-process, the control plane always runs beside the broker when installed: its alert engine
    // gives the report its time to detect. Scenarios that act through it require it.
    if (plan.controlPlane || env.inProcess) {
      control = await startControl(env, dataDir, log);
      const c = control;
      cleanups.push(() => c.close());
    }

    const state = new Map<string, unknown>();
    const pending: Promise<unknown>[] = [];
    let t0 = Date.now();
    let probe: QosProbe | null = null;
    const fleet = new Fleet({
      random: mulberry32(params.seed),
      ...plan.fleet,
      target: fleetTarget,
      devices,
    });
    const ctx: RunContext = {
      params,
      fleet,
      env,
      proxy,
      postgres,
      control,
      get probe() {
        return probe;
      },
      get t0() {
        return t0;
      },
      now: () => (Date.now() - t0) / 1000,
      measure: (name, value) => {
        measurements[name] = value;
      },
      note: (text) => {
        const e: TimelineEvent = { t: round1((Date.now() - t0) / 1000), kind: 'note', label: text };
        events.push(e);
        hooks.onEvent?.(e);
      },
      state,
      background: (work) => {
        pending.push(
          work.catch((err: unknown) => {
            ctx.note(`background step failed: ${err instanceof Error ? err.message : String(err)}`);
          }),
        );
      },
    };

    try {
      probe = new QosProbe({
        host: env.probe.host,
        port: env.probe.port,
        // One subscriber per 1,000 devices (shared subscription), at most 16.
        connections: Math.min(16, Math.max(1, Math.ceil(devices / 1_000))),
        ...(plan.onProbeMessage
          ? { onMessage: (topic, payload, at) => plan.onProbeMessage?.(ctx, topic, payload, at) }
          : {}),
      });
      const pr = probe;
      cleanups.push(() => pr.close());
      await withTimeout(probe.start(), 10_000, 'QoS probe subscribe');
    } catch (err) {
      const why = err instanceof Error ? err.message : String(err);
      log(`QoS probe unavailable (${why}): loss not measured`);
      measurements.qosProbeUnavailable = why;
      await probe?.close();
      probe = null;
    }

    sampler = new Sampler({
      fleet,
      metricsUrl: env.metricsUrl,
      probe,
      alertsFiring: control?.alerts ? () => control?.alerts?.firing() ?? 0 : null,
      extra: plan.extraSeries ? () => plan.extraSeries?.(ctx) ?? {} : null,
    });
    await sampler.baseline();

    cleanups.push(() => fleet.stop());
    t0 = Date.now();
    control?.alerts?.setOrigin(t0);
    const startAt = performance.now();
    // start() resolves when every device has made its first attempt: the ramp (500/s by default)
    // is part of the run, so sampling starts now, not after it.
    ctx.background(
      fleet
        .start()
        .then(() => ctx.note('fleet ramp done: every device launched at start made its first attempt')),
    );
    log(
      `fleet: ${devices} devices${initialDevices < devices ? ` (${initialDevices} at start, ${devices - initialDevices} join later)` : ''}, firmware ${policyName(plan.fleet.policy)}, cell ${cellName(params)}, time scale ${params.timeScale}, ${durationS} s`,
    );

    const steps = [...plan.timeline].sort((a, b) => a.atS - b.atS);
    let nextStep = 0;
    const runStep = async (step: TimelineStep) => {
      const e: TimelineEvent = { t: round1(ctx.now()), kind: step.kind, label: step.label };
      events.push(e);
      hooks.onEvent?.(e);
      try {
        await step.run(ctx);
      } catch (err) {
        // The run goes on: the expectations that needed this step fail with what is missing.
        ctx.note(`step failed: ${err instanceof Error ? err.message : String(err)}`);
        ctx.measure(`stepError:${step.label.slice(0, 40)}`, err instanceof Error ? err.message : String(err));
      }
    };
    for (let s = 1; s <= durationS; s++) {
      while (nextStep < steps.length && (steps[nextStep] as TimelineStep).atS < s) {
        const step = steps[nextStep++] as TimelineStep;
        const due = startAt + step.atS * 1000;
        await sleep(Math.max(0, due - performance.now()));
        await runStep(step);
      }
      await sleep(Math.max(0, startAt + s * 1000 - performance.now()));
      const sample = await sampler.sample(s);
      seconds.push(sample);
      hooks.onSecond?.(sample, ctx);
    }
    // Steps at the very end (atS == duration) still run.
    while (nextStep < steps.length) await runStep(steps[nextStep++] as TimelineStep);
    await Promise.all(pending);

    // Drain: stop new telemetry, then wait until what the devices had acked has reached the probe.
    fleet.setTelemetry(null);
    if (probe) {
      const p = probe;
      const drainStart = performance.now();
      let last = -1;
      let quietSince = performance.now();
      while (performance.now() - drainStart < DRAIN_MAX_MS) {
        const delivered = p.stats().deliveredQos1;
        if (delivered >= fleet.stats().qos1Acked && performance.now() - drainStart > 500) break;
        if (delivered !== last) {
          last = delivered;
          quietSince = performance.now();
        } else if (performance.now() - quietSince > DRAIN_QUIET_MS) break;
        await sleep(100);
      }
    }
    fleetFinal = fleet.stats();
    // One more sample for the drain: seconds + drain add up to the broker's totals.
    const drain = await sampler.sample(durationS + 1);
    await hooks.beforeTeardown?.(env, ctx);

    const probeStats = probe?.stats() ?? null;
    const alerts = control?.alerts?.records() ?? null;
    return buildReport({
      def,
      plan,
      params,
      startedAt,
      finishedAt: new Date(),
      seconds,
      drain,
      events,
      measurements,
      fleetFinal,
      probe: probeStats,
      alerts,
      alertEngine: control?.alerts ? control.alerts.description : null,
      expectedConnected: plan.expectedConnected ? plan.expectedConnected(ctx) : devices,
      initialDevices,
      firstScrape: sampler.first,
      lastScrape: sampler.last,
      scrapeErrors: sampler.scrapeErrors,
      lastScrapeError: sampler.lastScrapeError,
      controlKind: control?.kind ?? null,
    });
  } finally {
    for (const c of cleanups.reverse()) {
      try {
        await c();
      } catch (err) {
        log(`teardown: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
  }
}

export interface MatrixHooks extends RunHooks {
  /** Before each cell (its index and the count). */
  onCell?: (cell: MatrixCell, index: number, of: number) => void;
  /** After each cell, with its report (e.g. write it before the next cell starts). */
  onCellDone?: (result: MatrixCellResult) => Promise<void> | void;
}

/**
 * Runs the given cells one after another, each a full run of its own (fresh broker, fresh
 * credential database, same seed and scale), and collects their reports. Cells do not overlap:
 * on two cores, two storms at once would measure each other.
 */
export async function runMatrix(
  def: ScenarioDefinition,
  params: ScenarioParams,
  cells: readonly MatrixCell[],
  hooks: MatrixHooks = {},
): Promise<MatrixReport> {
  const startedAt = new Date();
  const results: MatrixCellResult[] = [];
  for (const [i, cell] of cells.entries()) {
    hooks.onCell?.(cell, i, cells.length);
    const result = await runCell(def, params, cell, hooks);
    results.push(result);
    await hooks.onCellDone?.(result);
  }
  return matrixReport(def, params, results, startedAt);
}

/** One cell of the matrix: `runScenario` with the cell's protections, firmware and auth cache. */
export async function runCell(
  def: ScenarioDefinition,
  params: ScenarioParams,
  cell: MatrixCell,
  hooks: RunHooks = {},
): Promise<MatrixCellResult> {
  const report = await runScenario(def, withCell(params, cell), hooks);
  return { cell, name: cellName(cell), slug: cellSlug(cell), report };
}

/** The matrix report of cells run (by runMatrix, or one by one with runCell). */
export function matrixReport(
  def: ScenarioDefinition,
  params: ScenarioParams,
  results: readonly MatrixCellResult[],
  startedAt: Date,
): MatrixReport {
  return {
    version: MATRIX_REPORT_VERSION,
    kind: 'matrix',
    scenario: {
      name: def.name,
      title: def.title,
      incident: def.incident,
      summary: def.summary,
      weakened: def.weakened,
      matrixNotes: def.matrixNotes ?? null,
    },
    params: {
      devices: params.devices,
      durationS: params.durationS,
      timeScale: params.timeScale,
      target: params.target ? `mqtt://${params.target.host}:${params.target.port}` : null,
      seed: params.seed,
    },
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    passed: matrixPassed(results),
    cells: [...results],
  };
}

function policyName(p: unknown): string {
  if (p === undefined) return 'fleet';
  if (typeof p === 'string') return p;
  return (p as { name?: string }).name ?? 'custom';
}

function round1(x: number): number {
  return Math.round(x * 10) / 10;
}

async function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
