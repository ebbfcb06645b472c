/**
 * Mass disconnect (DESIGN.md §1, incident type "mass disconnect"): the network between the fleet
 * and the broker is cut for 60 s (scaled) through the fault proxy, then restored. Breakwater's part
 * is the devices' reconnect policy (jittered, widening backoff: the fleet must not turn the
 * restore into a connection storm) and a broker that takes the fleet back.
 *
 * Matrix (issue 11): devices authenticate against the run's PostgreSQL table (in-process broker).
 * Warm: the fleet connected before the cut, so the restore storm is of devices the broker has
 * verified. Cold: the fleet powers on while the network is already cut — the restore storm is
 * every device's first connect, one backend query each.
 */
import { peakWindowSum } from '../report/scores.js';
import {
  admissionFor,
  atFraction,
  noQos1Loss,
  policyFor,
  reconnectedWithin,
  scaled,
  stormAuth,
  stormRampPerSec,
  telemetryFor,
} from './common.js';
import { FULL_MATRIX } from './matrix.js';
import type { ScenarioDefinition } from './types.js';

/**
 * At most this many connection attempts per device in any (scaled) minute. The fleet profile makes
 * at most two retries in any minute (5-15 s, then 30-120 s, then 5-10 min) plus the one that
 * succeeds; a 1 s retry makes sixty.
 */
export const MAX_ATTEMPTS_PER_DEVICE_MINUTE = 3;

export const massDisconnect: ScenarioDefinition = {
  name: 'mass-disconnect',
  title: 'Mass disconnect: the network is cut for 60 s',
  incident: 'mass-disconnect',
  summary:
    'The network between the fleet and the broker is cut (every connection reset, new ones refused) for 60 s at full scale, then restored. The fleet must back off instead of hammering (jittered, widening retries), and come back once the network does: with the fleet profile a device that failed three times waits 5-10 min, which bounds the time to 99 % reconnected.',
  weakened:
    'no admission control; every CONNECT is a backend query (no auth cache, no adaptive limit, no breaker)',
  defaults: { devices: 10_000, durationS: 900, ci: { devices: 200, durationS: 24 } },
  matrix: FULL_MATRIX,
  matrixNotes:
    'warm: the fleet connected before the cut. cold: the fleet powers on (within ~5 s) only once the network is cut, so the restore is every device’s first connect. With --target the devices use the target’s own authentication.',
  requiresInProcess: false,
  build(p) {
    const cutAt = atFraction(p, 0.1);
    const cutS = scaled(p, 60, 1);
    const restoreAt = Math.round((cutAt + cutS) * 10) / 10;
    const minuteS = scaled(p, 60, 1);
    // The fleet profile's third stage is 300-600 s: some devices come back only then.
    const recoverS = scaled(p, 720, 4);
    const cold = p.cache === 'cold';
    const auth = stormAuth(p);
    return {
      broker: { guard: auth.guard, admission: admissionFor(p), postgres: auth.postgres },
      fleet: {
        policy: policyFor(p),
        timeScale: p.timeScale,
        telemetry: telemetryFor(p),
        ...(auth.credentials ? { credentials: auth.credentials } : {}),
        ...(cold ? { initialDevices: 0 } : {}),
      },
      viaProxy: true,
      controlPlane: false,
      timeline: [
        {
          atS: cutAt,
          kind: 'fault',
          label: cold
            ? `network cut for ${cutS} s (fault proxy refuses every connection); the fleet powers on meanwhile`
            : `network cut (fault proxy: every connection reset, new ones refused) for ${cutS} s`,
          run(ctx) {
            ctx.proxy?.cut();
            if (cold) {
              const spreadMs = Math.round((p.devices / stormRampPerSec(p.devices)) * 1000);
              ctx.measure('poweredOnDuringCut', ctx.fleet.join(p.devices, [0, spreadMs]).length);
            }
          },
        },
        {
          atS: restoreAt,
          kind: 'repair',
          label: 'network restored',
          run(ctx) {
            ctx.proxy?.restore();
          },
        },
      ],
      expectations: [
        {
          id: 'retry-pressure',
          name: `at most ${MAX_ATTEMPTS_PER_DEVICE_MINUTE} connection attempts per device per minute (scaled: ${minuteS} s)`,
          compare: '<=',
          notJudged: (params) =>
            params.firmware === 'naive'
              ? 'a fixed 1 s retry against a cut network is the firmware’s doing; the broker never sees those attempts'
              : null,
          evaluate: (r) => {
            const peakAttempts = peakWindowSum(r.seconds, (s) => s.attempts, minuteS);
            return {
              value: peakAttempts / r.params.devices,
              threshold: MAX_ATTEMPTS_PER_DEVICE_MINUTE,
              unit: 'attempts/device/min',
              detail: `peak ${Math.round(peakAttempts)} attempts in ${minuteS} s`,
            };
          },
        },
        reconnectedWithin(recoverS, 'repair'),
        noQos1Loss(),
      ],
    };
  },
};
