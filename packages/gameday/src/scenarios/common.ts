/**
 * What the scenarios share: how time scales, the broker configs (guard and admission, protected
 * and weakened), the telemetry template, and the expectations several scenarios state.
 *
 * Time: fault positions are fractions of the run's duration (so a run always shows before, during
 * and after); fault lengths, device delays and the windows expectations allow are full-scale
 * seconds × `timeScale`, with a floor of a few seconds because samples are one second apart.
 */
import { type AdmissionConfigInput, defaultAdmissionConfig, resolveGuardConfig } from '@breakwater/broker';
import type { TelemetryOptions } from '../fleet/types.js';
import { peak, timeToConnected } from '../report/scores.js';
import { devicePassword, postgresAuthenticatorConfig } from './postgres-backend.js';
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

/** The cell's device firmware: the SDK's fleet policy, or a fixed 1 s retry. */
export function policyFor(p: ScenarioParams): 'fleet' | 'naive' {
  return p.firmware;
}

/**
 * How fast a storm's devices power on: the whole batch within about 5 s (at least 200/s), in real
 * time — a power restoration or a deploy does not wait for the time scale.
 */
export function stormRampPerSec(devices: number): number {
  return Math.max(200, Math.ceil(devices / 5));
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
 * Admission exactly as `breakwater up` configures it by default (defaultAdmissionConfig), with the
 * broker's clocks of patience scaled like the fleet's own delays — the tarpit hold, the
 * slow-start window, the flapping counting window, short-session threshold and ban: a fleet
 * running 10× faster must meet a broker whose patience runs 10× faster too. The retry-after hint
 * is not scaled here: the simulated devices scale every delay they take, the server's hint included.
 * Load thresholds (event-loop delay, handshakes, FDs) are real time and stay as they are.
 */
export function admissionFor(p: ScenarioParams): AdmissionConfigInput | null {
  if (p.protections === 'off') return null;
  const d = defaultAdmissionConfig;
  const ms = (full: number, floor = 1) => Math.max(floor, Math.round(full * p.timeScale));
  const flap = d.flapping.clientId;
  return {
    tarpit: { minMs: ms(d.tarpit.minMs, 10), maxMs: ms(d.tarpit.maxMs, 20) },
    slowStart: { windowMs: ms(d.slowStart.windowMs), dropWindowMs: ms(d.slowStart.dropWindowMs) },
    flapping: {
      clientId: {
        windowMs: ms(flap.windowMs, 100),
        banMs: ms(flap.banMs, 100),
        shortSessionMs: ms(flap.shortSessionMs, 50),
      },
    },
  };
}

export const LISTENER = 'mqtt';

/**
 * The device listener's guard against the scenario's PostgreSQL credential table (every device of
 * the run is there, and only there). Protections on: the guard's defaults — decision cache with
 * stale-if-error, single-flight, the adaptive backend limit with its bounded wait queue, the
 * breaker (its open times scaled like every other clock of patience, see admissionFor).
 * Protections off: what a hand-written auth hook does — every CONNECT is a query, queued by the
 * connection pool without bound: no cache of any kind, a fixed limit at the pool size, no breaker.
 */
export function postgresGuard(
  p: ScenarioParams,
  authenticator: Record<string, unknown>,
): Record<string, unknown> {
  const name = 'pg';
  if (p.protections === 'on') {
    return {
      authenticators: { postgres: { [name]: { ...authenticator, limits: { breaker: scaledBreaker(p) } } } },
      listeners: { [LISTENER]: { authn: [name] } },
    };
  }
  const pool = defaultPostgres().poolSize;
  return {
    authenticators: {
      postgres: {
        [name]: {
          ...authenticator,
          limits: {
            maxInFlight: pool,
            adaptive: { initial: pool, min: pool },
            queue: { maxWaiting: 1_000_000, maxWaitMs: 600_000 },
            breaker: { minRequests: 1_000_000_000, errorRatio: 1 },
          },
        },
      },
    },
    listeners: {
      [LISTENER]: {
        authn: [name],
        cache: { positiveTtlSec: 0, staleIfErrorSec: 0, negativeTtlSec: 0, persist: false },
      },
    },
  };
}

/** The broker's defaults for a postgres authenticator (what `breakwater up` would run). */
function defaultPostgres() {
  const c = resolveGuardConfig({ authenticators: { postgres: { probe: {} } } });
  return c.authenticators.postgres.probe!;
}

function scaledBreaker(p: ScenarioParams): Record<string, number> {
  const b = defaultPostgres().limits.breaker;
  const ms = (full: number, floor: number) => Math.max(floor, Math.round(full * p.timeScale));
  return {
    windowMs: ms(b.windowMs, 1_000),
    openMs: ms(b.openMs, 100),
    maxOpenMs: ms(b.maxOpenMs, 500),
  };
}

/**
 * The device side of a connect storm: against the in-process broker, every device authenticates
 * with its own password against the run's PostgreSQL table (a storm is an auth-backend storm, and
 * anonymous devices would hide that); against `--target`, the target's own authentication.
 */
export function stormAuth(p: ScenarioParams): {
  guard: Record<string, unknown>;
  postgres: boolean;
  credentials?: (id: string) => { username: string; password: string };
} {
  if (p.target) return { guard: anonymousGuard(), postgres: false };
  return {
    guard: postgresGuard(p, postgresAuthenticatorConfig()),
    postgres: true,
    credentials: (id) => ({ username: id, password: devicePassword(id) }),
  };
}

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
