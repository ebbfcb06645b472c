/**
 * The built-in alert rules (DESIGN.md §4, issue 7): one definition per rule, the single source of
 * truth for the in-process evaluator, the Prometheus alerting-rules file and the Grafana
 * dashboard. A metric rule carries all three faces of the same check; an event rule (OTA gate
 * failed, telemetry validation failures) is raised by the feature that observes it
 * (`AlertEngine.raise`) and has no PromQL.
 */
import type { AlertRuleId, AlertRuleOverride, AlertsConfig } from '@breakwater/broker';
import type { Labels, MetricHistory } from '../metrics-history/history.js';
import {
  type Group,
  joinGroups,
  last,
  maxOf,
  mean,
  onsetOf,
  type Point,
  quantileSorted,
  ratioPoints,
  sumBy,
  total,
} from './series-math.js';
import type { AlertSeverity, IncidentType } from './types.js';

export interface RuleParams {
  enabled: boolean;
  threshold: number;
  /** Look-back window of the expression. */
  windowSec: number;
  /** Abnormal this long before firing (Prometheus `for`). */
  forSec: number;
  /** Normal this long before resolving (Prometheus `keep_firing_for`): hysteresis against flapping. */
  clearSec: number;
  /** Baseline floor; below this volume the rule stays quiet. Unit depends on the rule. */
  minVolume: number;
  severity: AlertSeverity;
}

/** One labelled result of evaluating a metric rule at one instant. */
export interface RuleSample {
  labels: Labels;
  value: number;
  abnormal: boolean;
  /** Epoch ms of the first abnormal sample of the triggering series, when the rule can tell. */
  onset?: number;
}

export interface PanelTarget {
  expr: string;
  legend: string;
}

export interface MetricRuleFaces {
  /** Metric names (as exposed on /metrics) the rule reads. */
  metrics: readonly string[];
  evaluate(history: MetricHistory, nowMs: number, p: RuleParams): RuleSample[];
  /** The Prometheus alert expression. */
  promql(p: RuleParams): string;
  /** What the dashboard panel plots (the left-hand side of the comparison). */
  graph(p: RuleParams): PanelTarget[];
  /** Grafana unit id (percentunit, s, short, reqps). */
  unit: string;
}

export interface AlertRuleDefinition {
  id: AlertRuleId;
  /** Prometheus alert name (CamelCase). */
  name: string;
  description: string;
  incidentType: IncidentType;
  /** runbooks/<slug>.md */
  runbook: string;
  defaults: RuleParams;
  /** One-line summary of a firing event. */
  summarize(value: number, p: RuleParams, labels: Labels): string;
  metric?: MetricRuleFaces;
}

export interface ResolvedRule extends AlertRuleDefinition {
  params: RuleParams;
}

const AUTH_FAILURE_OUTCOMES = new Set(['failure', 'error', 'negative_cache_hit']);

function fmt(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  if (Math.abs(n) >= 100 || Number.isInteger(n)) return String(Math.round(n));
  return n.toPrecision(3);
}

function pct(n: number): string {
  return `${(n * 100).toFixed(1)} %`;
}

function on(labels: Labels): string {
  const parts = Object.entries(labels)
    .filter(([, v]) => v !== '')
    .map(([k, v]) => `${k} ${v}`);
  return parts.length === 0 ? '' : ` (${parts.join(', ')})`;
}

/** PromQL duration: whole minutes as `Nm`, else seconds. */
export function promDuration(sec: number): string {
  return sec % 60 === 0 && sec > 0 ? `${sec / 60}m` : `${sec}s`;
}

/**
 * A range for `rate()` in Prometheus: at least 1m, since typical 15 s scrapes need ≥ 4 samples;
 * shorter in-process windows are approximated by the 1m rate times the window.
 */
function promRange(windowSec: number): string {
  return promDuration(Math.max(60, windowSec));
}

/** Average of a gauge expression over the window (plain instant value for windows ≤ 1 s). */
function gaugeOverWindow(expr: string, windowSec: number): string {
  return windowSec <= 1 ? expr : `avg_over_time((${expr})[${promDuration(windowSec)}:])`;
}

function window(nowMs: number, windowSec: number): [number, number] {
  return [nowMs - windowSec * 1000, nowMs];
}

