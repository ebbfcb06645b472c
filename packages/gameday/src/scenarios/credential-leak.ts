/**
 * Credential leak (incident type "security"): the credentials of a set of devices leaked and must
 * be revoked mid-run — through the control plane when it runs in this process (its revocation
 * API, the operator's path), else the guard's denylist directly. Live sessions of the revoked
 * devices must end within a second, their reconnects must be refused, their retries must stop
 * (the SDK's auth breaker), and nobody else may notice.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { admissionFor, anonymousGuard, atFraction, noQos1Loss, policyFor, telemetryFor } from './common.js';
import type { RunContext, ScenarioDefinition } from './types.js';

const KICK_DEADLINE_MS = 1_000;

function revokedIds(ctx: RunContext): Set<string> {
  return (ctx.state.get('revoked') as Set<string> | undefined) ?? new Set();
}

export const credentialLeak: ScenarioDefinition = {
  name: 'credential-leak',
  title: 'Credential leak: a set of devices revoked mid-run',
  incident: 'security',
  summary:
    'The credentials of 2 % of the fleet leaked. They are revoked mid-run with one call. Their live sessions must end within a second, their reconnects must be refused (and their retries stop), and the rest of the fleet must not notice.',
  weakened:
    'revocation without a denylist: the live sessions are ended but nothing refuses the reconnect (a broker without authentication can do no more); naive retries',
  defaults: { devices: 10_000, durationS: 240 },
  requiresInProcess: true,
  build(p) {
    const revokeAt = atFraction(p, 0.3);
    const count = Math.max(5, Math.round(p.devices * 0.02));
    return {
      broker: { guard: anonymousGuard(), admission: admissionFor(p), postgres: false },
      fleet: {
        policy: policyFor(p),
        timeScale: p.timeScale,
        telemetry: telemetryFor(p),
      },
      viaProxy: false,
      controlPlane: true,
      expectedConnected: () => p.devices - count,
      timeline: [
        {
          atS: revokeAt,
          kind: 'fault',
          label: `credentials of ${count} devices leaked: revoked`,
          async run(ctx) {
            const all = ctx.fleet.ids();
            // Every 50th device (deterministic, spread over the id range).
            const step = Math.max(1, Math.floor(all.length / count));
            const ids = all.filter((_, i) => i % step === 0).slice(0, count);
            const revoked = new Set(ids);
            ctx.state.set('revoked', revoked);
            let reconnected = 0;
            ctx.fleet.on('connected', (id: string) => {
              if (revoked.has(id)) reconnected++;
            });
            ctx.state.set('reconnected', () => reconnected);
            const broker = ctx.env.inProcess?.broker;
            const started = performance.now();
            if (p.protections === 'on') {
              await ctx.control?.revoke(ids, 'gameday: leaked credentials');
            } else {
              ctx.control?.kick(ids, 'gameday: leaked credentials');
            }
            ctx.measure('revokedVia', p.protections === 'on' ? (ctx.control?.kind ?? null) : 'kick only');
            ctx.measure('revoked', ids.length);
            // How long until no revoked device holds a session (polled every 10 ms).
            ctx.background(
              (async () => {
                const deadline = started + 10_000;
                while (performance.now() < deadline) {
                  const live = broker?.connectedClientIds().filter((id) => revoked.has(id)).length ?? 0;
                  if (live === 0) {
                    ctx.measure('sessionsEndedMs', Math.round(performance.now() - started));
                    return;
                  }
                  await sleep(10);
                }
                ctx.measure('sessionsEndedMs', null);
              })(),
            );
          },
        },
        {
          atS: p.durationS,
          kind: 'action',
          label: 'count revoked devices connected',
          run(ctx) {
            const reconnected = ctx.state.get('reconnected') as (() => number) | undefined;
            ctx.measure('revokedReconnects', reconnected ? reconnected() : null);
            const revoked = revokedIds(ctx);
            const live = ctx.env.inProcess?.broker.connectedClientIds().filter((id) => revoked.has(id));
            ctx.measure('revokedConnectedAtEnd', live?.length ?? null);
          },
        },
      ],
      expectations: [
        {
          id: 'sessions-ended',
          name: `live sessions of the revoked devices ended within ${KICK_DEADLINE_MS} ms`,
          compare: '<=',
          evaluate: (r) => ({
            value: (r.measurements.sessionsEndedMs as number | null) ?? null,
            threshold: KICK_DEADLINE_MS,
            unit: 'ms',
          }),
        },
        {
          id: 'revoked-stay-out',
          name: 'revoked devices never get back in',
          compare: '<=',
          evaluate: (r) => ({
            value: (r.measurements.revokedReconnects as number | null) ?? null,
            threshold: 0,
            unit: 'reconnects',
          }),
        },
        {
          id: 'revoked-retries-stop',
          name: 'revoked devices stop retrying (at most 5 refused attempts each)',
          compare: '<=',
          evaluate: (r) => {
            const from = r.faultAtS ?? 0;
            let refused = 0;
            for (const s of r.seconds) {
              if (s.t <= from) continue;
              for (const [k, v] of Object.entries(s.refusals)) {
                if (/banned|not-authorized|bad-username|0x8a|0x87|0x86|0x05|0x04/i.test(k)) refused += v;
              }
            }
            const n = Number(r.measurements.revoked ?? 0);
            return { value: n ? refused / n : null, threshold: 5, unit: 'refusals/device' };
          },
        },
        {
          id: 'others-unaffected',
          name: 'the rest of the fleet stays connected (99 %)',
          compare: '>=',
          evaluate: (r) => {
            const from = r.faultAtS ?? 0;
            const after = r.seconds.filter((s) => s.t > from + 1);
            const min = after.length ? Math.min(...after.map((s) => s.connected)) : null;
            const n = Number(r.measurements.revoked ?? 0);
            const others = r.params.devices - n;
            return {
              value: min === null ? null : Math.round((Math.min(min, others) / others) * 1000) / 10,
              threshold: 99,
              unit: '%',
            };
          },
        },
        noQos1Loss(),
      ],
    };
  },
};
