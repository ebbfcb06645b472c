/**
 * Halting a running campaign, by an operator (route or kill switch) or by a failing gate. Runs
 * inside the serial queue. An operator's halt marks the campaign in `stopNotifying` before it
 * waits for its turn (campaign-actions.ts), which is what stops notifications at once; a gate
 * halt already runs in its turn and is marked here.
 */
import { auditCampaign, type CampaignActor, ENGINE_ACTOR } from './campaign-audit.js';
import { conflict, type EngineContext } from './engine-context.js';
import type { JobPublisher } from './job-publisher.js';
import { type CampaignRecord, type CampaignState, WAITING_JOB_STATES, WORKING_JOB_STATES } from './types.js';

export interface HaltOutcome {
  campaignId: string;
  name: string;
  previousState: CampaignState;
  state: CampaignState;
  /** Jobs withdrawn before the device started them (notified or queued). */
  cancelledNotifications: number;
  /** Devices downloading or installing that were told to stop. */
  toldToStop: number;
  /** Devices whose withdrawal the broker accepted (retained clear + cancel). */
  devicesReached: number;
}

/**
 * running → halted: jobs not started are cancelled in storage (with the audit entry, one
 * transaction), then withdrawn from the devices; devices working on it are told to stop.
 * `haltedBy` is the actor id, `ENGINE_ACTOR.id` for a gate.
 */
export async function haltRunning(
  ctx: EngineContext,
  publisher: JobPublisher,
  c: CampaignRecord,
  actor: CampaignActor,
  haltReason: string,
  haltedBy: string,
  auditReason: string | null,
): Promise<HaltOutcome> {
  ctx.stopNotifying.add(c.id);
  const now = ctx.clock.now();
  const waiting = await ctx.storage.campaigns.allJobs(c.id, { states: WAITING_JOB_STATES });
  const working = await ctx.storage.campaigns.allJobs(c.id, { states: WORKING_JOB_STATES });
  await ctx.storage.transaction(async (tx) => {
    const ok = await tx.campaigns.transition(
      c.id,
      ['running'],
      { state: 'halted', haltReason, haltedBy, haltedAt: now },
      now,
    );
    if (!ok) throw conflict(`campaign ${c.id} is no longer running`);
    for (const j of waiting) {
      await tx.campaigns.updateJob(
        c.id,
        j.deviceId,
        { state: 'cancelled', errorCode: 'halted', errorMessage: haltReason },
        now,
      );
    }
    await auditCampaign(tx, ctx.clock, actor, 'campaign.halt', c.id, auditReason, {
      wave: (c.currentWave ?? 0) + 1,
      automatic: haltedBy === ENGINE_ACTOR.id,
      haltReason,
      cancelledNotifications: waiting.length,
      toldToStop: working.length,
    });
  });
  const reached = await publisher.withdraw(c.id, [...waiting, ...working], haltReason);
  ctx.logger?.warn(
    { campaignId: c.id, reason: haltReason, cancelled: waiting.length, toldToStop: working.length },
    'ota campaign halted',
  );
  return {
    campaignId: c.id,
    name: c.name,
    previousState: c.state,
    state: 'halted',
    cancelledNotifications: waiting.length,
    toldToStop: working.length,
    devicesReached: reached,
  };
}