/** `sum(gauge) > threshold`, averaged over the window (the latest second by default). */
function gaugeThreshold(metric: string, unit: string): MetricRuleFaces {
  return {
    metrics: [metric],
    unit,
    evaluate(history, nowMs, p) {
      const [from, to] = window(nowMs, Math.max(p.windowSec, 1));
      return sumBy(history, metric, [], from, to).flatMap((g) => {
        if (g.points.length === 0) return [];
        const value = mean(g.points);
        return [
          {
            labels: {},
            value,
            abnormal: value > p.threshold,
            onset: onsetOf(g.points, (v) => v > p.threshold),
          },
        ];
      });
    },
    promql: (p) => `${gaugeOverWindow(`sum(${metric})`, p.windowSec)} > ${p.threshold}`,
    graph: () => [{ expr: `sum by (listener) (${metric})`, legend: '{{listener}}' }],
  };
}

function connectionAttemptsDoubling(): MetricRuleFaces {
  const metric = 'breakwater_connection_attempts_total';
  return {
    metrics: [metric],
    unit: 'reqps',
    evaluate(history, nowMs, p) {
      const w = p.windowSec * 1000;
      const current = sumBy(history, metric, ['listener'], nowMs - w, nowMs);
      const previous = sumBy(history, metric, ['listener'], nowMs - 2 * w, nowMs - w);
      return joinGroups(current, previous).flatMap(({ labels, a, b }) => {
        // No baseline yet (just started, or a listener never used before): nothing to compare.
        if (a.length === 0 || b.length < p.windowSec / 2) return [];
        const rate = mean(a);
        // The baseline floor: a listener that was idle "doubles" only once it reaches minVolume.
        const baseline = Math.max(mean(b), p.minVolume / p.threshold);
        const limit = Math.max(baseline * p.threshold, p.minVolume);
        return [
          {
            labels,
            value: rate / baseline,
            abnormal: rate >= limit,
            onset: onsetOf(a, (v) => v >= limit),
          },
        ];
      });
    },
    promql: (p) => {
      const r = `sum by (listener) (rate(${metric}[${promDuration(p.windowSec)}]))`;
      const before = `sum by (listener) (rate(${metric}[${promDuration(p.windowSec)}] offset ${promDuration(p.windowSec)}))`;
      return `${r} >= ${p.threshold} * ${before} and ${r} >= ${p.minVolume}`;
    },
    graph: (p) => [
      { expr: `sum by (listener) (rate(${metric}[${promRange(p.windowSec)}]))`, legend: '{{listener}}' },
    ],
  };
}

function authFailureRatio(): MetricRuleFaces {
  const metric = 'breakwater_auth_total';
  const failures = (l: Labels) => AUTH_FAILURE_OUTCOMES.has(l.outcome ?? '');
  return {
    metrics: [metric],
    unit: 'percentunit',
    evaluate(history, nowMs, p) {
      const [from, to] = window(nowMs, p.windowSec);
      const failed = sumBy(history, metric, ['listener'], from, to, failures);
      const all = sumBy(history, metric, ['listener'], from, to);
      return joinGroups(all, failed).flatMap(({ labels, a: attempts, b: fails }) => {
        const decisions = total(attempts);
        if (decisions <= 0) return [];
        const value = total(fails) / decisions;
        const perSecond = ratioPoints(fails, attempts);
        return [
          {
            labels,
            value,
            abnormal: value > p.threshold && decisions >= p.minVolume,
            onset: onsetOf(perSecond, (v) => v > p.threshold),
          },
        ];
      });
    },
    promql: (p) => {
      const range = promDuration(p.windowSec);
      const fails = `sum by (listener) (rate(${metric}{outcome=~"${[...AUTH_FAILURE_OUTCOMES].join('|')}"}[${range}]))`;
      const all = `sum by (listener) (rate(${metric}[${range}]))`;
      return `${fails} / ${all} > ${p.threshold} and sum by (listener) (increase(${metric}[${range}])) >= ${p.minVolume}`;
    },
    graph: (p) => {
      const range = promRange(p.windowSec);
      return [
        {
          expr: `sum by (listener) (rate(${metric}{outcome=~"${[...AUTH_FAILURE_OUTCOMES].join('|')}"}[${range}])) / sum by (listener) (rate(${metric}[${range}]))`,
          legend: '{{listener}}',
        },
      ];
    },
  };
}

