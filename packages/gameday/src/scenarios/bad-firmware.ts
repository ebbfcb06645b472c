/**
 * Bad firmware push (incident type "bad firmware push"): an OTA campaign ships firmware 2.0.0,
 * which crash-loops every device that installs it (up a few seconds, down, again; the bootloader
 * rolls back after 3 crashes and the device reports `failed` / `rolled-back`). The campaign runs in
 * waves (1 % → 10 % → 50 % → 100 %) behind health gates: its first wave's failures must halt it by
 * itself, so the blast radius stays at the first wave.
 *
 * Needs the control plane's OTA campaigns (packages/control, campaign engine + /api/v1/campaigns).
 * Without it the campaign cannot run and every campaign expectation fails with "not available".
 */
import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { timeToConnected } from '../report/scores.js';
import { admissionFor, anonymousGuard, atFraction, policyFor, scaled, telemetryFor } from './common.js';
import type { ScenarioDefinition } from './types.js';

const GOOD = '1.0.0';
const BAD = '2.0.0';

export const badFirmware: ScenarioDefinition = {
  name: 'bad-firmware',
  title: 'Bad firmware: a campaign whose firmware crash-loops devices',
  incident: 'bad-firmware-push',
  summary:
    'An OTA campaign ships firmware that crash-loops every device that installs it (the bootloader rolls back after 3 crashes and the device reports the failure). The campaign runs in waves behind health gates (1 % → 10 % → 50 % → 100 %): the failures of its first wave must halt it by itself, keeping the blast radius to that wave, and the fleet must come back on the old firmware.',
  weakened: 'the campaign runs without health gates (failure and offline ratios allowed up to 100 %)',
  defaults: { devices: 10_000, durationS: 600 },
  requiresInProcess: true,
  build(p) {
    const startAt = atFraction(p, 0.1);
    const haltWithinS = scaled(p, 300, 5);
    const firstWaves = Math.max(5, Math.ceil(p.devices * 0.01));
    const blastLimit = Math.max(firstWaves, Math.ceil(p.devices * 0.1));
    const gate =
      p.protections === 'on'
        ? {
            maxFailureRatio: 0.2,
            maxOfflineRatio: 0.5,
            reportTimeoutMs: Math.round(scaled(p, 600, 5) * 1000),
          }
        : { maxFailureRatio: 1, maxOfflineRatio: 1, reportTimeoutMs: Math.round(scaled(p, 600, 5) * 1000) };
    const soakMs = Math.round(scaled(p, 60, 1) * 1000);
    return {
      broker: { guard: anonymousGuard(), admission: admissionFor(p), postgres: false },
      fleet: {
        policy: policyFor(p),
        timeScale: p.timeScale,
        telemetry: telemetryFor(p),
        subscribeFleetTopics: true,
        firmware: GOOD,
        ota: { download: 'simulate' },
        crashLoop: {
          versions: [BAD],
          // Full-scale times: the fleet scales crash-loop delays itself.
          upMs: [5_000, 20_000],
          downMs: [2_000, 6_000],
          rollbackAfter: 3,
        },
      },
      viaProxy: false,
      controlPlane: true,
      timeline: [
        {
          atS: startAt,
          kind: 'fault',
          label: `OTA campaign ${BAD} starts (waves 1 % → 10 % → 50 % → 100 %); the firmware crash-loops`,
          async run(ctx) {
            const ota = ctx.control?.ota;
            if (!ota) {
              ctx.measure('campaign', 'not available: control plane OTA campaigns missing');
              return;
            }
            const badDevices = new Set<string>();
            ctx.fleet.on('ota', (id: string, status: string, _job: string, version: string) => {
              if (version === BAD && (status === 'installing' || status === 'succeeded')) badDevices.add(id);
            });
            ctx.state.set('badDevices', badDevices);
            await ota.registerDevices(ctx.fleet.ids(), GOOD);
            const started = Date.now();
            const id = await ota.startCampaign({
              name: `gameday bad firmware ${BAD}`,
              artifact: {
                url: `https://firmware.invalid/breakwater-sim-${BAD}.bin`,
                version: BAD,
                sha256: createHash('sha256').update(BAD).digest('hex'),
                size: 1024,
              },
              selector: { all: true },
              waves: [
                { percent: 1, minDevices: firstWaves, soakMs },
                { percent: 10, minDevices: firstWaves, soakMs },
                { percent: 50, minDevices: firstWaves, soakMs },
                { percent: 100, minDevices: firstWaves, soakMs },
              ],
              gate,
              reason: 'gameday bad-firmware',
            });
            ctx.measure('campaign', id);
            // Watch the campaign until it halts or the run ends.
            ctx.background(
              (async () => {
                const end = ctx.t0 + p.durationS * 1000;
                while (Date.now() < end) {
                  const c = await ota.campaign(id);
                  if (c.state !== 'running' && c.state !== 'draft') {
                    ctx.measure('campaignState', c.state);
                    ctx.measure('haltedBy', c.haltedBy);
                    ctx.measure('haltReason', c.haltReason);
                    ctx.measure('haltedAfterS', Math.round((Date.now() - started) / 100) / 10);
                    ctx.measure('haltedAtS', Math.round(ctx.now() * 10) / 10);
                    ctx.note(`campaign ${c.state}${c.haltReason ? `: ${c.haltReason}` : ''}`);
                    return;
                  }
                  ctx.measure('campaignState', c.state);
                  ctx.measure('campaignWave', c.currentWave);
                  await sleep(200);
                }
              })(),
            );
          },
        },
        {
          atS: p.durationS,
          kind: 'action',
          label: 'count devices that ran the bad firmware',
          run(ctx) {
            const bad = ctx.state.get('badDevices') as Set<string> | undefined;
            ctx.measure('devicesOnBadFirmware', bad ? bad.size : null);
          },
        },
      ],
      expectations: [
        {
          id: 'auto-halt',
          name: `the campaign halts by itself (health gate) within ${haltWithinS} s`,
          compare: '<=',
          evaluate: (r) => {
            const by = r.measurements.haltedBy;
            const v = (r.measurements.haltedAfterS as number | undefined) ?? null;
            return {
              value: v,
              threshold: haltWithinS,
              unit: 's',
              // The engine records an automatic halt as by `system` (or `gate`); anything else is a person.
              pass: v !== null && v <= haltWithinS && (by === 'gate' || by === 'system'),
              detail:
                typeof r.measurements.campaign === 'string' &&
                r.measurements.campaign.startsWith('not available')
                  ? r.measurements.campaign
                  : `state ${String(r.measurements.campaignState ?? 'unknown')}, halted by ${String(by ?? '-')}${r.measurements.haltReason ? ` (${String(r.measurements.haltReason)})` : ''}`,
            };
          },
        },
        {
          id: 'blast-radius',
          name: `at most ${blastLimit} devices (10 %) ever run the bad firmware`,
          compare: '<=',
          evaluate: (r) => ({
            value: (r.measurements.devicesOnBadFirmware as number | null | undefined) ?? null,
            threshold: blastLimit,
            unit: 'devices',
          }),
        },
        {
          id: 'fleet-recovers',
          name: `99 % of the fleet connected on working firmware at the end`,
          compare: '>=',
          evaluate: (r) => {
            const last = r.seconds.at(-1);
            const t = timeToConnected(r.seconds, r.faultAtS ?? 0, r.params.devices);
            return {
              value: last ? Math.round((last.connected / r.params.devices) * 1000) / 10 : null,
              threshold: 99,
              unit: '%',
              detail: t === null ? 'not at 99 % after the campaign start' : undefined,
            };
          },
        },
      ],
    };
  },
};
