/**
 * The campaign engine (started and closed with the control plane): notifies a wave's devices, follows their reports,
 * times out silent devices, checks the wave's health gate, advances after the soak, completes —
 * and halts, by hand (the OTA kill switch) or by itself when a gate fails.
 *
 * Device protocol (packages/device/src/ota.ts): the job is published QoS 1 **retained** on
 * `$fleet/{id}/ota`, so a device that is offline gets it when it reconnects; reports arrive on
 * `$fleet/{id}/ota/status` and count only when the publishing client is that device. A halt
 * clears the retained job (empty retained publish) and sends `{"halt": true, "jobId"}`, which the
 * SDK treats as a cancel: queued jobs are dropped, a download or install in progress is aborted.
 *
 * Everything that reads and changes campaign state runs through one serial queue, so a report,
 * a timer and an operator's halt never interleave. The halt itself does not wait for its turn to
 * stop notifications: it first marks the campaign in memory, and the notify loop checks that
 * mark before every chunk of publishes; when `halt()` resolves, the campaign is halted in
 * storage and every job that went out has been withdrawn.
 *
 * One engine per storage: two control-plane processes on one PostgreSQL would both drive the
 * same running campaigns (not supported yet; run the engine on one node).
 */
import { randomBytes } from 'node:crypto';
import type { Clock, TimerHandle } from '@breakwater/broker';
import type { Logger } from 'pino';
import type { AuditRepository } from '../audit/model.js';
import type { DeviceRepository } from '../devices/model.js';
import { ApiError } from '../errors.js';
import type { FleetBroker } from '../fleet-broker.js';
import { requireTargeted, type Selector } from '../selector.js';
import type { Transactional } from '../storage/transactional.js';
import { assignWaves } from './assignment.js';
import { countsToHealth, effectiveGate, failureGate, soakGate } from './gates.js';
import {
  ACTIVE_JOB_STATES,
  type Artifact,
  type CampaignRecord,
  type CampaignRepository,
  type CampaignState,
  type DeviceJobRecord,
  type Gate,
  type JobState,
  WAITING_JOB_STATES,
  type WaveSpec,
  WORKING_JOB_STATES,
} from './types.js';

export function otaTopic(deviceId: string): string {
  return `$fleet/${deviceId}/ota`;
}

export const OTA_STATUS_FILTER = '$fleet/+/ota/status';

/** The job as the device SDK parses it (packages/device/src/ota.ts `parseOtaMessage`). */
export function jobPayload(c: Pick<CampaignRecord, 'id' | 'artifact'>, jobId: string): string {
  const job: Record<string, unknown> = {
    jobId,
    campaignId: c.id,
    version: c.artifact.version,
    url: c.artifact.url,
    sha256: c.artifact.sha256,
  };
  if (c.artifact.size !== null) job.size = c.artifact.size;
  return JSON.stringify(job);
}

/** Who asked (an API key), written to the audit log with the change. */
export interface CampaignActor {
  id: string;
  name: string;
}

const SYSTEM: CampaignActor = { id: 'system', name: 'ota campaign engine' };

export const DEFAULT_GATE: Gate = {
  maxFailureRatio: 0.05,
  maxOfflineRatio: 0.1,
  reportTimeoutMs: 30 * 60_000,
};

export interface NewCampaign {
  name: string;
  artifact: Artifact;
  selector: Selector;
  waves: WaveSpec[];
  gate: Gate;
  rollbackOf?: string | null;
}

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

export interface ResumeOutcome {
  campaignId: string;
  wave: number;
  /** Jobs sent again (with a new job id) or for the first time. */
  notified: number;
}

export interface RollbackOutcome {
  campaigns: CampaignRecord[];
  /** Devices that updated but whose previous version is unknown (not rolled back). */
  skippedUnknownVersion: string[];
  /** A rollback campaign that could not start stays a draft; why is here. */
  warnings: string[];
}