function authBackendLatency(): MetricRuleFaces {
  const base = 'breakwater_auth_backend_duration_seconds';
  const bucket = `${base}_bucket`;
  return {
    metrics: [bucket],
    unit: 's',
    evaluate(history, nowMs, p) {
      const [from, to] = window(nowMs, p.windowSec);
      const byLe = sumBy(history, bucket, ['backend', 'le'], from, to);
      const perBackend = new Map<string, Group[]>();
      for (const g of byLe) {
        const list = perBackend.get(g.labels.backend!) ?? [];
        list.push(g);
        perBackend.set(g.labels.backend!, list);
      }
      const out: RuleSample[] = [];
      for (const [backend, groups] of perBackend) {
        const les = groups
          .map((g) => ({ g, le: g.labels.le === '+Inf' ? Number.POSITIVE_INFINITY : Number(g.labels.le) }))
          .sort((x, y) => x.le - y.le);
        const bounds = les.map((x) => x.le);
        const totals = les.map((x) => total(x.g.points));
        const calls = totals[totals.length - 1] ?? 0;
        const value = quantileSorted(0.99, bounds, totals);
        if (!Number.isFinite(value)) continue;
        // Per-second p99 for the onset: one row of bucket rates per second.
        const perSecond = new Map<number, Float64Array>();
        les.forEach(({ g }, i) => {
          for (const [t, v] of g.points) {
            let row = perSecond.get(t);
            if (!row) {
              row = new Float64Array(bounds.length);
              perSecond.set(t, row);
            }
            row[i] = v;
          }
        });
        const p99PerSecond: Point[] = [...perSecond.entries()]
          .sort((x, y) => x[0] - y[0])
          .map(([t, row]) => [t, quantileSorted(0.99, bounds, row)]);
        out.push({
          labels: { backend },
          value,
          abnormal: value > p.threshold && calls >= p.minVolume,
          onset: onsetOf(p99PerSecond, (v) => (Number.isNaN(v) ? null : v > p.threshold)),
        });
      }
      return out;
    },
    promql: (p) => {
      const range = promDuration(p.windowSec);
      return `histogram_quantile(0.99, sum by (backend, le) (rate(${bucket}[${range}]))) > ${p.threshold} and sum by (backend) (increase(${base}_count[${range}])) >= ${p.minVolume}`;
    },
    graph: (p) => [
      {
        expr: `histogram_quantile(0.99, sum by (backend, le) (rate(${bucket}[${promRange(p.windowSec)}])))`,
        legend: 'p99 {{backend}}',
      },
    ],
  };
}

function authBackendBreakerOpen(): MetricRuleFaces {
  const metric = 'breakwater_auth_backend_breaker_state';
  return {
    metrics: [metric],
    unit: 'short',
    evaluate(history, nowMs, p) {
      const [from, to] = window(nowMs, Math.max(p.windowSec, 1));
      return sumBy(history, metric, ['backend'], from, to).flatMap((g) => {
        const newest = last(g.points);
        if (!newest) return [];
        return [
          {
            labels: g.labels,
            value: newest[1],
            abnormal: newest[1] >= p.threshold,
            onset: onsetOf(g.points, (v) => v >= p.threshold),
          },
        ];
      });
    },
    promql: (p) => `max by (backend) (${metric}) >= ${p.threshold}`,
    graph: () => [
      { expr: `max by (backend) (${metric})`, legend: '{{backend}} (0 closed, 1 half-open, 2 open)' },
    ],
  };
}

