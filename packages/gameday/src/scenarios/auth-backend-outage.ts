/**
 * The Postgres credential incident (DESIGN.md §1, "Auth backend storm"): the broker's credential
 * for its Postgres auth backend is rotated wrong while the whole fleet reconnects (a broker
 * deploy drops every connection); later the credential is fixed.
 *
 * Protected: the guard's defaults (decision cache, stale-if-error for known-good devices, 45
 * queries/s + burst 5, bulkhead, breaker), admission on, the SDK's fleet reconnect policy. The
 * fleet is seeded as known-good two hours before the run (past the 1 h positive TTL, inside the
 * 24 h stale-if-error window), so reconnects must go through the backend gate, not a fresh cache.
 * Weakened: no cache of any kind, no query cap, no breaker, no admission, naive 1 s retries —
 * every attempt is a query against a backend that fails them all.
 */

import { timeToConnected } from '../report/scores.js';
import { admissionFor, atFraction, LISTENER, noQos1Loss, policyFor, scaled, telemetryFor } from './common.js';
import { devicePassword, postgresAuthenticatorConfig } from './postgres-backend.js';
import type { ScenarioDefinition, ScenarioParams } from './types.js';

/** What the guard's defaults promise: no second above ratePerSec + burst = 45 + 5. */
export const BACKEND_QUERY_CAP_PER_SEC = 50;
const AUTHENTICATOR = 'pg';

function guardConfig(p: ScenarioParams): Record<string, unknown> {
  if (p.protections === 'on') {
    return {
      authenticators: { postgres: { [AUTHENTICATOR]: postgresAuthenticatorConfig() } },
      listeners: { [LISTENER]: { authn: [AUTHENTICATOR] } },
    };
  }
  return {
    authenticators: {
      postgres: {
        [AUTHENTICATOR]: postgresAuthenticatorConfig({
          ratePerSec: 1_000_000,
          burst: 1_000_000,
          maxInFlight: 10_000,
          breaker: { minRequests: 1_000_000_000, errorRatio: 1 },
        }),
      },
    },
    listeners: {
      [LISTENER]: {
        authn: [AUTHENTICATOR],
        cache: { positiveTtlSec: 0, staleIfErrorSec: 0, negativeTtlSec: 0, persist: false },
      },
    },
  };
}

export const authBackendOutage: ScenarioDefinition = {
  name: 'auth-backend-outage',
  title: 'Auth backend outage: the Postgres credential rotated wrong',
  incident: 'auth-backend-storm',
  summary:
    "The broker's credential for its PostgreSQL auth backend is rotated wrong at the moment every device reconnects (a broker deploy drops all connections); later the credential is fixed. Breakwater must keep the backend under its query cap whatever the retry rate, let known-good devices back in from the stale-if-error cache while the backend fails, and let everyone in once it is fixed.",
  weakened:
    'no auth cache (positive, negative, stale-if-error), no backend query cap or breaker, no admission control, devices retry on a fixed 1 s period (naive)',
  defaults: { devices: 10_000, durationS: 300 },
  requiresInProcess: true,
  build(p) {
    const breakAt = atFraction(p, 0.25);
    const fixAt = atFraction(p, 0.65);
    // Floor 8 s: the broker and PostgreSQL answer in real time whatever the scale, and a loaded
    // test machine slows a reconnect wave of a few hundred devices to several seconds.
    const knownGoodWindowS = scaled(p, 60, 8);
    const recoverWindowS = scaled(p, 120, 4);
    return {
      broker: {
        guard: guardConfig(p),
        admission: admissionFor(p),
        postgres: true,
        ...(p.protections === 'on' ? { seedKnownGoodAgeMs: 2 * 3600_000 } : {}),
      },
      fleet: {
        policy: policyFor(p),
        timeScale: p.timeScale,
        credentials: (id) => ({ username: id, password: devicePassword(id) }),
        telemetry: telemetryFor(p),
      },
      viaProxy: false,
      controlPlane: false,
      timeline: [
        {
          atS: breakAt,
          kind: 'fault',
          label: 'credential rotated wrong (REVOKE SELECT) and every device connection dropped (deploy)',
          async run(ctx) {
            await ctx.postgres?.breakCredential();
            const broker = ctx.env.inProcess?.broker;
            let dropped = 0;
            for (const id of ctx.fleet.ids()) {
              // 0x8B Server shutting down: what a rolling deploy sends.
              if (broker?.disconnectClient(id, 0x8b, 'gameday: broker deploy')) dropped++;
            }
            ctx.measure('droppedAtFault', dropped);
          },
        },
        {
          atS: fixAt,
          kind: 'repair',
          label: 'credential fixed (GRANT SELECT)',
          async run(ctx) {
            await ctx.postgres?.fixCredential();
          },
        },
      ],
      expectations: [
        {
          id: 'backend-query-cap',
          name: `auth backend queries/s stay under the cap (${BACKEND_QUERY_CAP_PER_SEC}/s)`,
          compare: '<=',
          evaluate: (r) => ({
            value: r.scores.peakBackendQueriesPerSec,
            threshold: BACKEND_QUERY_CAP_PER_SEC,
            unit: 'queries/s',
          }),
        },
        {
          id: 'known-good-back-while-broken',
          name: `99 % of the fleet back within ${knownGoodWindowS} s of the drop, while the backend is still broken (stale-if-error)`,
          compare: '<=',
          evaluate: (r) => {
            const v = r.faultAtS === null ? null : timeToConnected(r.seconds, r.faultAtS, r.params.devices);
            const brokenFor = (r.repairAtS ?? Number.POSITIVE_INFINITY) - (r.faultAtS ?? 0);
            return {
              value: v,
              threshold: knownGoodWindowS,
              unit: 's',
              pass: v !== null && v <= knownGoodWindowS && v < brokenFor,
              detail:
                v === null
                  ? 'never back'
                  : v >= brokenFor
                    ? `only after the repair (${v} s after the drop)`
                    : undefined,
            };
          },
        },
        {
          id: 'reconnected-after-repair',
          name: `99 % of the fleet connected within ${recoverWindowS} s after the repair`,
          compare: '<=',
          evaluate: (r) => ({
            value: r.repairAtS === null ? null : timeToConnected(r.seconds, r.repairAtS, r.params.devices),
            threshold: recoverWindowS,
            unit: 's',
          }),
        },
        noQos1Loss(),
      ],
    };
  },
};
