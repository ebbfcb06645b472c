/**
 * Mass disconnect (DESIGN.md §1, incident type "mass disconnect"): the network between the fleet
 * and the broker is cut for 60 s (scaled) through the fault proxy, then restored. Breakwater's part
 * is the devices' reconnect policy (jittered, widening backoff: the fleet must not turn the
 * restore into a connection storm) and a broker that takes the fleet back.
 */
import { peakWindowSum } from '../report/scores.js';
import {
  admissionFor,
  anonymousGuard,
  atFraction,
  noQos1Loss,
  policyFor,
  reconnectedWithin,
  scaled,
  telemetryFor,
} from './common.js';
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
  weakened: 'devices retry on a fixed 1 s period (naive); no admission control',
  defaults: { devices: 10_000, durationS: 900 },
  requiresInProcess: false,
  build(p) {
    const cutAt = atFraction(p, 0.1);
    const cutS = scaled(p, 60, 1);
    const restoreAt = Math.round((cutAt + cutS) * 10) / 10;
    const minuteS = scaled(p, 60, 1);
    // The fleet profile's third stage is 300-600 s: some devices come back only then.
    const recoverS = scaled(p, 720, 4);
    return {
      broker: { guard: anonymousGuard(), admission: admissionFor(p), postgres: false },
      fleet: {
        policy: policyFor(p),
        timeScale: p.timeScale,
        telemetry: telemetryFor(p),
      },
      viaProxy: true,
      controlPlane: false,
      timeline: [
        {
          atS: cutAt,
          kind: 'fault',
          label: `network cut (fault proxy: every connection reset, new ones refused) for ${cutS} s`,
          run(ctx) {
            ctx.proxy?.cut();
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