function fdUsage(): MetricRuleFaces {
  return {
    metrics: ['process_open_fds', 'process_max_fds'],
    unit: 'percentunit',
    evaluate(history, nowMs, p) {
      const [from, to] = window(nowMs, Math.max(p.windowSec, 1));
      const open = sumBy(history, 'process_open_fds', [], from, to)[0]?.points ?? [];
      const max = sumBy(history, 'process_max_fds', [], from, to)[0]?.points ?? [];
      const ratios = ratioPoints(open, max);
      if (ratios.length === 0) return [];
      const value = mean(ratios);
      return [
        { labels: {}, value, abnormal: value > p.threshold, onset: onsetOf(ratios, (v) => v > p.threshold) },
      ];
    },
    promql: (p) => `${gaugeOverWindow('process_open_fds / process_max_fds', p.windowSec)} > ${p.threshold}`,
    graph: () => [{ expr: 'process_open_fds / process_max_fds', legend: 'FD use' }],
  };
}

function newConnectionBurst(): MetricRuleFaces {
  const metric = 'breakwater_connection_attempts_total';
  return {
    metrics: [metric],
    unit: 'short',
    evaluate(history, nowMs, p) {
      const [from, to] = window(nowMs, p.windowSec);
      return sumBy(history, metric, [], from, to).flatMap((g) => {
        if (g.points.length === 0) return [];
        // Per-second rates summed over the window's seconds = attempts in the window.
        const value = total(g.points);
        const perSecondLimit = p.threshold / p.windowSec;
        return [
          {
            labels: {},
            value,
            abnormal: value > p.threshold,
            onset: onsetOf(g.points, (v) => v > perSecondLimit),
          },
        ];
      });
    },
    promql: (p) => `sum(rate(${metric}[${promRange(p.windowSec)}])) * ${p.windowSec} > ${p.threshold}`,
    graph: (p) => [
      {
        expr: `sum(rate(${metric}[${promRange(p.windowSec)}])) * ${p.windowSec}`,
        legend: 'attempts per window',
      },
    ],
  };
}

function connectedDevicesDrop(): MetricRuleFaces {
  const metric = 'breakwater_connections';
  return {
    metrics: [metric],
    unit: 'percentunit',
    evaluate(history, nowMs, p) {
      const [from, to] = window(nowMs, p.windowSec);
      return sumBy(history, metric, [], from, to).flatMap((g) => {
        const peak = maxOf(g.points);
        const now = last(g.points);
        if (!peak || !now || peak[1] <= 0) return [];
        const value = 1 - now[1] / peak[1];
        const floor = peak[1] * (1 - p.threshold);
        return [
          {
            labels: {},
            value,
            abnormal: value > p.threshold && peak[1] >= p.minVolume,
            onset: onsetOf(
              g.points.filter(([t]) => t > peak[0]),
              (v) => v < floor,
            ),
          },
        ];
      });
    },
    promql: (p) => {
      const peak = `max_over_time(sum(${metric})[${promDuration(p.windowSec)}:])`;
      return `1 - sum(${metric}) / ${peak} > ${p.threshold} and ${peak} >= ${p.minVolume}`;
    },
    graph: () => [{ expr: `sum by (listener) (${metric})`, legend: '{{listener}}' }],
  };
}

function messageRate(): MetricRuleFaces {
  const metric = 'breakwater_messages_received_total';
  return {
    metrics: [metric],
    unit: 'reqps',
    evaluate(history, nowMs, p) {
      const [from, to] = window(nowMs, p.windowSec);
      return sumBy(history, metric, [], from, to).flatMap((g) => {
        if (g.points.length === 0) return [];
        const value = mean(g.points);
        return [
          {
            labels: {},
            value,
            abnormal: value > p.threshold,
            onset: onsetOf(g.points, (v) => v > p.threshold),
          },
        ];
      });
    },
    promql: (p) => `sum(rate(${metric}[${promRange(p.windowSec)}])) > ${p.threshold}`,
    graph: (p) => [{ expr: `sum(rate(${metric}[${promRange(p.windowSec)}]))`, legend: 'messages/s in' }],
  };
}

const params = (p: Partial<RuleParams> & Pick<RuleParams, 'threshold' | 'severity'>): RuleParams => ({
  enabled: true,
  windowSec: 60,
  forSec: 0,
  clearSec: 60,
  minVolume: 0,
  ...p,
});

export const RUNBOOKS = {
  authFailing: 'auth-failing-fleet-wide',
  socketFd: 'socket-fd-exhaustion',
  massDisconnect: 'mass-disconnect',
  badFirmware: 'bad-firmware-push',
  dataQuality: 'data-quality',
  capacityCost: 'capacity-cost',
} as const;

