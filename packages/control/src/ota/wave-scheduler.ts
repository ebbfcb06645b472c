/**
 * The wave scheduler: one evaluation step of a running campaign at a time, in the serial queue —
 * time out silent devices, notify what is due, check the current wave's health gate (gates.ts),
 * wait out the soak, then advance to the next wave or complete. A step that has to wait sets one
 * timer per campaign for the earliest moment something can change (a report deadline or the end
 * of the soak); a device report asks for a step at once.
 */
import type { TimerHandle } from '@breakwater/broker';
import { auditCampaign, ENGINE_ACTOR } from './campaign-audit.js';
import type { EngineContext } from './engine-context.js';
import { countsToHealth, effectiveGate, failureGate, soakGate } from './gates.js';
import { haltRunning } from './halt.js';
import type { JobPublisher } from './job-publisher.js';
import { ACTIVE_JOB_STATES, type CampaignRecord, type DeviceJobRecord, type JobState } from './types.js';

export class WaveScheduler {
  readonly #ctx: EngineContext;
  readonly #publisher: JobPublisher;
  /** Campaigns with a step already queued: a burst of reports costs one step, not one each. */
  readonly #evaluateQueued = new Set<string>();
  readonly #timers = new Map<string, { at: number; handle: TimerHandle }>();

  constructor(ctx: EngineContext, publisher: JobPublisher) {
    this.#ctx = ctx;
    this.#publisher = publisher;
  }

