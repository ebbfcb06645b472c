/**
 * Capacity (incident type "capacity / cost"): the fleet's publish rate jumps ×10 (a firmware
 * setting gone wrong, a chatty feature) for 40 % of the run. The broker must keep up — everything
 * offered is received and delivered, no acknowledged message lost, no connection dropped.
 */
import { admissionFor, anonymousGuard, atFraction, noQos1Loss, policyFor, telemetryFor } from './common.js';
import type { ScenarioDefinition, SecondSample } from './types.js';

export const RATE_FACTOR = 10;

function window(seconds: SecondSample[], from: number, to: number): SecondSample[] {
  return seconds.filter((s) => s.t > from && s.t <= to);
}

export const capacity: ScenarioDefinition = {
  name: 'capacity',
  title: 'Capacity: the publish rate jumps ×10',
  incident: 'capacity-cost',
  summary:
    'The whole fleet publishes ten times faster for 40 % of the run. The broker must receive and deliver everything offered (one subscriber reads all telemetry), lose no acknowledged message and drop no connection.',
  weakened: 'no admission control (nothing else in the broker limits publishing)',
  defaults: { devices: 10_000, durationS: 180, ci: { devices: 200, durationS: 8 } },
  // A publish surge, not a connect storm: the devices stay connected, so the auth cache has no
  // part in it (anonymous devices); protections and firmware still vary.
  matrix: { protections: ['on', 'off'], firmware: ['fleet', 'naive'], cache: ['warm'] },
  matrixNotes:
    'no auth-cache axis: a publish surge on a connected fleet makes no CONNECT, so the devices authenticate locally (anonymous) and the cell is always warm.',
  requiresInProcess: false,
  build(p) {
    const surgeAt = atFraction(p, 0.3);
    const endAt = atFraction(p, 0.7);
    return {
      broker: { guard: anonymousGuard(), admission: admissionFor(p), postgres: false },
      fleet: { policy: policyFor(p), timeScale: p.timeScale, telemetry: telemetryFor(p) },
      viaProxy: false,
      controlPlane: false,
      timeline: [
        {
          atS: surgeAt,
          kind: 'fault',
          label: `publish rate ×${RATE_FACTOR}`,
          run(ctx) {
            ctx.fleet.setTelemetry(telemetryFor(p, RATE_FACTOR));
          },
        },
        {
          atS: endAt,
          kind: 'repair',
          label: 'publish rate back to normal',
          run(ctx) {
            ctx.fleet.setTelemetry(telemetryFor(p));
          },
        },
      ],
      expectations: [
        {
          id: 'received-all',
          name: 'the broker receives what the fleet offers during the surge (≥ 95 %)',
          compare: '>=',
          evaluate: (r) => {
            const w = window(r.seconds, r.faultAtS ?? 0, r.repairAtS ?? r.params.durationS);
            const offered = w.reduce((a, s) => a + s.published, 0);
            const received = w.reduce((a, s) => a + (s.messagesIn ?? 0), 0);
            return {
              value: offered ? Math.round((received / offered) * 1000) / 10 : null,
              threshold: 95,
              unit: '%',
              detail: `${received} received of ${offered} published`,
            };
          },
        },
        {
          id: 'delivered-all',
          name: 'the subscriber gets what the broker receives during the surge (≥ 95 %)',
          compare: '>=',
          evaluate: (r) => {
            const w = window(r.seconds, r.faultAtS ?? 0, r.repairAtS ?? r.params.durationS);
            const received = w.reduce((a, s) => a + (s.messagesIn ?? 0), 0);
            const delivered = w.reduce((a, s) => a + s.delivered, 0);
            return {
              value: received ? Math.round((delivered / received) * 1000) / 10 : null,
              threshold: 95,
              unit: '%',
              detail: `${delivered} delivered of ${received} received`,
            };
          },
        },
        {
          id: 'connections-stable',
          name: 'no device loses its connection during the surge (99 % of those connected at its start stay)',
          compare: '>=',
          evaluate: (r) => {
            const from = r.faultAtS ?? 0;
            const w = window(r.seconds, from, r.repairAtS ?? r.params.durationS);
            const atStart = r.seconds.filter((s) => s.t <= from).at(-1)?.connected ?? r.params.devices;
            const min = w.length ? Math.min(...w.map((s) => s.connected)) : null;
            return {
              value:
                min === null || atStart === 0
                  ? null
                  : Math.round((Math.min(min, atStart) / atStart) * 1000) / 10,
              threshold: 99,
              unit: '%',
              detail: `${atStart} connected when the surge began, ${min ?? 'n/a'} at the lowest`,
            };
          },
        },
        noQos1Loss(),
      ],
    };
  },
};