export interface WaveSummary {
  index: number;
  percent: number;
  soakMs: number;
  gate: Gate;
  devices: number;
  states: Partial<Record<JobState, number>>;
  failureRatio: number;
}

/** What the engine tells the rest of the control plane (alerting: the `ota-gate-failed` rule). */
export interface CampaignEvents {
  /** A wave failed its gate and the campaign halted itself. `wave` is 1-based. */
  gateFailed(e: { campaignId: string; name: string; wave: number; reason: string; value: number }): void;
  /** An operator resumed or rolled back a campaign that a gate had halted. */
  gateHaltResolved(e: { campaignId: string; wave: number; how: 'resumed' | 'rolled back' }): void;
}

/** What the engine reads and writes: campaigns, the registry (targets, firmware versions), audit. */
export interface CampaignRepositories {
  readonly campaigns: CampaignRepository;
  readonly devices: DeviceRepository;
  readonly audit: AuditRepository;
}

export interface CampaignEngineOptions {
  storage: Transactional<CampaignRepositories>;
  clock: Clock;
  fleet: FleetBroker | null;
  logger?: Logger | null;
  events?: CampaignEvents | null;
}

/** Jobs notified together: one broker flush covers a chunk (publish resolves after fsync). */
const NOTIFY_CHUNK = 100;

const TERMINAL_REPORTS = new Set(['succeeded', 'failed', 'rolled-back']);
const REPORTED_STATES = new Set([
  'queued',
  'downloading',
  'installing',
  'succeeded',
  'failed',
  'rolled-back',
]);

function conflict(detail: string): ApiError {
  return new ApiError('BW_ERR_CAMPAIGN_STATE', detail);
}

export function newCampaignId(now: number): string {
  // Time first so ids sort roughly by creation; random tail for uniqueness.
  return `cmp_${now.toString(36)}${randomBytes(5).toString('hex')}`;
}

/**
 * Validation beyond the JSON schema, with the field named (400). Waves: cumulative percentages,
 * strictly increasing; minimum device counts never decreasing.
 */
export function validateWaves(waves: readonly WaveSpec[]): void {
  for (let i = 1; i < waves.length; i++) {
    if (waves[i]!.percent <= waves[i - 1]!.percent) {
      throw new ApiError(
        'BW_ERR_API_VALIDATION',
        `waves[${i}].percent must be greater than waves[${i - 1}].percent (${waves[i - 1]!.percent}): percentages are cumulative`,
        { field: `waves[${i}].percent` },
      );
    }
    if (waves[i]!.minDevices < waves[i - 1]!.minDevices) {
      throw new ApiError(
        'BW_ERR_API_VALIDATION',
        `waves[${i}].minDevices must be at least waves[${i - 1}].minDevices: counts are cumulative`,
        { field: `waves[${i}].minDevices` },
      );
    }
  }
}

export class CampaignEngine {
  readonly #storage: Transactional<CampaignRepositories>;
  readonly #clock: Clock;
  readonly #fleet: FleetBroker | null;
  readonly #logger: Logger | null;
  readonly #events: CampaignEvents | null;
  #queue: Promise<unknown> = Promise.resolve();
  /** Campaigns a halt was requested for: the notify loop stops at the next chunk. */
  readonly #stopNotifying = new Set<string>();
  readonly #evaluateQueued = new Set<string>();
  readonly #timers = new Map<string, { at: number; handle: TimerHandle }>();
  #unsubscribe: (() => void) | null = null;
  #closed = false;
  /** Reports ignored because the publisher was not the device the topic names. */
  spoofedReports = 0;

  constructor(options: CampaignEngineOptions) {
    this.#storage = options.storage;
    this.#clock = options.clock;
    this.#fleet = options.fleet;
    this.#logger = options.logger ?? null;
    this.#events = options.events ?? null;
  }

  // ---- lifecycle ----