  /** Queues one step of campaign `id` (unless one is queued already). */
  requestEvaluate(id: string): void {
    if (this.#ctx.closed() || this.#evaluateQueued.has(id)) return;
    this.#evaluateQueued.add(id);
    this.#ctx
      .serial(async () => {
        this.#evaluateQueued.delete(id);
        await this.#evaluate(id);
      })
      .catch(() => {}); // logged by the serial queue
  }

  /** Drops the campaign's timer (it was halted). */
  cancel(id: string): void {
    const t = this.#timers.get(id);
    if (t) this.#ctx.clock.clearTimeout(t.handle);
    this.#timers.delete(id);
  }

  /** Drops every timer (the engine closes). */
  cancelAll(): void {
    for (const t of this.#timers.values()) this.#ctx.clock.clearTimeout(t.handle);
    this.#timers.clear();
  }

  #wakeAt(id: string, at: number): void {
    const { clock } = this.#ctx;
    if (this.#ctx.closed()) return;
    const existing = this.#timers.get(id);
    if (existing && existing.at <= at) return;
    if (existing) clock.clearTimeout(existing.handle);
    const handle = clock.setTimeout(
      () => {
        this.#timers.delete(id);
        this.requestEvaluate(id);
      },
      Math.max(0, at - clock.now()),
    );
    this.#timers.set(id, { at, handle });
  }

  /** One step of a running campaign (serial): timeouts, notifications, gate, soak, advance. */
  async #evaluate(id: string): Promise<void> {
    const { storage, clock, stopNotifying } = this.#ctx;
    const repo = storage.campaigns;
    for (;;) {
      const c = await repo.get(id);
      if (c?.state !== 'running' || c.currentWave === null || stopNotifying.has(id)) return;
      const k = c.currentWave;
      const wave = c.waves[k]!;
      const gate = effectiveGate(c.gate, wave.gate);
      const now = clock.now();

      // Silent devices: notified, then no report within the timeout of their wave's gate. The
      // oldest activity (one aggregate query) says whether any can be due: the per-job scan runs
      // only then, so a report does not cost a read of the whole wave.
      const minTimeout = Math.min(
        ...c.waves.slice(0, k + 1).map((w) => effectiveGate(c.gate, w.gate).reportTimeoutMs),
      );
      const oldest = await repo.oldestActivity(id, k);
      const mayBeDue = oldest !== null && oldest + minTimeout <= now;
      const active = mayBeDue ? await repo.allJobs(id, { maxWave: k, states: ACTIVE_JOB_STATES }) : [];
      const silent: DeviceJobRecord[] = [];
      let nextWake = oldest === null || mayBeDue ? Number.POSITIVE_INFINITY : oldest + minTimeout;
      for (const j of active) {
        if (j.notifiedAt === null) continue;
        const timeout = effectiveGate(c.gate, c.waves[j.wave]?.gate ?? {}).reportTimeoutMs;
        const deadline = Math.max(j.notifiedAt, j.lastReportAt ?? 0) + timeout;
        if (deadline <= now) silent.push(j);
        else nextWake = Math.min(nextWake, deadline);
      }
      if (silent.length > 0) {
        await storage.transaction(async (tx) => {
          for (const j of silent) {
            await tx.campaigns.updateJob(
              id,
              j.deviceId,
              {
                state: 'timed-out',
                errorCode: 'silent',
                errorMessage: 'no report within the report timeout',
              },
              now,
            );
          }
        });
        // Retained job cleared: a device that comes back much later does not install it unasked.
        await this.#publisher.clearRetained(silent);
      }

      // Notify what is due up to the current wave.
      const pending = await repo.allJobs(id, { maxWave: k, states: ['pending'] });
      if (pending.length > 0) {
        await this.#publisher.notify(c, pending);
        const timeout = gate.reportTimeoutMs;
        nextWake = Math.min(nextWake, clock.now() + timeout);
        if (stopNotifying.has(id)) return;
      }

      // Gate of the current wave.
      const counts = new Map<JobState, number>();
      for (const row of await repo.counts(id)) if (row.wave === k) counts.set(row.state, row.count);
      const overridden = c.gateOverrideWave === k;
      let health = countsToHealth(counts, 0);
      if (!overridden) {
        const verdict = failureGate(health, gate, k);
        if (!verdict.ok) {
          await this.#gateHalt(c, verdict.reason, verdict.value);
          return;
        }
      }
      if (!health.settled) {
        if (Number.isFinite(nextWake)) this.#wakeAt(id, nextWake);
        return;
      }
      const settledAt = c.waveSettledAt ?? now;
      if (c.waveSettledAt === null) await repo.update(id, { waveSettledAt: settledAt }, now);
      const soakEnd = settledAt + wave.soakMs;
      if (now < soakEnd) {
        this.#wakeAt(id, soakEnd);
        return;
      }
      if (!overridden) {
        health = countsToHealth(counts, await this.#offlineAfterUpdate(id, k));
        const verdict = soakGate(health, gate, k);
        if (!verdict.ok) {
          await this.#gateHalt(c, verdict.reason, verdict.value);
          return;
        }
      }
      const last = k === c.waves.length - 1;
      await storage.transaction(async (tx) => {
        if (last) {
          await tx.campaigns.transition(id, ['running'], { state: 'completed', completedAt: now }, now);
          await auditCampaign(tx, clock, ENGINE_ACTOR, 'campaign.complete', id, null, {
            devices: c.targetCount,
          });
        } else {
          await tx.campaigns.transition(
            id,
            ['running'],
            { state: 'running', currentWave: k + 1, waveStartedAt: now, waveSettledAt: null },
            now,
          );
          await auditCampaign(tx, clock, ENGINE_ACTOR, 'campaign.wave', id, `wave ${k + 1} passed its gate`, {
            wave: k + 2,
            passed: {
              wave: k + 1,
              devices: health.devices,
              failed: health.failed,
              offline: health.offlineAfterUpdate,
            },
          });
        }
      });
      if (last) {
        this.cancel(id);
        return;
      }
      // Loop: notify the next wave now.
    }
  }

  /** Devices of the wave that reported `succeeded` and are not connected now. */
  async #offlineAfterUpdate(campaignId: string, wave: number): Promise<number> {
    const fleet = this.#ctx.fleet;
    if (fleet === null) return 0;
    const connected = new Set(fleet.connectedClientIds());
    const updated = await this.#ctx.storage.campaigns.allJobs(campaignId, { wave, states: ['succeeded'] });
    return updated.filter((j) => !connected.has(j.deviceId)).length;
  }

  async #gateHalt(c: CampaignRecord, reason: string, value: number): Promise<void> {
    this.cancel(c.id);
    await haltRunning(this.#ctx, this.#publisher, c, ENGINE_ACTOR, reason, ENGINE_ACTOR.id, reason);
    this.#ctx.events.gateFailed({
      campaignId: c.id,
      name: c.name,
      wave: (c.currentWave ?? 0) + 1,
      reason,
      value,
    });
  }
}
