/**
 * The scores every report carries (issue 6): time to detect, peak attempts/min, peak backend
 * queries/s, time to 99 % reconnected, QoS 1 messages lost, FD peak. Plus the small series helpers
 * scenarios use in their expectations.
 */
import type { FleetStats } from '../fleet/types.js';
import type { QosProbeStats } from '../scenarios/qos-probe.js';
import type { AlertRecord, PhaseName, PhaseScore, Scores, SecondSample } from '../scenarios/types.js';

export interface ScoreInput {
  seconds: SecondSample[];
  fleetFinal: FleetStats;
  probe: QosProbeStats | null;
  alerts: AlertRecord[] | null;
  alertEngine: string | null;
  faultAtS: number | null;
  repairAtS: number | null;
  expectedConnected: number;
  /** Devices launched at t = 0 (default expectedConnected). */
  initialDevices?: number;
  /** Devices "99 % connected" counts per phase (defaults: initialDevices, expectedConnected, expectedConnected). */
  targets?: Partial<Record<PhaseName, number>>;
  phaseLabels?: { fault?: string; repair?: string };
}

/** Sums the per-second cumulative-bucket deltas of a histogram over some seconds. */
export function sumHistogram(seconds: readonly SecondSample[]): Record<string, number> | null {
  let out: Record<string, number> | null = null;
  for (const s of seconds) {
    if (!s.backendLatency) continue;
    out ??= {};
    for (const [le, n] of Object.entries(s.backendLatency)) out[le] = (out[le] ?? 0) + n;
  }
  return out;
}

/**
 * The q-quantile of a Prometheus histogram given as cumulative bucket counts by upper bound (`le`),
 * interpolated linearly inside the bucket, as PromQL's histogram_quantile does: in the first
 * bucket from 0, and the highest finite bound when the rank falls in `+Inf`. Null without
 * observations.
 */
export function histogramQuantile(q: number, buckets: Record<string, number>): number | null {
  const rungs = Object.entries(buckets)
    .map(([le, n]) => ({ le: le === '+Inf' ? Number.POSITIVE_INFINITY : Number(le), n }))
    .filter((r) => !Number.isNaN(r.le))
    .sort((a, b) => a.le - b.le);
  const total = rungs.at(-1)?.n ?? 0;
  if (rungs.length === 0 || total <= 0) return null;
  const rank = q * total;
  let prevLe = 0;
  let prevN = 0;
  for (const r of rungs) {
    if (r.n >= rank) {
      if (r.le === Number.POSITIVE_INFINITY) return prevLe;
      const inBucket = r.n - prevN;
      return inBucket <= 0 ? r.le : prevLe + ((r.le - prevLe) * (rank - prevN)) / inBucket;
    }
    prevLe = r.le;
    prevN = r.n;
  }
  return prevLe;
}

function addInto(into: Record<string, number>, from: Record<string, number>): void {
  for (const [k, v] of Object.entries(from)) into[k] = (into[k] ?? 0) + v;
}

function ms(seconds: number | null): number | null {
  return seconds === null ? null : Math.round(seconds * 10_000) / 10;
}

function ratio(a: number | null, b: number | null): number | null {
  return a === null || b === null || b === 0 ? null : Math.round((a / b) * 1000) / 1000;
}

/** Backend figures over a set of seconds (p99 and mean from the histogram, calls per CONNECT). */
export function backendFigures(seconds: readonly SecondSample[]): {
  brokerAttempts: number | null;
  backendCalls: number | null;
  backendCallsPerAttempt: number | null;
  peakBackendCallsPerSec: number | null;
  backendP99Ms: number | null;
  backendMeanMs: number | null;
} {
  const scraped = seconds.filter((s) => s.brokerAttempts !== null);
  const brokerAttempts = scraped.length ? total(scraped, (s) => s.brokerAttempts) : null;
  const withBackend = seconds.filter((s) => s.backendQueries !== null);
  const backendCalls = withBackend.length ? total(withBackend, (s) => s.backendQueries) : null;
  const hist = sumHistogram(seconds);
  const count = hist?.['+Inf'] ?? 0;
  const sum = total(seconds, (s) => s.backendLatencySumS);
  return {
    brokerAttempts,
    backendCalls,
    backendCallsPerAttempt: ratio(backendCalls, brokerAttempts),
    peakBackendCallsPerSec: peak(seconds, (s) => s.backendQueries),
    backendP99Ms: hist ? ms(histogramQuantile(0.99, hist)) : null,
    backendMeanMs: count > 0 ? ms(sum / count) : null,
  };
}

/**
 * The run cut at the first fault and the last repair: `start` (t = 0 up to the fault, or the whole
 * run), `fault` (to the repair, or the end) and `repair` (to the end). Each phase's clock starts at
 * its own beginning; its target is the number of devices "99 % connected" counts.
 */