  async start(): Promise<void> {
    this.#closed = false;
    if (this.#fleet === null) return;
    this.#unsubscribe = this.#fleet.subscribe(OTA_STATUS_FILTER, (topic, payload, publisherId) =>
      this.#onReport(topic, payload, publisherId),
    );
    // Pick up campaigns that were running when the process stopped. A job is stored as notified
    // just before it is published: send those again (same job id; devices ignore duplicates) in
    // case the process stopped in between.
    for (const id of await this.#storage.campaigns.idsInState('running')) {
      this.#serial(() => this.#republishNotified(id)).catch(() => {}); // logged by #serial
      this.#requestEvaluate(id);
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#unsubscribe?.();
    this.#unsubscribe = null;
    for (const t of this.#timers.values()) this.#clock.clearTimeout(t.handle);
    this.#timers.clear();
    await this.#queue.catch(() => {});
  }

  /** Resolves when every queued operation has run (tests, shutdown). */
  idle(): Promise<void> {
    return this.#queue.then(
      () => undefined,
      () => undefined,
    );
  }

  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(fn, fn);
    this.#queue = run.catch((err: unknown) => {
      this.#logger?.error({ err }, 'ota engine operation failed');
    });
    return run;
  }

  // ---- operator actions ----

  async create(input: NewCampaign, actor: CampaignActor, reason: string | null): Promise<CampaignRecord> {
    requireTargeted(input.selector);
    validateWaves(input.waves);
    const now = this.#clock.now();
    const campaign: CampaignRecord = {
      id: newCampaignId(now),
      name: input.name,
      state: 'draft',
      artifact: input.artifact,
      selector: input.selector,
      waves: input.waves,
      gate: input.gate,
      currentWave: null,
      waveStartedAt: null,
      waveSettledAt: null,
      gateOverrideWave: null,
      targetCount: 0,
      haltReason: null,
      haltedBy: null,
      haltedAt: null,
      rollbackOf: input.rollbackOf ?? null,
      createdAt: now,
      createdBy: actor.id,
      startedAt: null,
      completedAt: null,
      updatedAt: now,
    };
    await this.#storage.transaction(async (tx) => {
      await tx.campaigns.insert(campaign);
      await this.#audit(tx, actor, 'campaign.create', campaign.id, reason, {
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
  startCampaign(id: string, actor: CampaignActor, reason: string | null): Promise<CampaignRecord> {
    return this.#serial(async () => {
      const c = await this.#require(id);
      if (c.state !== 'draft') throw conflict(`campaign ${id} is ${c.state}; only a draft can be started`);
      this.#requireFleet();
      const ids = await this.#storage.devices.resolve(c.selector);
      if (ids.length === 0) throw conflict(`the selector of campaign ${id} matches no registered device`);
      const busy = new Set(await this.#storage.campaigns.busyDevices(id));
      const clash = ids.filter((d) => busy.has(d));
      if (clash.length > 0) {
        throw conflict(
          `${clash.length} target device(s) are in another running or halted campaign (first: ${clash[0]}); halt or finish it first`,
        );
      }
      const assignment = assignWaves(c.id, ids, c.waves);
      const now = this.#clock.now();
      const versions = new Map<string, string | null>();
      for (const d of ids) versions.set(d, null);
      // Previous versions, for rollback: what the registry says now.
      for (let i = 0; i < ids.length; i += 500) {
        const page = await this.#storage.devices.list({ ids: ids.slice(i, i + 500) }, 500, null);
        for (const dev of page.items) versions.set(dev.id, dev.firmwareVersion);
      }
      await this.#storage.transaction(async (tx) => {
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
        await this.#audit(tx, actor, 'campaign.start', id, reason, {
          targetDevices: assignment.length,
          matchedDevices: ids.length,
        });
      });
      this.#stopNotifying.delete(id);
      this.#requestEvaluate(id);
      return (await this.#storage.campaigns.get(id))!;
    });
  }

  /**
   * The OTA kill switch for one campaign: no device is notified after this resolves, jobs not
   * yet started are withdrawn, devices working on it are told to stop.
   */
  halt(id: string, actor: CampaignActor, reason: string | null): Promise<HaltOutcome> {
    this.#stopNotifying.add(id);
    return this.#serial(async () => {
      const c = await this.#require(id);
      if (c.state !== 'running')
        throw conflict(`campaign ${id} is ${c.state}; only a running campaign can be halted`);
      return this.#haltNow(c, actor, reason ?? 'halted by operator', actor.id, reason);
    });
  }

  /** `POST /killswitch/ota-halt`: one campaign, or every running one. */
  async haltAll(actor: CampaignActor, reason: string): Promise<HaltOutcome[]> {
    // Marked before waiting for the queue: notifications stop at the next chunk.
    for (const id of await this.#storage.campaigns.idsInState('running')) this.#stopNotifying.add(id);
    return this.#serial(async () => {
      const out: HaltOutcome[] = [];
      for (const id of await this.#storage.campaigns.idsInState('running')) {
        const c = await this.#storage.campaigns.get(id);
        if (c?.state !== 'running') continue; // finished or halted by its gate meanwhile
        out.push(await this.#haltNow(c, actor, reason, actor.id, reason));
      }
      return out;
    });
  }

  /** halted → running: continues the wave it stopped in; unfinished jobs are sent again. */
  resume(id: string, actor: CampaignActor, reason: string | null): Promise<ResumeOutcome> {
    return this.#serial(async () => {
      const c = await this.#require(id);
      if (c.state !== 'halted')
        throw conflict(`campaign ${id} is ${c.state}; only a halted campaign can be resumed`);
      this.#requireFleet();
      const busy = new Set(await this.#storage.campaigns.busyDevices(id));
      const mine = await this.#storage.campaigns.allJobs(id, {
        states: ['pending', 'cancelled', ...ACTIVE_JOB_STATES],
      });
      const clash = mine.find((j) => busy.has(j.deviceId));
      if (clash)
        throw conflict(`device ${clash.deviceId} is in another running campaign; halt or finish it first`);
      const now = this.#clock.now();
      const wave = c.currentWave ?? 0;
      // Resuming after an automatic halt is the operator overriding that wave's gate.
      const override = c.haltedBy === SYSTEM.id ? wave : c.gateOverrideWave;
      await this.#storage.transaction(async (tx) => {
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
        await this.#audit(tx, actor, 'campaign.resume', id, reason, {
          wave: wave + 1,
          previousHaltReason: c.haltReason,
          gateOverridden: override === wave && c.haltedBy === SYSTEM.id,
        });
      });
      this.#stopNotifying.delete(id);
      if (c.haltedBy === SYSTEM.id) {
        this.#notifyEvent(() =>
          this.#events?.gateHaltResolved({ campaignId: id, wave: wave + 1, how: 'resumed' }),
        );
      }
      const resumed = (await this.#storage.campaigns.get(id))!;
      const unfinished = await this.#storage.campaigns.allJobs(id, {
        maxWave: wave,
        states: ['pending', 'cancelled', ...ACTIVE_JOB_STATES],
      });
      const notified = await this.#notify(resumed, unfinished);
      this.#requestEvaluate(id);
      return { campaignId: id, wave, notified };
    });
  }

  /**
   * A campaign back to each device's previous version, for the devices of `id` that updated.
   * One campaign per previous version (devices may have come from different ones); its artifact
   * is the one given for that version, else the newest earlier campaign that shipped it. The
   * rolled-back campaign ends (state `rolled-back`); the new ones start at once unless
   * `start: false`.
   */
  async rollback(
    id: string,
    actor: CampaignActor,
    reason: string | null,
    options: { artifacts?: Artifact[]; waves?: WaveSpec[]; gate?: Gate; start?: boolean } = {},
  ): Promise<RollbackOutcome> {
    const created = await this.#serial(async () => {
      const c = await this.#require(id);
      if (c.state !== 'halted' && c.state !== 'completed') {
        throw conflict(
          `campaign ${id} is ${c.state}; halt it before rolling back (or wait until it completes)`,
        );
      }
      const updated = await this.#storage.campaigns.allJobs(id, { states: ['succeeded'] });
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
          options.artifacts?.find((a) => a.version === version) ?? (await this.#artifactFor(version));
        if (!artifact) {
          throw new ApiError(
            'BW_ERR_API_VALIDATION',
            `no artifact known for version ${version} (${ids.length} device(s) came from it): pass it in artifacts`,
            { field: 'artifacts' },
          );
        }
        plans.push({ artifact, ids });
      }
      const now = this.#clock.now();
      const campaigns: CampaignRecord[] = [];
      await this.#storage.transaction(async (tx) => {
        const ok = await tx.campaigns.transition(id, ['halted', 'completed'], { state: 'rolled-back' }, now);
        if (!ok) throw conflict(`campaign ${id} changed state meanwhile`);
        for (const plan of plans) {
          const rb: CampaignRecord = {
            id: newCampaignId(now),
            name: `rollback of ${c.name} to ${plan.artifact.version}`,
            state: 'draft',
            artifact: plan.artifact,
            selector: { ids: plan.ids },
            waves: options.waves ?? [{ percent: 100, minDevices: 0, soakMs: 0, gate: {} }],
            gate: options.gate ?? c.gate,
            currentWave: null,
            waveStartedAt: null,
            waveSettledAt: null,
            gateOverrideWave: null,
            targetCount: 0,
            haltReason: null,
            haltedBy: null,
            haltedAt: null,
            rollbackOf: id,
            createdAt: now,
            createdBy: actor.id,
            startedAt: null,
            completedAt: null,
            updatedAt: now,
          };
          await tx.campaigns.insert(rb);
          await this.#audit(tx, actor, 'campaign.create', rb.id, reason, {
            name: rb.name,
            version: rb.artifact.version,
            devices: plan.ids.length,
            rollbackOf: id,
          });
          campaigns.push(rb);
        }
        await this.#audit(tx, actor, 'campaign.rollback', id, reason, {
          rollbackCampaigns: campaigns.map((r) => r.id),
          devices: updated.length - skipped.length,
          skippedUnknownVersion: skipped.length,
        });
      });
      if (c.haltedBy === SYSTEM.id) {
        this.#notifyEvent(() =>
          this.#events?.gateHaltResolved({
            campaignId: id,
            wave: (c.currentWave ?? 0) + 1,
            how: 'rolled back',
          }),
        );
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
        out.push(await this.startCampaign(rb.id, actor, reason));
      } catch (err) {
        // The rollback itself is done (stored, audited): report the start failure, do not undo it.
        if (!(err instanceof ApiError)) throw err;
        warnings.push(`${rb.id} was created but not started: ${err.message}`);
        out.push(rb);
      }
    }
    return { campaigns: out, skippedUnknownVersion: created.skipped, warnings };
  }

  // ---- reads ----

  async waveSummaries(c: CampaignRecord): Promise<WaveSummary[]> {
    const counts = await this.#storage.campaigns.counts(c.id);
    return c.waves.map((w, index) => {
      const states: Partial<Record<JobState, number>> = {};
      const map = new Map<JobState, number>();
      for (const row of counts) {
        if (row.wave !== index) continue;
        states[row.state] = row.count;
        map.set(row.state, row.count);
      }
      const health = countsToHealth(map, 0);
      return {
        index,
        percent: w.percent,
        soakMs: w.soakMs,
        gate: effectiveGate(c.gate, w.gate),
        devices: health.devices,
        states,
        failureRatio: health.devices === 0 ? 0 : health.failed / health.devices,
      };
    });
  }

  // ---- internals ----

  async #require(id: string): Promise<CampaignRecord> {
    const c = await this.#storage.campaigns.get(id);
    if (!c) throw new ApiError('BW_ERR_API_NOT_FOUND', `campaign ${id}`);
    return c;
  }

  #requireFleet(): FleetBroker {
    if (this.#fleet === null) throw conflict('no broker attached: this control plane cannot run campaigns');
    return this.#fleet;
  }

  async #artifactFor(version: string): Promise<Artifact | null> {
    let cursor: string | null = null;
    do {
      const page = await this.#storage.campaigns.list({}, 200, cursor);
      const hit = page.items.find((c) => c.artifact.version === version);
      if (hit) return hit.artifact;
      cursor = page.nextCursor;
    } while (cursor !== null);
    return null;
  }

  #audit(
    tx: CampaignRepositories,
    actor: CampaignActor,
    action: string,
    campaignId: string,
    reason: string | null,
    details: Record<string, unknown>,
  ): Promise<number> {
    return tx.audit.append({
      at: this.#clock.now(),
      actorId: actor.id,
      actorName: actor.name,
      action,
      targetType: 'campaign',
      targetId: campaignId,
      reason,
      details,
    });
  }

  async #gateHalt(c: CampaignRecord, reason: string, value: number): Promise<void> {
    await this.#haltNow(c, SYSTEM, reason, SYSTEM.id, reason);
    this.#notifyEvent(() =>
      this.#events?.gateFailed({
        campaignId: c.id,
        name: c.name,
        wave: (c.currentWave ?? 0) + 1,
        reason,
        value,
      }),
    );
  }

  #notifyEvent(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.#logger?.error({ err }, 'ota campaign event listener failed');
    }
  }

  /** Runs inside the serial queue. */
  async #haltNow(
    c: CampaignRecord,
    actor: CampaignActor,
    haltReason: string,
    haltedBy: string,
    auditReason: string | null,
  ): Promise<HaltOutcome> {
    this.#stopNotifying.add(c.id);
    this.#clearTimer(c.id);
    const now = this.#clock.now();
    const waiting = await this.#storage.campaigns.allJobs(c.id, { states: WAITING_JOB_STATES });
    const working = await this.#storage.campaigns.allJobs(c.id, { states: WORKING_JOB_STATES });
    await this.#storage.transaction(async (tx) => {
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
      await this.#audit(tx, actor, 'campaign.halt', c.id, auditReason, {
        wave: (c.currentWave ?? 0) + 1,
        automatic: haltedBy === SYSTEM.id,
        haltReason,
        cancelledNotifications: waiting.length,
        toldToStop: working.length,
      });
    });
    const reached = await this.#withdraw(c.id, [...waiting, ...working], haltReason);
    this.#logger?.warn(
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

  /** Clears the retained job and sends the SDK's cancel; returns how many devices both reached. */
  async #withdraw(campaignId: string, jobs: readonly DeviceJobRecord[], reason: string): Promise<number> {
    const fleet = this.#fleet;
    if (fleet === null) return 0;
    let reached = 0;
    for (let i = 0; i < jobs.length; i += NOTIFY_CHUNK) {
      const results = await Promise.allSettled(
        jobs.slice(i, i + NOTIFY_CHUNK).map(async (j) => {
          const topic = otaTopic(j.deviceId);
          await fleet.publish({ topic, payload: Buffer.alloc(0), qos: 1, retain: true });
          if (j.jobId !== null) {
            await fleet.publish({
              topic,
              payload: JSON.stringify({ halt: true, jobId: j.jobId, campaignId, reason }),
              qos: 1,
            });
          }
        }),
      );
      for (const r of results) {
        if (r.status === 'fulfilled') reached++;
        else this.#logger?.error({ err: r.reason, campaignId }, 'ota withdraw publish failed');
      }
    }
    return reached;
  }

  /** Sends (or re-sends with a new job id) the jobs; stops early when a halt was requested. */
  async #notify(c: CampaignRecord, jobs: readonly DeviceJobRecord[]): Promise<number> {
    const fleet = this.#fleet;
    if (fleet === null || jobs.length === 0) return 0;
    let sent = 0;
    for (let i = 0; i < jobs.length; i += NOTIFY_CHUNK) {
      if (this.#stopNotifying.has(c.id) || this.#closed) break;
      const chunk = jobs.slice(i, i + NOTIFY_CHUNK);
      const now = this.#clock.now();
      const out = chunk.map((j) => ({ job: j, attempt: j.attempt + 1, jobId: `${c.id}.${j.attempt + 1}` }));
      // Stored first: a job that went out is always in storage, so a halt withdraws it.
      await this.#storage.transaction(async (tx) => {
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
      if (this.#stopNotifying.has(c.id) || this.#closed) break;
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
        else this.#logger?.error({ err: r.reason, campaignId: c.id }, 'ota job publish failed');
      }
    }
    return sent;
  }

  async #republishNotified(id: string): Promise<void> {
    const c = await this.#storage.campaigns.get(id);
    const fleet = this.#fleet;
    if (c?.state !== 'running' || fleet === null) return;
    const jobs = await this.#storage.campaigns.allJobs(id, { states: ['notified'] });
    for (let i = 0; i < jobs.length; i += NOTIFY_CHUNK) {
      if (this.#stopNotifying.has(id) || this.#closed) return;
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

  #requestEvaluate(id: string): void {
    if (this.#closed || this.#evaluateQueued.has(id)) return;
    this.#evaluateQueued.add(id);
    this.#serial(async () => {
      this.#evaluateQueued.delete(id);
      await this.#evaluate(id);
    }).catch(() => {}); // logged by #serial
  }

  #clearTimer(id: string): void {
    const t = this.#timers.get(id);
    if (t) this.#clock.clearTimeout(t.handle);
    this.#timers.delete(id);
  }

  #wakeAt(id: string, at: number): void {
    if (this.#closed) return;
    const existing = this.#timers.get(id);
    if (existing && existing.at <= at) return;
    if (existing) this.#clock.clearTimeout(existing.handle);
    const handle = this.#clock.setTimeout(
      () => {
        this.#timers.delete(id);
        this.#requestEvaluate(id);
      },
      Math.max(0, at - this.#clock.now()),
    );
    this.#timers.set(id, { at, handle });
  }

  /** One step of a running campaign (serial): timeouts, notifications, gate, soak, advance. */
  async #evaluate(id: string): Promise<void> {
    const repo = this.#storage.campaigns;
    for (;;) {
      const c = await repo.get(id);
      if (c?.state !== 'running' || c.currentWave === null || this.#stopNotifying.has(id)) return;
      const k = c.currentWave;
      const wave = c.waves[k]!;
      const gate = effectiveGate(c.gate, wave.gate);
      const now = this.#clock.now();

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
        await this.#storage.transaction(async (tx) => {
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
        await this.#clearRetained(silent);
      }

      // Notify what is due up to the current wave.
      const pending = await repo.allJobs(id, { maxWave: k, states: ['pending'] });
      if (pending.length > 0) {
        await this.#notify(c, pending);
        const timeout = gate.reportTimeoutMs;
        nextWake = Math.min(nextWake, this.#clock.now() + timeout);
        if (this.#stopNotifying.has(id)) return;
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
      await this.#storage.transaction(async (tx) => {
        if (last) {
          await tx.campaigns.transition(id, ['running'], { state: 'completed', completedAt: now }, now);
          await this.#audit(tx, SYSTEM, 'campaign.complete', id, null, { devices: c.targetCount });
        } else {
          await tx.campaigns.transition(
            id,
            ['running'],
            { state: 'running', currentWave: k + 1, waveStartedAt: now, waveSettledAt: null },
            now,
          );
          await this.#audit(tx, SYSTEM, 'campaign.wave', id, `wave ${k + 1} passed its gate`, {
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
        this.#clearTimer(id);
        return;
      }
      // Loop: notify the next wave now.
    }
  }

  async #offlineAfterUpdate(campaignId: string, wave: number): Promise<number> {
    const fleet = this.#fleet;
    if (fleet === null) return 0;
    const connected = new Set(fleet.connectedClientIds());
    const updated = await this.#storage.campaigns.allJobs(campaignId, { wave, states: ['succeeded'] });
    return updated.filter((j) => !connected.has(j.deviceId)).length;
  }

  async #clearRetained(jobs: readonly DeviceJobRecord[]): Promise<void> {
    const fleet = this.#fleet;
    if (fleet === null) return;
    const results = await Promise.allSettled(
      jobs.map((j) =>
        fleet.publish({ topic: otaTopic(j.deviceId), payload: Buffer.alloc(0), qos: 1, retain: true }),
      ),
    );
    for (const r of results) {
      if (r.status === 'rejected') this.#logger?.error({ err: r.reason }, 'ota retained clear failed');
    }
  }

  // ---- device reports ----

  #onReport(topic: string, payload: Buffer, publisherId: string | null): void {
    const deviceId = topic.split('/')[1];
    if (deviceId === undefined || publisherId !== deviceId) {
      this.spoofedReports++;
      return;
    }
    let report: { jobId?: unknown; status?: unknown; progress?: unknown; error?: unknown; version?: unknown };
    try {
      report = JSON.parse(payload.toString('utf8')) as typeof report;
    } catch {
      return;
    }
    if (typeof report !== 'object' || report === null) return;
    const { jobId, status } = report;
    if (typeof jobId !== 'string' || typeof status !== 'string' || !REPORTED_STATES.has(status)) return;
    this.#serial(() => this.#applyReport(deviceId, jobId, status as JobState, report)).catch(() => {}); // logged by #serial
  }

  async #applyReport(
    deviceId: string,
    jobId: string,
    status: JobState,
    report: { progress?: unknown; error?: unknown },
  ): Promise<void> {
    const repo = this.#storage.campaigns;
    const job = await repo.findJob(deviceId, jobId);
    if (!job) return;
    const error = report.error as { code?: unknown; message?: unknown } | undefined;
    const errorCode = typeof error?.code === 'string' ? error.code : null;
    // The SDK answers a cancel with `failed` + BW_ERR_DEVICE_OTA_CANCELLED: that is our halt landing.
    const next: JobState =
      status === 'failed' && errorCode === 'BW_ERR_DEVICE_OTA_CANCELLED' ? 'cancelled' : status;
    if (!acceptTransition(job.state, next)) return;
    const now = this.#clock.now();
    const c = await repo.get(job.campaignId);
    await this.#storage.transaction(async (tx) => {
      await tx.campaigns.updateJob(
        job.campaignId,
        deviceId,
        {
          state: next,
          lastReportAt: now,
          progress: typeof report.progress === 'number' ? Math.round(report.progress) : job.progress,
          errorCode: errorCode ?? (next === 'failed' ? 'unknown' : null),
          errorMessage: typeof error?.message === 'string' ? error.message.slice(0, 500) : null,
        },
        now,
      );
      if (next === 'succeeded' && c) {
        await tx.devices.update(deviceId, { firmwareVersion: c.artifact.version }, now);
      }
    });
    if (TERMINAL_REPORTS.has(next)) await this.#clearRetained([job]);
    if (c?.state === 'running') this.#requestEvaluate(c.id);
  }
}

/**
 * Which reported state may replace the stored one. Progress moves forward only; a final report
 * replaces a timeout or a cancel (it is what really happened), a device rollback follows a
 * failure; nothing replaces `succeeded`.
 */
export function acceptTransition(from: JobState, to: JobState): boolean {
  const order: Partial<Record<JobState, number>> = { notified: 0, queued: 1, downloading: 2, installing: 3 };
  const fromStep = order[from];
  const toStep = order[to];
  if (fromStep !== undefined) return toStep === undefined || toStep >= fromStep;
  if (from === 'pending') return false; // never sent this job id
  if (toStep !== undefined) return false; // progress after a final state
  if (from === 'timed-out' || from === 'cancelled') return to !== 'cancelled' || from === 'timed-out';
  if (from === 'failed') return to === 'rolled-back';
  return false;
}
