/**
 * Telemetry corruption (incident type "data quality"): a cohort of devices (5 %) starts sending
 * invalid payloads. The data pipeline (the QoS probe, validating every message against the
 * telemetry template) must notice, name the sources, and the responder contains them with the
 * kill switch (revoking the cohort's credentials) so bad data stops flowing while the healthy
 * fleet keeps delivering.
 */
import {
  admissionFor,
  anonymousGuard,
  atFraction,
  noQos1Loss,
  policyFor,
  scaled,
  telemetryFor,
} from './common.js';
import type { RunContext, ScenarioDefinition } from './types.js';

interface CorruptionState {
  cohort: Set<string>;
  startedAt: number | null;
  invalid: number;
  invalidThisSecond: number;
  lastInvalidAt: number | null;
  offenders: Set<string>;
  detectedAt: number | null;
  containedAt: number | null;
  quarantined: Set<string>;
  lastRaisedAt: number | null;
}

function stateOf(ctx: RunContext): CorruptionState {
  let s = ctx.state.get('corruption') as CorruptionState | undefined;
  if (!s) {
    s = {
      cohort: new Set(),
      startedAt: null,
      invalid: 0,
      invalidThisSecond: 0,
      lastInvalidAt: null,
      offenders: new Set(),
      detectedAt: null,
      containedAt: null,
      quarantined: new Set(),
      lastRaisedAt: null,
    };
    ctx.state.set('corruption', s);
  }
  return s;
}

/** The template check: a JSON object with the device id, an integer seq and a numeric temp. */
export function validTelemetry(payload: Buffer): boolean {
  try {
    const v = JSON.parse(payload.toString('utf8')) as Record<string, unknown>;
    return (
      typeof v === 'object' &&
      v !== null &&
      typeof v.id === 'string' &&
      Number.isInteger(v.seq) &&
      typeof v.temp === 'number' &&
      Number.isFinite(v.temp)
    );
  } catch {
    return false;
  }
}