export function phaseScores(input: ScoreInput): PhaseScore[] {
  const { seconds, faultAtS, repairAtS } = input;
  const end = seconds.at(-1)?.t ?? 0;
  const initial = input.initialDevices ?? input.expectedConnected;
  const targets = {
    start: input.targets?.start ?? initial,
    fault: input.targets?.fault ?? input.expectedConnected,
    repair: input.targets?.repair ?? input.expectedConnected,
  };
  const cuts: { name: PhaseName; label: string; from: number; to: number }[] = [];
  const firstCut = faultAtS ?? repairAtS ?? end;
  cuts.push({ name: 'start', label: 'start', from: 0, to: firstCut });
  if (faultAtS !== null)
    cuts.push({
      name: 'fault',
      label: input.phaseLabels?.fault ?? 'fault',
      from: faultAtS,
      to: repairAtS !== null && repairAtS > faultAtS ? repairAtS : end,
    });
  if (repairAtS !== null)
    cuts.push({ name: 'repair', label: input.phaseLabels?.repair ?? 'repair', from: repairAtS, to: end });
  return cuts.map((c) => {
    // A sample covers the second that ends at its t: (t - 1, t].
    const w = seconds.filter((s) => s.t > c.from && s.t <= Math.max(c.to, c.from + 1));
    const authOutcomes: Record<string, number> = {};
    const backendRejected: Record<string, number> = {};
    const refusals: Record<string, number> = {};
    for (const s of w) {
      addInto(authOutcomes, s.authOutcomes);
      addInto(backendRejected, s.backendRejected);
      addInto(refusals, s.refusals);
    }
    const b = backendFigures(w);
    return {
      name: c.name,
      label: c.label,
      fromS: c.from,
      toS: c.to,
      target: targets[c.name],
      // Within the phase: a fleet that only got there after the next phase began did not get
      // there in this one (e.g. back only after the fix, not while the backend was broken).
      timeTo99S:
        targets[c.name] > 0
          ? timeToConnected(seconds, c.from, targets[c.name], 0.99, c.name === 'repair' ? end : c.to)
          : null,
      fleetAttempts: total(w, (s) => s.attempts),
      ...b,
      authOutcomes,
      backendRejected,
      refusals,
    };
  });
}

/**
 * Largest sum of `value` over `windowS` consecutive seconds. A run shorter than the window counts
 * whole (what happened, not an extrapolation).
 */
export function peakWindowSum(
  seconds: readonly SecondSample[],
  value: (s: SecondSample) => number,
  windowS: number,
): number {
  if (seconds.length === 0) return 0;
  const w = Math.max(1, Math.round(windowS));
  if (seconds.length < w) return seconds.reduce((a, s) => a + value(s), 0);
  let sum = 0;
  let best = 0;
  for (let i = 0; i < seconds.length; i++) {
    sum += value(seconds[i] as SecondSample);
    if (i >= w) sum -= value(seconds[i - w] as SecondSample);
    if (i >= w - 1) best = Math.max(best, sum);
  }
  return best;
}

export function peak(
  seconds: readonly SecondSample[],
  value: (s: SecondSample) => number | null,
): number | null {
  let best: number | null = null;
  for (const s of seconds) {
    const v = value(s);
    if (v !== null && (best === null || v > best)) best = v;
  }
  return best;
}

export function total(seconds: readonly SecondSample[], value: (s: SecondSample) => number | null): number {
  return seconds.reduce((a, s) => a + (value(s) ?? 0), 0);
}

/**
 * Seconds from `fromS` until the fleet's connected count reached `fraction` of `expected`
 * (first sample at or after it, 1 s resolution); null if it never did.
 */
export function timeToConnected(
  seconds: readonly SecondSample[],
  fromS: number,
  expected: number,
  fraction = 0.99,
  untilS = Number.POSITIVE_INFINITY,
): number | null {
  const need = Math.ceil(fraction * expected);
  for (const s of seconds) {
    if (s.t > untilS + 1e-9) break;
    if (s.t > fromS && s.connected >= need) return Math.round((s.t - fromS) * 10) / 10;
  }
  return null;
}

export function computeScores(input: ScoreInput): Scores {
  const { seconds, fleetFinal, probe, faultAtS, repairAtS } = input;
  let timeToDetectS: number | null = null;
  let timeToDetectNote: string | null = null;
  if (input.alertEngine === null || input.alerts === null) {
    timeToDetectNote = 'no alert engine';
  } else if (faultAtS === null) {
    timeToDetectNote = 'no fault in this scenario';
  } else {
    const first = input.alerts.find((a) => a.state === 'firing' && a.t >= faultAtS);
    if (first) {
      timeToDetectS = Math.round((first.t - faultAtS) * 10) / 10;
      timeToDetectNote = `${first.name} (${first.ruleId})`;
    } else {
      timeToDetectNote = 'no alert fired';
    }
  }
  const from = repairAtS ?? faultAtS;
  const delivered = probe ? probe.deliveredQos1 : null;
  const phases = phaseScores(input);
  const phase = (n: PhaseName) => phases.find((x) => x.name === n) ?? null;
  const run = backendFigures(seconds);
  const bans = seconds.some((s) => s.flappingBans !== null) ? total(seconds, (s) => s.flappingBans) : null;
  return {
    timeToDetectS,
    timeToDetectNote,
    peakAttemptsPerMin: Math.round(peakWindowSum(seconds, (s) => s.attempts, 60)),
    peakBackendQueriesPerSec: peak(seconds, (s) => s.backendQueries),
    timeTo99ReconnectedS: from === null ? null : timeToConnected(seconds, from, input.expectedConnected),
    published: fleetFinal.published,
    qos1Acked: fleetFinal.qos1Acked,
    qos1Delivered: delivered,
    qos1Lost: delivered === null ? null : Math.max(0, fleetFinal.qos1Acked - delivered),
    fdPeak: peak(seconds, (s) => s.openFds),
    openSocketsPeak: peak(seconds, (s) => s.openSockets),
    timeTo99AfterStartS: phase('start')?.timeTo99S ?? null,
    timeTo99AfterFaultS: phase('fault')?.timeTo99S ?? null,
    timeTo99AfterRepairS: phase('repair')?.timeTo99S ?? null,
    backendCallsPerAttempt: run.backendCallsPerAttempt,
    backendP99Ms: run.backendP99Ms,
    backendMeanMs: run.backendMeanMs,
    flappingBans: bans,
    phases,
  };
}
