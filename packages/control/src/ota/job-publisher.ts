/**
 * Everything the engine publishes to devices: jobs, re-sends after a restart, withdrawals and
 * retained clears. The broker's publish() resolves after a storage flush, so publishes start
 * together a chunk at a time: one flush covers a chunk.
 */

import { haltPayload, jobPayload, otaTopic } from './device-protocol.js';
import type { EngineContext } from './engine-context.js';
import type { CampaignRecord, DeviceJobRecord } from './types.js';

/** Jobs notified together: one broker flush covers a chunk (publish resolves after fsync). */
const NOTIFY_CHUNK = 100;

export class JobPublisher {
  readonly #ctx: EngineContext;

  constructor(ctx: EngineContext) {
    this.#ctx = ctx;
  }

  /** Sends (or re-sends with a new job id) the jobs; stops early when a halt was requested. */
  async notify(c: CampaignRecord, jobs: readonly DeviceJobRecord[]): Promise<number> {
    const { fleet, storage, clock, logger } = this.#ctx;
    if (fleet === null || jobs.length === 0) return 0;
    let sent = 0;
    for (let i = 0; i < jobs.length; i += NOTIFY_CHUNK) {
      if (this.#stopped(c.id)) break;
      const chunk = jobs.slice(i, i + NOTIFY_CHUNK);
      const now = clock.now();
      const out = chunk.map((j) => ({ job: j, attempt: j.attempt + 1, jobId: `${c.id}.${j.attempt + 1}` }));
      // Stored first: a job that went out is always in storage, so a halt withdraws it.
      await storage.transaction(async (tx) => {
        for (const o of out) {
          await tx.campaigns.updateJob(
            c.id,
            o.job.deviceId,
            {
              state: 'notified',
              jobId: o.jobId,
              attempt: o.attempt,
              notifiedAt: now,
              lastReportAt: null,
              progress: null,
              errorCode: null,
              errorMessage: null,
            },
            now,
          );
        }
      });
      if (this.#stopped(c.id)) break;
      const results = await Promise.allSettled(
        out.map((o) =>
          fleet.publish({
            topic: otaTopic(o.job.deviceId),
            payload: jobPayload(c, o.jobId),
            qos: 1,
            retain: true,
          }),
        ),
      );
      for (const r of results) {
        if (r.status === 'fulfilled') sent++;
        // The job stays `notified`: it times out like a silent device.
        else logger?.error({ err: r.reason, campaignId: c.id }, 'ota job publish failed');
      }
    }
    return sent;
  }

  /**
   * After a restart: a job is stored as notified just before it is published, so the jobs stored
   * as notified go out again (same job id; devices ignore duplicates) in case the process stopped
   * in between.
   */
  async republishNotified(id: string): Promise<void> {
    const { fleet, storage } = this.#ctx;
    const c = await storage.campaigns.get(id);
    if (c?.state !== 'running' || fleet === null) return;
    const jobs = await storage.campaigns.allJobs(id, { states: ['notified'] });
    for (let i = 0; i < jobs.length; i += NOTIFY_CHUNK) {
      if (this.#stopped(id)) return;
      await Promise.allSettled(
        jobs
          .slice(i, i + NOTIFY_CHUNK)
          .filter((j) => j.jobId !== null)
          .map((j) =>
            fleet.publish({
              topic: otaTopic(j.deviceId),
              payload: jobPayload(c, j.jobId!),
              qos: 1,
              retain: true,
            }),
          ),
      );
    }
  }

  /** Clears the retained job and sends the SDK's cancel; returns how many devices both reached. */
  async withdraw(campaignId: string, jobs: readonly DeviceJobRecord[], reason: string): Promise<number> {
    const { fleet, logger } = this.#ctx;
    if (fleet === null) return 0;
    let reached = 0;
    for (let i = 0; i < jobs.length; i += NOTIFY_CHUNK) {
      const results = await Promise.allSettled(
        jobs.slice(i, i + NOTIFY_CHUNK).map(async (j) => {
          const topic = otaTopic(j.deviceId);
          await fleet.publish({ topic, payload: Buffer.alloc(0), qos: 1, retain: true });
          if (j.jobId !== null) {
            await fleet.publish({ topic, payload: haltPayload(j.jobId, campaignId, reason), qos: 1 });
          }
        }),
      );
      for (const r of results) {
        if (r.status === 'fulfilled') reached++;
        else logger?.error({ err: r.reason, campaignId }, 'ota withdraw publish failed');
      }
    }
    return reached;
  }

  /** Empty retained publishes: the device finished, or went silent and must not install it later unasked. */
  async clearRetained(jobs: readonly DeviceJobRecord[]): Promise<void> {
    const { fleet, logger } = this.#ctx;
    if (fleet === null) return;
    const results = await Promise.allSettled(
      jobs.map((j) =>
        fleet.publish({ topic: otaTopic(j.deviceId), payload: Buffer.alloc(0), qos: 1, retain: true }),
      ),
    );
    for (const r of results) {
      if (r.status === 'rejected') logger?.error({ err: r.reason }, 'ota retained clear failed');
    }
  }

  #stopped(campaignId: string): boolean {
    return this.#ctx.stopNotifying.has(campaignId) || this.#ctx.closed();
  }
}