/** The built-in rules, in dashboard order. `satisfies` keeps them in step with the config's ids. */
export const builtinRules = {
  'auth-failure-ratio': {
    id: 'auth-failure-ratio',
    name: 'BreakwaterAuthFailureRatioHigh',
    description:
      'Share of authentication decisions that failed (failure, error, negative cache hit) over the window, per listener. Normal is 1-2 %; a rotated backend credential or a broken issuer sends it toward 100 %.',
    incidentType: 'mass-disconnect',
    runbook: RUNBOOKS.authFailing,
    defaults: params({ threshold: 0.2, severity: 'critical', forSec: 10, minVolume: 20 }),
    summarize: (v, p, l) => `auth failures at ${pct(v)} of decisions (threshold ${pct(p.threshold)})${on(l)}`,
    metric: authFailureRatio(),
  },
  'auth-backend-latency': {
    id: 'auth-backend-latency',
    name: 'BreakwaterAuthBackendSlow',
    description:
      'p99 latency of auth backend calls (postgres, http) over the window. A slow backend is the first sign of an auth storm.',
    incidentType: 'mass-disconnect',
    runbook: RUNBOOKS.authFailing,
    defaults: params({ threshold: 1, severity: 'warning', forSec: 15, minVolume: 10 }),
    summarize: (v, p, l) => `auth backend p99 ${fmt(v)} s (threshold ${fmt(p.threshold)} s)${on(l)}`,
    metric: authBackendLatency(),
  },
  'auth-backend-breaker-open': {
    id: 'auth-backend-breaker-open',
    name: 'BreakwaterAuthBackendBreakerOpen',
    description:
      'The auth backend circuit breaker is open (state 2): the backend is failing and only cached decisions admit devices.',
    incidentType: 'mass-disconnect',
    runbook: RUNBOOKS.authFailing,
    defaults: params({ threshold: 2, severity: 'critical', windowSec: 1, forSec: 5 }),
    summarize: (_v, _p, l) => `auth backend circuit breaker open${on(l)}`,
    metric: authBackendBreakerOpen(),
  },
  'connection-attempts-doubling': {
    id: 'connection-attempts-doubling',
    name: 'BreakwaterConnectionAttemptsDoubled',
    description:
      'Connection-attempt rate on a listener at least `threshold` times the previous window (a fleet retrying at once). minVolume is the attempts/s floor.',
    incidentType: 'mass-disconnect',
    runbook: RUNBOOKS.massDisconnect,
    defaults: params({ threshold: 2, severity: 'warning', forSec: 10, minVolume: 5 }),
    summarize: (v, p, l) =>
      `connection attempts at ${fmt(v)}x the previous ${p.windowSec} s (threshold ${fmt(p.threshold)}x)${on(l)}`,
    metric: connectionAttemptsDoubling(),
  },
  'new-connection-burst': {
    id: 'new-connection-burst',
    name: 'BreakwaterNewConnectionBurst',
    description: 'More than `threshold` connection attempts within the window, all listeners together.',
    incidentType: 'mass-disconnect',
    runbook: RUNBOOKS.massDisconnect,
    defaults: params({ threshold: 500, severity: 'warning', windowSec: 5, clearSec: 30 }),
    summarize: (v, p) => `${fmt(v)} connection attempts in ${p.windowSec} s (threshold ${fmt(p.threshold)})`,
    metric: newConnectionBurst(),
  },
  'connected-devices-drop': {
    id: 'connected-devices-drop',
    name: 'BreakwaterConnectedDevicesDrop',
    description:
      'Connected devices fell by more than `threshold` (a fraction) from the peak of the window. minVolume: the smallest peak that counts.',
    incidentType: 'mass-disconnect',
    runbook: RUNBOOKS.massDisconnect,
    defaults: params({ threshold: 0.1, severity: 'critical', minVolume: 20 }),
    summarize: (v, p) =>
      `connected devices down ${pct(v)} within ${p.windowSec} s (threshold ${pct(p.threshold)})`,
    metric: connectedDevicesDrop(),
  },
  'zombie-sockets': {
    id: 'zombie-sockets',
    name: 'BreakwaterZombieSockets',
    description:
      'Accepted sockets that have not sent CONNECT. A pile-up means reconnects are not completing (or old sockets are not being destroyed).',
    incidentType: 'mass-disconnect',
    runbook: RUNBOOKS.socketFd,
    defaults: params({ threshold: 500, severity: 'warning', windowSec: 1, forSec: 30 }),
    summarize: (v, p) => `${fmt(v)} sockets without CONNECT (threshold ${fmt(p.threshold)})`,
    metric: gaugeThreshold('breakwater_sockets_without_connect', 'short'),
  },
  'open-sockets-high': {
    id: 'open-sockets-high',
    name: 'BreakwaterOpenSocketsHigh',
    description: 'Open client sockets across all listeners above the capacity planned for one node.',
    incidentType: 'capacity-cost',
    runbook: RUNBOOKS.socketFd,
    defaults: params({ threshold: 50_000, severity: 'warning', windowSec: 1, forSec: 60 }),
    summarize: (v, p) => `${fmt(v)} open sockets (threshold ${fmt(p.threshold)})`,
    metric: gaugeThreshold('breakwater_open_sockets', 'short'),
  },
  'fd-usage-high': {
    id: 'fd-usage-high',
    name: 'BreakwaterFdUsageHigh',
    description:
      'Open file descriptors over the process limit. Admission refuses new sockets at 90 %; at 100 % the process cannot accept, log or write.',
    incidentType: 'mass-disconnect',
    runbook: RUNBOOKS.socketFd,
    defaults: params({ threshold: 0.8, severity: 'critical', windowSec: 1, forSec: 15 }),
    summarize: (v, p) => `FD use at ${pct(v)} of the limit (threshold ${pct(p.threshold)})`,
    metric: fdUsage(),
  },
  'message-rate-over-budget': {
    id: 'message-rate-over-budget',
    name: 'BreakwaterMessageRateOverBudget',
    description: 'Inbound PUBLISH rate above the budget (messages/s, set `threshold` to your plan).',
    incidentType: 'capacity-cost',
    runbook: RUNBOOKS.capacityCost,
    defaults: params({ threshold: 20_000, severity: 'warning', forSec: 120, clearSec: 300 }),
    summarize: (v, p) => `${fmt(v)} messages/s in (budget ${fmt(p.threshold)})`,
    metric: messageRate(),
  },
  'ota-gate-failed': {
    id: 'ota-gate-failed',
    name: 'BreakwaterOtaGateFailed',
    description:
      'An OTA campaign wave failed its health gate (failure, disconnect or silence ratio over the gate) and the campaign was halted. Raised by the campaign engine; resolved when it is.',
    incidentType: 'bad-firmware-push',
    runbook: RUNBOOKS.badFirmware,
    defaults: params({ threshold: 0, severity: 'critical', windowSec: 1, clearSec: 0 }),
    summarize: (v, p, l) => `OTA gate failed: ${pct(v)} over the gate ${pct(p.threshold)}${on(l)}`,
  },
  'telemetry-validation-failures': {
    id: 'telemetry-validation-failures',
    name: 'BreakwaterTelemetryValidationFailures',
    description:
      'Device telemetry failing schema validation. Raised by the telemetry validator; resolves by itself `clearSec` after the last report.',
    incidentType: 'data-quality',
    runbook: RUNBOOKS.dataQuality,
    defaults: params({ threshold: 0, severity: 'warning', windowSec: 1, clearSec: 300 }),
    summarize: (v, _p, l) => `${fmt(v)} telemetry messages failed validation${on(l)}`,
  },
} satisfies Record<AlertRuleId, AlertRuleDefinition & { id: AlertRuleId }>;

/** Applies the config's overrides (`alerts.rules.<id>`) to the built-in defaults. */
export function resolveRules(overrides: AlertsConfig['rules'] | undefined = {}): ResolvedRule[] {
  return Object.values(builtinRules).map((rule: AlertRuleDefinition) => {
    const o: AlertRuleOverride =
      (overrides as Partial<Record<AlertRuleId, AlertRuleOverride>>)[rule.id] ?? {};
    const defined = Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));
    return { ...rule, params: { ...rule.defaults, ...defined } };
  });
}
