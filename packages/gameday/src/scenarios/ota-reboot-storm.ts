/**
 * The reboot storm (DESIGN.md §1, "Reboot storm / zombie sockets"): an OTA push reboots a third of
 * the fleet at once (4,000 of 12,000 at full scale). Each rebooted device drops without
 * DISCONNECT and comes back 2-8 s later (scaled) with a new connection for the same client id.
 * Breakwater must destroy the old socket at once (session takeover), keep its open sockets near
 * the fleet size, absorb the wave through admission, and lose no acknowledged message.
 *
 * Matrix (issue 11): devices authenticate against the run's PostgreSQL table (in-process broker).
 * Warm: the whole fleet connected earlier, so the wave reconnects devices the broker has verified.
 * Cold: the third that reboots never connected before in the run — its first connect is the wave,
 * one backend query each, all at once.
 */
import { peakWindowSum, timeToConnected } from '../report/scores.js';
import {
  admissionFor,
  atFraction,
  noQos1Loss,
  noSocketPileUp,
  policyFor,
  scaled,
  scaledRangeMs,
  stormAuth,
  telemetryFor,
} from './common.js';
import { FULL_MATRIX } from './matrix.js';
import type { ScenarioDefinition } from './types.js';

export const otaRebootStorm: ScenarioDefinition = {
  name: 'ota-reboot-storm',
  title: 'OTA reboot storm: a third of the fleet reboots at once',
  incident: 'reboot-storm',
  summary:
    'An OTA push reboots a third of the fleet at the same moment (4,000 of 12,000 devices at full scale). Every rebooted device drops without DISCONNECT and reconnects 2-8 s later with the same client id. Breakwater must end each old session at once (no sockets piling up toward the FD limit), absorb the wave, and keep every acknowledged message.',
  weakened:
    'no admission control; every CONNECT is a backend query (no auth cache, no adaptive limit, no breaker)',
  defaults: { devices: 12_000, durationS: 180, ci: { devices: 200, durationS: 10 } },
  matrix: FULL_MATRIX,
  matrixNotes:
    'warm: the whole fleet connected before the wave (the broker verified every device). cold: the third that reboots never connected before: it is held back and the wave is its first connect (2-8 s after the wave, scaled). With --target the devices use the target’s own authentication.',
  requiresInProcess: false,
  build(p) {
    const waveAt = atFraction(p, 0.3);
    const rebooted = Math.round(p.devices / 3);
    const backWindowS = scaled(p, 45, 3);
    const cold = p.cache === 'cold';
    const auth = stormAuth(p);
    return {
      broker: { guard: auth.guard, admission: admissionFor(p), postgres: auth.postgres },
      fleet: {
        policy: policyFor(p),
        timeScale: p.timeScale,
        telemetry: telemetryFor(p),
        ...(auth.credentials ? { credentials: auth.credentials } : {}),
        ...(cold ? { initialDevices: p.devices - rebooted } : {}),
      },
      viaProxy: false,
      controlPlane: false,
      timeline: [
        {
          atS: waveAt,
          kind: 'fault',
          label: cold
            ? `OTA reboot wave: ${rebooted} devices never seen before boot within 2-8 s (scaled)`
            : `OTA reboot wave: ${rebooted} devices drop without DISCONNECT, back after 2-8 s (scaled)`,
          run(ctx) {
            const ids = cold
              ? ctx.fleet.join(rebooted, scaledRangeMs(p, [2_000, 8_000]))
              : ctx.fleet.reboot(rebooted, scaledRangeMs(p, [2_000, 8_000]));
            ctx.measure('rebooted', ids.length);
            ctx.state.set('rebooted', ids.length);
          },
        },
      ],
      expectations: [
        {
          id: 'rebooted-back',
          name: `99 % of the fleet connected again within ${backWindowS} s of the reboot wave`,
          compare: '<=',
          evaluate: (r) => ({
            value: r.faultAtS === null ? null : timeToConnected(r.seconds, r.faultAtS, r.params.devices),
            threshold: backWindowS,
            unit: 's',
          }),
        },
        noSocketPileUp(p),
        {
          id: 'retry-amplification',
          name: 'connection attempts in the wave window stay under 3 per rebooted device',
          compare: '<=',
          evaluate: (r) => {
            const from = r.faultAtS ?? 0;
            const window = r.seconds.filter((s) => s.t > from && s.t <= from + backWindowS + 1);
            const attempts = window.reduce((a, s) => a + s.attempts, 0);
            const n = Number(r.measurements.rebooted ?? 0);
            return {
              value: n > 0 ? attempts / n : null,
              threshold: 3,
              unit: 'attempts/device',
              detail: `${attempts} attempts for ${n} rebooted devices; peak ${Math.round(peakWindowSum(window, (s) => s.attempts, 1))}/s`,
            };
          },
        },
        {
          id: 'no-zombie-sockets',
          name: 'no sockets left without CONNECT at the end (zombies cleared)',
          compare: '<=',
          evaluate: (r) => {
            const last = r.seconds.at(-1);
            return {
              value: last?.socketsWithoutConnect ?? null,
              threshold: Math.max(1, Math.ceil(r.params.devices * 0.005)),
              unit: 'sockets',
            };
          },
        },
        noQos1Loss(),
      ],
    };
  },
};
