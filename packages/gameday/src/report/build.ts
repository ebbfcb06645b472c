/**
 * From a finished run to the report: scores (report/scores.ts), expectation outcomes, broker
 * totals (first and last scrape of its /metrics) and everything the three writers need.
 */
import type { FleetStats } from '../fleet/types.js';
import { cellName } from '../scenarios/matrix.js';
import type { MetricsSnapshot } from '../scenarios/prometheus.js';
import type { QosProbeStats } from '../scenarios/qos-probe.js';
import { Series } from '../scenarios/sampler.js';
import type {
  AlertRecord,
  ScenarioDefinition,
  ScenarioParams,
  ScenarioPlan,
  ScoredRun,
  Scores,
  SecondSample,
  TimelineEvent,
} from '../scenarios/types.js';
import { computeScores } from './scores.js';

export const REPORT_VERSION = 2;

export interface ExpectationOutcome {
  id: string;
  name: string;
  compare: '<=' | '>=';
  value: number | null;
  threshold: number;
  unit: string;
  pass: boolean;
  detail: string | null;
  /** Why the verdict ignores this one in this cell (shown, not judged); null: judged. */
  notJudged: string | null;
}

/** Counter totals over the run, read from the broker's own /metrics (last minus first scrape). */
export interface BrokerTotals {
  connectionAttempts: number;
  authBackendQueries: number | null;
  messagesIn: number;
  messagesOut: number;
  authOutcomes: Record<string, number>;
  admissionRefusals: Record<string, number>;
  messagesDropped: Record<string, number>;
  /** Backend calls not made, by reason (limit, wait_timeout, breaker_open, rate_limited). */
  backendRejected: Record<string, number>;
  flappingBans: number;
}

export interface RawValues {
  connectionAttempts: number;
  authBackendQueries: number | null;
  messagesIn: number;
  messagesOut: number;
  connections: number;
}

function rawValues(m: MetricsSnapshot): RawValues {
  return {
    connectionAttempts: m.sum(Series.attempts),
    authBackendQueries: m.has(Series.backendQueries) ? m.sum(Series.backendQueries) : null,
    messagesIn: m.sum(Series.messagesIn),
    messagesOut: m.sum(Series.messagesOut),
    connections: m.sum(Series.connections),
  };
}

export interface Report {
  version: number;
  scenario: {
    name: string;
    title: string;
    incident: string;
    summary: string;
    weakened: string;
  };
  params: {
    devices: number;
    durationS: number;
    timeScale: number;
    protections: 'on' | 'off';
    firmware: 'fleet' | 'naive';
    cache: 'cold' | 'warm';
    /** `protections/firmware/cache`, e.g. `on/naive/warm`. */
    cell: string;
    target: string | null;
    seed: number;
    policy: string;
    /** Devices launched at t = 0 (the others joined later). */
    initialDevices: number;
  };
  startedAt: string;
  finishedAt: string;
  passed: boolean;
  scores: Scores;
  expectations: ExpectationOutcome[];
  broker: {
    kind: 'in-process' | 'remote';
    metricsUrl: string | null;
    scrapeErrors: number;
    lastScrapeError: string | null;
    totals: BrokerTotals | null;
    /** Raw counter and gauge values at the first and the last scrape (for cross-checks). */
    raw: { first: RawValues; last: RawValues } | null;
  };
  control: 'control-plane' | 'guard' | null;
  alertEngine: string | null;
  alerts: AlertRecord[];
  measurements: Record<string, number | string | boolean | null>;
  events: TimelineEvent[];
  fleet: FleetStats;
  probe: QosProbeStats | null;
  seconds: SecondSample[];
  /**
   * The drain after the timeline (telemetry stopped, in-flight messages delivered), as one sample:
   * `seconds` plus `drain` add up to `broker.totals`.
   */
  drain: SecondSample | null;
}

export interface BuildInput {
  def: ScenarioDefinition;
  plan: ScenarioPlan;
  params: ScenarioParams;
  startedAt: Date;
  finishedAt: Date;
  seconds: SecondSample[];
  drain: SecondSample | null;
  events: TimelineEvent[];
  measurements: Record<string, number | string | boolean | null>;
  fleetFinal: FleetStats;
  probe: QosProbeStats | null;
  alerts: AlertRecord[] | null;
  alertEngine: string | null;
  expectedConnected: number;
  initialDevices: number;
  firstScrape: MetricsSnapshot | null;
  lastScrape: MetricsSnapshot | null;
  scrapeErrors: number;
  lastScrapeError: string | null;
  controlKind: 'control-plane' | 'guard' | null;
}

