/**
 * Health gates, as pure functions over a wave's job counts so the rules are testable without an
 * engine. A gate fails early on failures (once the failure ratio is over the limit, no later
 * report can bring it back under), and at the end of the soak on failures and offline devices.
 */
import { FAILED_JOB_STATES, type Gate, type JobState } from './types.js';

export interface WaveHealth {
  /** Devices in the wave. */
  devices: number;
  /** failed + rolled-back + timed-out. */
  failed: number;
  /** Devices of the wave that reported `succeeded` and are not connected now. */
  offlineAfterUpdate: number;
  /** No device of the wave is still pending or working. */
  settled: boolean;
}

/** `value`: the ratio that broke the gate. */
export type GateVerdict = { ok: true } | { ok: false; reason: string; value: number };

export function countsToHealth(
  counts: ReadonlyMap<JobState, number>,
  offlineAfterUpdate: number,
): WaveHealth {
  let devices = 0;
  let failed = 0;
  let open = 0;
  for (const [state, n] of counts) {
    devices += n;
    if (FAILED_JOB_STATES.includes(state)) failed += n;
    if (
      state === 'pending' ||
      state === 'notified' ||
      state === 'queued' ||
      state === 'downloading' ||
      state === 'installing'
    )
      open += n;
  }
  return { devices, failed, offlineAfterUpdate, settled: open === 0 };
}

function ratio(n: number, of: number): number {
  return of === 0 ? 0 : n / of;
}

function pct(x: number): string {
  return `${Math.round(x * 1000) / 10}%`;
}

/** Checked on every report: too many failures halt at once. */
export function failureGate(health: WaveHealth, gate: Gate, waveIndex: number): GateVerdict {
  const r = ratio(health.failed, health.devices);
  if (r > gate.maxFailureRatio) {
    return {
      ok: false,
      value: r,
      reason: `wave ${waveIndex + 1}: failure ratio ${pct(r)} (${health.failed}/${health.devices}) exceeds ${pct(gate.maxFailureRatio)}`,
    };
  }
  return { ok: true };
}

/** Checked when the soak ends: failures, then devices that went offline after updating. */
export function soakGate(health: WaveHealth, gate: Gate, waveIndex: number): GateVerdict {
  const failure = failureGate(health, gate, waveIndex);
  if (!failure.ok) return failure;
  const r = ratio(health.offlineAfterUpdate, health.devices);
  if (r > gate.maxOfflineRatio) {
    return {
      ok: false,
      value: r,
      reason: `wave ${waveIndex + 1}: ${pct(r)} of devices (${health.offlineAfterUpdate}/${health.devices}) went offline after updating, over ${pct(gate.maxOfflineRatio)}`,
    };
  }
  return { ok: true };
}

export function effectiveGate(base: Gate, override: Partial<Gate>): Gate {
  return { ...base, ...override };
}
