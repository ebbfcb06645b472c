/**
 * Rollback: a campaign back to each device's previous version, for the devices of a halted or
 * completed campaign that updated. One campaign per previous version (devices may have come from
 * different ones); its artifact is the one given for that version, else the newest earlier
 * campaign that shipped it. The rolled-back campaign ends (state `rolled-back`); the new ones
 * start at once unless `start: false`.
 */
import { ApiError } from '../errors.js';
import { auditCampaign, type CampaignActor, ENGINE_ACTOR } from './campaign-audit.js';
import { draftCampaign } from './drafts.js';
import { conflict, type EngineContext, requireCampaign } from './engine-context.js';
import type { Artifact, CampaignRecord, Gate, WaveSpec } from './types.js';

export interface RollbackOptions {
  artifacts?: Artifact[];
  waves?: WaveSpec[];
  gate?: Gate;
  start?: boolean;
}

export interface RollbackOutcome {
  campaigns: CampaignRecord[];
  /** Devices that updated but whose previous version is unknown (not rolled back). */
  skippedUnknownVersion: string[];
  /** A rollback campaign that could not start stays a draft; why is here. */
  warnings: string[];
}

/** `startCampaign`: the engine's start (queued behind the rollback itself). */
export async function rollbackCampaign(
  ctx: EngineContext,
  id: string,
  actor: CampaignActor,
  reason: string | null,
  options: RollbackOptions,
  startCampaign: (id: string) => Promise<CampaignRecord>,
): Promise<RollbackOutcome> {
  const created = await ctx.serial(async () => {
    const c = await requireCampaign(ctx, id);
    if (c.state !== 'halted' && c.state !== 'completed') {
      throw conflict(
        `campaign ${id} is ${c.state}; halt it before rolling back (or wait until it completes)`,
      );
    }
    const updated = await ctx.storage.campaigns.allJobs(id, { states: ['succeeded'] });
    const byVersion = new Map<string, string[]>();
    const skipped: string[] = [];
    for (const j of updated) {
      if (j.previousVersion === null || j.previousVersion === c.artifact.version) {
        skipped.push(j.deviceId);
        continue;
      }
      byVersion.set(j.previousVersion, [...(byVersion.get(j.previousVersion) ?? []), j.deviceId]);
    }
    const plans: Array<{ artifact: Artifact; ids: string[] }> = [];
    for (const [version, ids] of byVersion) {
      const artifact =
        options.artifacts?.find((a) => a.version === version) ?? (await artifactFor(ctx, version));
      if (!artifact) {
        throw new ApiError(
          'BW_ERR_API_VALIDATION',
          `no artifact known for version ${version} (${ids.length} device(s) came from it): pass it in artifacts`,
          { field: 'artifacts' },
        );
      }
      plans.push({ artifact, ids });
    }
    const now = ctx.clock.now();
    const campaigns: CampaignRecord[] = [];
    await ctx.storage.transaction(async (tx) => {
      const ok = await tx.campaigns.transition(id, ['halted', 'completed'], { state: 'rolled-back' }, now);
      if (!ok) throw conflict(`campaign ${id} changed state meanwhile`);
      for (const plan of plans) {
        const rb = draftCampaign(
          {
            name: `rollback of ${c.name} to ${plan.artifact.version}`,
            artifact: plan.artifact,
            selector: { ids: plan.ids },
            waves: options.waves ?? [{ percent: 100, minDevices: 0, soakMs: 0, gate: {} }],
            gate: options.gate ?? c.gate,
            rollbackOf: id,
          },
          actor.id,
          now,
        );
        await tx.campaigns.insert(rb);
        await auditCampaign(tx, ctx.clock, actor, 'campaign.create', rb.id, reason, {
          name: rb.name,
          version: rb.artifact.version,
          devices: plan.ids.length,
          rollbackOf: id,
        });
        campaigns.push(rb);
      }
      await auditCampaign(tx, ctx.clock, actor, 'campaign.rollback', id, reason, {
        rollbackCampaigns: campaigns.map((r) => r.id),
        devices: updated.length - skipped.length,
        skippedUnknownVersion: skipped.length,
      });
    });
    if (c.haltedBy === ENGINE_ACTOR.id) {
      ctx.events.gateHaltResolved({ campaignId: id, wave: (c.currentWave ?? 0) + 1, how: 'rolled back' });
    }
    return { campaigns, skipped };
  });
  const out: CampaignRecord[] = [];
  const warnings: string[] = [];
  for (const rb of created.campaigns) {
    if (options.start === false) {
      out.push(rb);
      continue;
    }
    try {
      out.push(await startCampaign(rb.id));
    } catch (err) {
      // The rollback itself is done (stored, audited): report the start failure, do not undo it.
      if (!(err instanceof ApiError)) throw err;
      warnings.push(`${rb.id} was created but not started: ${err.message}`);
      out.push(rb);
    }
  }
  return { campaigns: out, skippedUnknownVersion: created.skipped, warnings };
}

/** The newest campaign's artifact of that version (campaigns list newest first). */
async function artifactFor(ctx: EngineContext, version: string): Promise<Artifact | null> {
  let cursor: string | null = null;
  do {
    const page = await ctx.storage.campaigns.list({}, 200, cursor);
    const hit = page.items.find((c) => c.artifact.version === version);
    if (hit) return hit.artifact;
    cursor = page.nextCursor;
  } while (cursor !== null);
  return null;
}
