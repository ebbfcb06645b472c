/**
 * What the scenarios share: how time scales, the broker configs (guard and admission, protected
 * and weakened), the telemetry template, and the expectations several scenarios state.
 *
 * Time: fault positions are fractions of the run's duration (so a run always shows before, during
 * and after); fault lengths, device delays and the windows expectations allow are full-scale
 * seconds × `timeScale`, with a floor of a few seconds because samples are one second apart.
 */
import type { AdmissionConfigInput } from '@breakwater/broker';
import type { TelemetryOptions } from '../fleet/types.js';
import { peak, timeToConnected } from '../report/scores.js';
import type { Expectation, ScenarioParams, SecondSample } from './types.js';

/** Full-scale seconds → this run's seconds, never below `floorS`. */
export function scaled(p: ScenarioParams, fullScaleS: number, floorS = 0): number {
  return Math.max(floorS, Math.round(fullScaleS * p.timeScale * 10) / 10);
}

/** A full-scale range in ms, scaled (delays passed to Fleet.reboot/flap are used as given). */
export function scaledRangeMs(p: ScenarioParams, [a, b]: [number, number], floorMs = 20): [number, number] {
  return [Math.max(floorMs, Math.round(a * p.timeScale)), Math.max(floorMs, Math.round(b * p.timeScale))];
}

/** A second of the run at this fraction of the duration (at least 1). */
export function atFraction(p: ScenarioParams, fraction: number): number {
  return Math.max(1, Math.round(p.durationS * fraction));
}

export function policyFor(p: ScenarioParams): 'fleet' | 'naive' {
  return p.protections === 'on' ? 'fleet' : 'naive';
}

/** Telemetry: one JSON message per device every 10 s at full scale (1-10 s scaled), QoS 1. */
export function telemetryFor(p: ScenarioParams, speedup = 1): TelemetryOptions {
  const base = Math.min(10_000, Math.max(1_000, Math.round(10_000 * p.timeScale)));
  return {
    intervalMs: Math.max(20, Math.round(base / speedup)),
    qos: 1,
    payload: (id, seq) => `{"id":"${id}","seq":${seq},"temp":${(20 + (seq % 50) / 10).toFixed(1)}}`,
  };
}

/**
 * Admission as `breakwater up` configures it by default, with its time constants (retry-after
 * hint, slow-start window, flapping window and ban) scaled like the fleet's own delays: a fleet
 * running 50× faster must meet a broker whose clock of patience runs 50× faster too.
 */
export function admissionFor(p: ScenarioParams): AdmissionConfigInput | null {
  if (p.protections === 'off') return null;
  const ms = (full: number, floor = 1) => Math.max(floor, Math.round(full * p.timeScale));
  return {
    retryAfter: { minMs: ms(5_000), maxMs: ms(15_000) },
    slowStart: { windowMs: ms(30_000), dropWindowMs: ms(30_000) },
    flapping: { clientId: { windowMs: ms(60_000), banMs: ms(300_000) } },
  };
}

export const LISTENER = 'mqtt';

/** Devices authenticate anonymously (locally verified): the scenario is not about the auth backend. */
export function anonymousGuard(): Record<string, unknown> {
  return {
    authenticators: { anonymous: { devices: {} } },
    listeners: { [LISTENER]: { authn: ['devices'] } },
  };
}

/** What the broker itself says it dropped (its bounded per-session queue, slow consumers). */
function droppedNote(seconds: readonly SecondSample[]): string {
  const total: Record<string, number> = {};
  for (const s of seconds) {
    for (const [k, v] of Object.entries(s.messagesDropped)) total[k] = (total[k] ?? 0) + v;
  }
  const parts = Object.entries(total).map(([k, v]) => `${v} ${k}`);
  return parts.length ? `; the broker counted as dropped: ${parts.join(', ')}` : '';
}

/** The expectation every scenario with telemetry states. */
export function noQos1Loss(): Expectation {
  return {
    id: 'no-qos1-loss',
    name: 'no QoS 1 message lost (acked by the broker, never delivered to the subscriber)',
    compare: '<=',
    evaluate: (r) => ({
      value: r.scores.qos1Lost,
      threshold: 0,
      unit: 'messages',
      detail:
        r.scores.qos1Delivered === null
          ? 'no QoS probe (the broker refused its subscription)'
          : `${r.scores.qos1Acked} acked, ${r.scores.qos1Delivered} delivered${droppedNote(r.seconds)}`,
    }),
  };
}

/** 99 % of the expected devices connected within `windowS` of the last repair (or the fault). */
export function reconnectedWithin(windowS: number, after: 'repair' | 'fault' = 'repair'): Expectation {
  return {
    id: 'reconnected',
    name: `99 % of the fleet reconnected within ${windowS} s after the ${after}`,
    compare: '<=',
    evaluate: (r) => {
      const from = after === 'repair' ? (r.repairAtS ?? r.faultAtS) : r.faultAtS;
      const v = from === null ? null : timeToConnected(r.seconds, from, r.expectedConnected);
      return {
        value: v,
        threshold: windowS,
        unit: 's',
        detail: v === null ? `never reached ${Math.ceil(0.99 * r.expectedConnected)} connected` : undefined,
      };
    },
  };
}

/** The broker's open sockets never exceed the fleet by more than `slack` (no CLOSE_WAIT pile-up). */
export function noSocketPileUp(p: ScenarioParams): Expectation {
  const limit = Math.ceil(p.devices * 1.05) + 10;
  return {
    id: 'no-socket-pileup',
    name: `broker open sockets stay within the fleet size + 5 % (no socket pile-up)`,
    compare: '<=',
    evaluate: (r) => ({
      value: peak(r.seconds, (s) => s.openSockets),
      threshold: limit,
      unit: 'sockets',
    }),
  };
}