export const telemetryCorruption: ScenarioDefinition = {
  name: 'telemetry-corruption',
  title: 'Telemetry corruption: a cohort sends invalid payloads',
  incident: 'data-quality',
  summary:
    'A cohort of 5 % of the devices starts sending invalid telemetry (a firmware bug: truncated JSON, NaN readings). The pipeline validates every message; the responder must name the exact cohort (no healthy device blamed) and contain it with the credential kill switch, so invalid data stops within seconds while the rest of the fleet delivers without loss.',
  weakened: 'no responder: invalid messages are counted but nobody contains the cohort',
  defaults: { devices: 10_000, durationS: 240 },
  requiresInProcess: true,
  build(p) {
    const corruptAt = atFraction(p, 0.3);
    const cohortSize = Math.max(5, Math.round(p.devices * 0.05));
    const containS = scaled(p, 30, 3);
    return {
      broker: { guard: anonymousGuard(), admission: admissionFor(p), postgres: false },
      fleet: { policy: policyFor(p), timeScale: p.timeScale, telemetry: telemetryFor(p) },
      viaProxy: false,
      controlPlane: true,
      expectedConnected: () => p.devices - (p.protections === 'on' ? cohortSize : 0),
      onProbeMessage(ctx, topic, payload, at) {
        if (!topic.endsWith('/telemetry')) return;
        if (validTelemetry(payload)) return;
        const s = stateOf(ctx);
        s.invalid++;
        s.invalidThisSecond++;
        s.lastInvalidAt = at;
        const id = topic.split('/')[1] as string;
        s.offenders.add(id);
        // Detection: the first invalid message (the validator is the alert here).
        if (s.detectedAt === null) {
          s.detectedAt = at;
          ctx.note(`validator: invalid telemetry from ${id}`);
        }
        // The validator reports to the alert engine (an event rule), once a second at most.
        if (s.lastRaisedAt === null || at - s.lastRaisedAt >= 1_000) {
          s.lastRaisedAt = at;
          ctx.control?.alerts?.raise('telemetry-validation-failures', {
            value: s.invalid,
            summary: `${s.invalid} telemetry messages failed validation (${s.offenders.size} devices)`,
            ...(s.startedAt !== null ? { startedAt: s.startedAt } : {}),
          });
        }
        if (p.protections === 'on' && !s.quarantined.has(id)) {
          // The responder: quarantine each offender as it is named (credential kill switch).
          s.quarantined.add(id);
          ctx.background(ctx.control?.revoke([id], 'gameday: invalid telemetry') ?? Promise.resolve());
        }
      },
      extraSeries(ctx) {
        const s = stateOf(ctx);
        const n = s.invalidThisSecond;
        s.invalidThisSecond = 0;
        return { invalidMessages: n };
      },
      timeline: [
        {
          atS: corruptAt,
          kind: 'fault',
          label: `${cohortSize} devices start sending invalid telemetry`,
          run(ctx) {
            const s = stateOf(ctx);
            const all = ctx.fleet.ids();
            const cohort = all.slice(all.length - cohortSize);
            for (const id of cohort) s.cohort.add(id);
            s.startedAt = Date.now();
            ctx.fleet.setPayload(cohort, (id, seq) =>
              seq % 2 === 0 ? `{"id":"${id}","seq":${seq},"temp":NaN}` : `{"id":"${id}","seq":${seq},"te`,
            );
          },
        },
        {
          atS: p.durationS,
          kind: 'action',
          label: 'score the validator and the responder',
          run(ctx) {
            const s = stateOf(ctx);
            const falsely = [...s.offenders].filter((id) => !s.cohort.has(id)).length;
            const named = [...s.cohort].filter((id) => s.offenders.has(id)).length;
            ctx.measure('invalidMessages', s.invalid);
            ctx.measure('cohort', s.cohort.size);
            ctx.measure('cohortNamed', named);
            ctx.measure('healthyBlamed', falsely);
            ctx.measure('quarantined', s.quarantined.size);
            ctx.measure(
              'detectedAfterS',
              s.detectedAt !== null && s.startedAt !== null ? (s.detectedAt - s.startedAt) / 1000 : null,
            );
            // Contained: the last invalid message arrived this long after the corruption began.
            ctx.measure(
              'lastInvalidAfterS',
              s.lastInvalidAt !== null && s.startedAt !== null
                ? (s.lastInvalidAt - s.startedAt) / 1000
                : null,
            );
            ctx.measure(
              'invalidStillFlowing',
              s.lastInvalidAt !== null && Date.now() - s.lastInvalidAt < 1_500,
            );
          },
        },
      ],
      expectations: [
        {
          id: 'cohort-named',
          name: 'the validator names every device of the cohort and no healthy one',
          compare: '>=',
          evaluate: (r) => {
            const cohort = Number(r.measurements.cohort ?? 0);
            const named = Number(r.measurements.cohortNamed ?? 0);
            const blamed = Number(r.measurements.healthyBlamed ?? 0);
            return {
              value: cohort ? Math.round((named / cohort) * 1000) / 10 : null,
              threshold: 99,
              unit: '% named',
              pass: cohort > 0 && named / cohort >= 0.99 && blamed === 0,
              detail: `${named}/${cohort} named, ${blamed} healthy devices blamed`,
            };
          },
        },
        {
          id: 'invalid-contained',
          name: `invalid telemetry stops within ${containS} s of its start`,
          compare: '<=',
          evaluate: (r) => {
            const still = r.measurements.invalidStillFlowing === true;
            const v = (r.measurements.lastInvalidAfterS as number | null) ?? null;
            return {
              value: v,
              threshold: containS,
              unit: 's',
              pass: v !== null && v <= containS && !still,
              detail: still ? 'still flowing at the end of the run' : undefined,
            };
          },
        },
        noQos1Loss(),
      ],
    };
  },
};
