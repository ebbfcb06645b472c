/**
 * What an operator does to a campaign: create a draft, start it, halt it (one, or every running
 * one: the OTA kill switch), resume it. Rollback has its own module (rollback.ts). Each action
 * runs in the serial queue and writes its audit entry in the transaction of its change.
 */
import { requireTargeted } from '../selector.js';
import { assignWaves } from './assignment.js';
import { auditCampaign, type CampaignActor, ENGINE_ACTOR } from './campaign-audit.js';
import { draftCampaign, type NewCampaign, validateWaves } from './drafts.js';
import { conflict, type EngineContext, requireCampaign, requireFleet } from './engine-context.js';
import { type HaltOutcome, haltRunning } from './halt.js';
import type { JobPublisher } from './job-publisher.js';
import { ACTIVE_JOB_STATES, type CampaignRecord, type DeviceJobRecord } from './types.js';
import type { WaveScheduler } from './wave-scheduler.js';

export interface ResumeOutcome {
  campaignId: string;
  wave: number;
  /** Jobs sent again (with a new job id) or for the first time. */
  notified: number;
}

export class CampaignActions {
  readonly #ctx: EngineContext;
  readonly #publisher: JobPublisher;
  readonly #scheduler: WaveScheduler;

  constructor(ctx: EngineContext, publisher: JobPublisher, scheduler: WaveScheduler) {
    this.#ctx = ctx;
    this.#publisher = publisher;
    this.#scheduler = scheduler;
  }

  async create(input: NewCampaign, actor: CampaignActor, reason: string | null): Promise<CampaignRecord> {
    requireTargeted(input.selector);
    validateWaves(input.waves);
    const { storage, clock } = this.#ctx;
    const campaign = draftCampaign(input, actor.id, clock.now());
    await storage.transaction(async (tx) => {
      await tx.campaigns.insert(campaign);
      await auditCampaign(tx, clock, actor, 'campaign.create', campaign.id, reason, {
        name: campaign.name,
        version: campaign.artifact.version,
        selector: campaign.selector,
        waves: campaign.waves.map((w) => w.percent),
        rollbackOf: campaign.rollbackOf,
      });
    });
    return campaign;
  }

  /** draft → running: resolves the selector, assigns waves, notifies wave 1. */
  start(id: string, actor: CampaignActor, reason: string | null): Promise<CampaignRecord> {
    const { storage, clock } = this.#ctx;
    return this.#ctx.serial(async () => {
      const c = await requireCampaign(this.#ctx, id);
      if (c.state !== 'draft') throw conflict(`campaign ${id} is ${c.state}; only a draft can be started`);
      requireFleet(this.#ctx);
      const ids = await storage.devices.resolve(c.selector);
      if (ids.length === 0) throw conflict(`the selector of campaign ${id} matches no registered device`);
      const busy = new Set(await storage.campaigns.busyDevices(id));
      const clash = ids.filter((d) => busy.has(d));
      if (clash.length > 0) {
        throw conflict(
          `${clash.length} target device(s) are in another running or halted campaign (first: ${clash[0]}); halt or finish it first`,
        );
      }
      const assignment = assignWaves(c.id, ids, c.waves);
      const now = clock.now();
      const versions = new Map<string, string | null>();
      for (const d of ids) versions.set(d, null);
      // Previous versions, for rollback: what the registry says now.
      for (let i = 0; i < ids.length; i += 500) {
        const page = await storage.devices.list({ ids: ids.slice(i, i + 500) }, 500, null);
        for (const dev of page.items) versions.set(dev.id, dev.firmwareVersion);
      }
      await storage.transaction(async (tx) => {
        const ok = await tx.campaigns.transition(
          id,
          ['draft'],
          {
            state: 'running',
            currentWave: 0,
            waveStartedAt: now,
            startedAt: now,
            targetCount: assignment.length,
          },
          now,
        );
        if (!ok) throw conflict(`campaign ${id} is no longer a draft`);
        await tx.campaigns.insertJobs(
          assignment.map(
            (a): DeviceJobRecord => ({
              campaignId: id,
              deviceId: a.deviceId,
              wave: a.wave,
              rank: a.rank,
              state: 'pending',
              jobId: null,
              attempt: 0,
              previousVersion: versions.get(a.deviceId) ?? null,
              notifiedAt: null,
              lastReportAt: null,
              progress: null,
              errorCode: null,
              errorMessage: null,
              updatedAt: now,
            }),
          ),
        );
        await auditCampaign(tx, clock, actor, 'campaign.start', id, reason, {
          targetDevices: assignment.length,
          matchedDevices: ids.length,
        });
      });
      this.#ctx.stopNotifying.delete(id);
      this.#scheduler.requestEvaluate(id);
      return (await storage.campaigns.get(id))!;
    });
  }

