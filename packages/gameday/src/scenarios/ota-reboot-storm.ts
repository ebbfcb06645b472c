/**
 * The reboot storm (DESIGN.md §1, "Reboot storm / zombie sockets"): an OTA push reboots a third of
 * the fleet at once (4,000 of 12,000 at full scale). Each rebooted device drops without
 * DISCONNECT and comes back 2-8 s later (scaled) with a new connection for the same client id.
 * Breakwater must destroy the old socket at once (session takeover), keep its open sockets near
 * the fleet size, absorb the wave through admission, and lose no acknowledged message.
 */
import { peakWindowSum, timeToConnected } from '../report/scores.js';
import {
  admissionFor,
  anonymousGuard,
  atFraction,
  noQos1Loss,
  noSocketPileUp,
  policyFor,
  scaled,
  scaledRangeMs,
  telemetryFor,
} from './common.js';
import type { ScenarioDefinition } from './types.js';

export const otaRebootStorm: ScenarioDefinition = {
  name: 'ota-reboot-storm',
  title: 'OTA reboot storm: a third of the fleet reboots at once',
  incident: 'reboot-storm',
  summary:
    'An OTA push reboots a third of the fleet at the same moment (4,000 of 12,000 devices at full scale). Every rebooted device drops without DISCONNECT and reconnects 2-8 s later with the same client id. Breakwater must end each old session at once (no sockets piling up toward the FD limit), absorb the wave, and keep every acknowledged message.',
  weakened: 'no admission control; devices retry on a fixed 1 s period (naive)',
  defaults: { devices: 12_000, durationS: 180 },
  requiresInProcess: false,
  build(p) {
    const waveAt = atFraction(p, 0.3);
    const rebooted = Math.round(p.devices / 3);
    const backWindowS = scaled(p, 45, 3);
    return {
      broker: { guard: anonymousGuard(), admission: admissionFor(p), postgres: false },
      fleet: {
        policy: policyFor(p),
        timeScale: p.timeScale,
        telemetry: telemetryFor(p),
      },
      viaProxy: false,
      controlPlane: false,
      timeline: [
        {
          atS: waveAt,
          kind: 'fault',
          label: `OTA reboot wave: ${rebooted} devices drop without DISCONNECT, back after 2-8 s (scaled)`,
          run(ctx) {
            const ids = ctx.fleet.reboot(rebooted, scaledRangeMs(p, [2_000, 8_000]));
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