function brokerTotals(first: MetricsSnapshot | null, last: MetricsSnapshot | null): BrokerTotals | null {
  if (!first || !last) return null;
  const delta = (name: string) => last.sum(name) - first.sum(name);
  const byLabel = (name: string, label: string) => {
    const a = first.byLabel(name, label);
    const out: Record<string, number> = {};
    for (const [k, v] of Object.entries(last.byLabel(name, label))) {
      const d = v - (a[k] ?? 0);
      if (d !== 0) out[k] = d;
    }
    return out;
  };
  return {
    connectionAttempts: delta(Series.attempts),
    authBackendQueries: last.has(Series.backendQueries) ? delta(Series.backendQueries) : null,
    messagesIn: delta(Series.messagesIn),
    messagesOut: delta(Series.messagesOut),
    authOutcomes: byLabel(Series.auth, 'outcome'),
    admissionRefusals: byLabel(Series.admissionRefused, 'reason'),
    messagesDropped: byLabel(Series.dropped, 'reason'),
    backendRejected: byLabel(Series.backendRejected, 'reason'),
    flappingBans: delta(Series.flappingBans),
  };
}

function policyName(p: unknown): string {
  if (p === undefined) return 'fleet';
  if (typeof p === 'string') return p;
  return (p as { name?: string }).name ?? 'custom';
}

export function buildReport(input: BuildInput): Report {
  const { def, plan, params, seconds, events } = input;
  const faultAtS = events.find((e) => e.kind === 'fault')?.t ?? null;
  const repairs = events.filter((e) => e.kind === 'repair');
  const repairAtS = repairs.length ? (repairs.at(-1) as TimelineEvent).t : null;
  const scores = computeScores({
    seconds,
    fleetFinal: input.fleetFinal,
    probe: input.probe,
    alerts: input.alerts,
    alertEngine: input.alertEngine,
    faultAtS,
    repairAtS,
    expectedConnected: input.expectedConnected,
    initialDevices: input.initialDevices,
    ...(plan.targets ? { targets: plan.targets } : {}),
    ...(plan.phaseLabels ? { phaseLabels: plan.phaseLabels } : {}),
  });
  const run: ScoredRun = {
    params,
    seconds,
    events,
    measurements: input.measurements,
    scores,
    fleetFinal: input.fleetFinal,
    faultAtS,
    repairAtS,
    expectedConnected: input.expectedConnected,
    initialDevices: input.initialDevices,
  };
  const expectations: ExpectationOutcome[] = plan.expectations.map((e) => {
    let r: ReturnType<typeof e.evaluate>;
    try {
      r = e.evaluate(run);
    } catch (err) {
      r = {
        value: null,
        threshold: Number.NaN,
        unit: '',
        detail: `could not evaluate: ${err instanceof Error ? err.message : String(err)}`,
      };
    }
    const value = r.value !== null && Number.isFinite(r.value) ? r.value : null;
    const pass =
      value === null ? false : (r.pass ?? (e.compare === '<=' ? value <= r.threshold : value >= r.threshold));
    return {
      id: e.id,
      name: e.name,
      compare: e.compare,
      value: value === null ? null : Math.round(value * 1000) / 1000,
      threshold: r.threshold,
      unit: r.unit,
      pass,
      detail: r.detail ?? (value === null ? 'not measured' : null),
      notJudged: e.notJudged?.(params) ?? null,
    };
  });
  return {
    version: REPORT_VERSION,
    scenario: {
      name: def.name,
      title: def.title,
      incident: def.incident,
      summary: def.summary,
      weakened: def.weakened,
    },
    params: {
      // Every device of the run, those that joined later included.
      devices: input.fleetFinal.devices,
      durationS: input.seconds.length,
      timeScale: params.timeScale,
      protections: params.protections,
      firmware: params.firmware,
      cache: params.cache,
      cell: cellName(params),
      target: params.target ? `mqtt://${params.target.host}:${params.target.port}` : null,
      seed: params.seed,
      policy: policyName(plan.fleet.policy),
      initialDevices: input.initialDevices,
    },
    startedAt: input.startedAt.toISOString(),
    finishedAt: input.finishedAt.toISOString(),
    passed: expectations.every((e) => e.pass || e.notJudged !== null),
    scores,
    expectations,
    broker: {
      kind: params.target ? 'remote' : 'in-process',
      metricsUrl: params.target ? (params.target.metricsUrl ?? null) : 'in-process /metrics',
      scrapeErrors: input.scrapeErrors,
      lastScrapeError: input.lastScrapeError,
      totals: brokerTotals(input.firstScrape, input.lastScrape),
      raw:
        input.firstScrape && input.lastScrape
          ? { first: rawValues(input.firstScrape), last: rawValues(input.lastScrape) }
          : null,
    },
    control: input.controlKind,
    alertEngine: input.alertEngine,
    alerts: input.alerts ?? [],
    measurements: input.measurements,
    events,
    fleet: input.fleetFinal,
    probe: input.probe,
    seconds,
    drain: input.drain,
  };
}