  /**
   * The OTA kill switch for one campaign: no device is notified after this resolves, jobs not
   * yet started are withdrawn, devices working on it are told to stop.
   */
  halt(id: string, actor: CampaignActor, reason: string | null): Promise<HaltOutcome> {
    this.#ctx.stopNotifying.add(id);
    return this.#ctx.serial(async () => {
      const c = await requireCampaign(this.#ctx, id);
      if (c.state !== 'running')
        throw conflict(`campaign ${id} is ${c.state}; only a running campaign can be halted`);
      return this.#haltNow(c, actor, reason ?? 'halted by operator', reason);
    });
  }

  /** `POST /killswitch/ota-halt`: one campaign, or every running one. */
  async haltAll(actor: CampaignActor, reason: string): Promise<HaltOutcome[]> {
    const { storage } = this.#ctx;
    // Marked before waiting for the queue: notifications stop at the next chunk.
    for (const id of await storage.campaigns.idsInState('running')) this.#ctx.stopNotifying.add(id);
    return this.#ctx.serial(async () => {
      const out: HaltOutcome[] = [];
      for (const id of await storage.campaigns.idsInState('running')) {
        const c = await storage.campaigns.get(id);
        if (c?.state !== 'running') continue; // finished or halted by its gate meanwhile
        out.push(await this.#haltNow(c, actor, reason, reason));
      }
      return out;
    });
  }

  /** halted → running: continues the wave it stopped in; unfinished jobs are sent again. */
  resume(id: string, actor: CampaignActor, reason: string | null): Promise<ResumeOutcome> {
    const { storage, clock } = this.#ctx;
    return this.#ctx.serial(async () => {
      const c = await requireCampaign(this.#ctx, id);
      if (c.state !== 'halted')
        throw conflict(`campaign ${id} is ${c.state}; only a halted campaign can be resumed`);
      requireFleet(this.#ctx);
      const busy = new Set(await storage.campaigns.busyDevices(id));
      const mine = await storage.campaigns.allJobs(id, {
        states: ['pending', 'cancelled', ...ACTIVE_JOB_STATES],
      });
      const clash = mine.find((j) => busy.has(j.deviceId));
      if (clash)
        throw conflict(`device ${clash.deviceId} is in another running campaign; halt or finish it first`);
      const now = clock.now();
      const wave = c.currentWave ?? 0;
      // Resuming after an automatic halt is the operator overriding that wave's gate.
      const override = c.haltedBy === ENGINE_ACTOR.id ? wave : c.gateOverrideWave;
      await storage.transaction(async (tx) => {
        const ok = await tx.campaigns.transition(
          id,
          ['halted'],
          {
            state: 'running',
            haltReason: null,
            haltedBy: null,
            haltedAt: null,
            gateOverrideWave: override,
            waveSettledAt: null,
          },
          now,
        );
        if (!ok) throw conflict(`campaign ${id} is no longer halted`);
        await auditCampaign(tx, clock, actor, 'campaign.resume', id, reason, {
          wave: wave + 1,
          previousHaltReason: c.haltReason,
          gateOverridden: override === wave && c.haltedBy === ENGINE_ACTOR.id,
        });
      });
      this.#ctx.stopNotifying.delete(id);
      if (c.haltedBy === ENGINE_ACTOR.id) {
        this.#ctx.events.gateHaltResolved({ campaignId: id, wave: wave + 1, how: 'resumed' });
      }
      const resumed = (await storage.campaigns.get(id))!;
      const unfinished = await storage.campaigns.allJobs(id, {
        maxWave: wave,
        states: ['pending', 'cancelled', ...ACTIVE_JOB_STATES],
      });
      const notified = await this.#publisher.notify(resumed, unfinished);
      this.#scheduler.requestEvaluate(id);
      return { campaignId: id, wave, notified };
    });
  }

  /** Runs inside the serial queue. */
  #haltNow(
    c: CampaignRecord,
    actor: CampaignActor,
    haltReason: string,
    auditReason: string | null,
  ): Promise<HaltOutcome> {
    this.#scheduler.cancel(c.id);
    return haltRunning(this.#ctx, this.#publisher, c, actor, haltReason, actor.id, auditReason);
  }
}
