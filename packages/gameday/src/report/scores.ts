/**
 * The scores every report carries (issue 6): time to detect, peak attempts/min, peak backend
 * queries/s, time to 99 % reconnected, QoS 1 messages lost, FD peak. Plus the small series helpers
 * scenarios use in their expectations.
 */
import type { FleetStats } from '../fleet/types.js';
import type { QosProbeStats } from '../scenarios/qos-probe.js';
import type { AlertRecord, Scores, SecondSample } from '../scenarios/types.js';

export interface ScoreInput {
  seconds: SecondSample[];
  fleetFinal: FleetStats;
  probe: QosProbeStats | null;
  alerts: AlertRecord[] | null;
  alertEngine: string | null;
  faultAtS: number | null;
  repairAtS: number | null;
  expectedConnected: number;
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
): number | null {
  const need = Math.ceil(fraction * expected);
  for (const s of seconds) {
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
  };
}
