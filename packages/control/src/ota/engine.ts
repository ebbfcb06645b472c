/**
 * The campaign engine (started and closed with the control plane): notifies a wave's devices,
 * follows their reports, times out silent devices, checks the wave's health gate, advances after
 * the soak, completes — and halts, by hand (the OTA kill switch) or by itself when a gate fails.
 *
 * This class is the public face and the wiring; the work is in its parts:
 * - campaign-actions.ts: create, start, halt (one or all), resume; rollback.ts: rollback;
 * - wave-scheduler.ts: the evaluation step (timeouts, notify, gate, soak, next wave), its timers;
 * - gates.ts: the health gates as pure functions; halt.ts: running → halted, withdrawals;
 * - job-publisher.ts: every publish to devices; device-protocol.ts: topics and payloads;
 * - job-reports.ts: device reports → job states.
 *
 * Device protocol (device-protocol.ts, packages/device/src/ota.ts): the job is published QoS 1
 * retained on `$fleet/{id}/ota`; reports on `$fleet/{id}/ota/status` count only when the
 * publishing client is that device.
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
import type { Clock } from '@breakwater/broker';
import type { Logger } from 'pino';
import type { FleetBroker } from '../fleet-broker.js';
import type { Transactional } from '../storage/transactional.js';
import { CampaignActions, type ResumeOutcome } from './campaign-actions.js';
import type { CampaignActor } from './campaign-audit.js';
import { OTA_STATUS_FILTER, parseStatusReport, statusTopicDevice } from './device-protocol.js';
import type { NewCampaign } from './drafts.js';
import type { CampaignRepositories, EngineContext } from './engine-context.js';
import { type CampaignEvents, guardedEvents } from './events.js';
import type { HaltOutcome } from './halt.js';
import { JobPublisher } from './job-publisher.js';
import { applyReport } from './job-reports.js';
import { type RollbackOptions, type RollbackOutcome, rollbackCampaign } from './rollback.js';
import { SerialQueue } from './serial-queue.js';
import type { CampaignRecord } from './types.js';
import { WaveScheduler } from './wave-scheduler.js';
import { type WaveSummary, waveSummaries } from './wave-summaries.js';

export interface CampaignEngineOptions {
  storage: Transactional<CampaignRepositories>;
  clock: Clock;
  fleet: FleetBroker | null;
  logger?: Logger | null;
  events?: CampaignEvents | null;
}

export class CampaignEngine {
  readonly #ctx: EngineContext;
  readonly #queue: SerialQueue;
  readonly #publisher: JobPublisher;
  readonly #scheduler: WaveScheduler;
  readonly #actions: CampaignActions;
  #unsubscribe: (() => void) | null = null;
  #closed = false;
  /** Reports ignored because the publisher was not the device the topic names. */
  spoofedReports = 0;

  constructor(options: CampaignEngineOptions) {
    const logger = options.logger ?? null;
    const queue = new SerialQueue(logger);
    this.#queue = queue;
    this.#ctx = {
      storage: options.storage,
      clock: options.clock,
      fleet: options.fleet,
      logger,
      events: guardedEvents(options.events ?? null, logger),
      stopNotifying: new Set<string>(),
      closed: () => this.#closed,
      serial: (fn) => queue.run(fn),
    };
    this.#publisher = new JobPublisher(this.#ctx);
    this.#scheduler = new WaveScheduler(this.#ctx, this.#publisher);
    this.#actions = new CampaignActions(this.#ctx, this.#publisher, this.#scheduler);
  }

  // ---- lifecycle ----

  async start(): Promise<void> {
    this.#closed = false;
    const { fleet, storage } = this.#ctx;
    if (fleet === null) return;
    this.#unsubscribe = fleet.subscribe(OTA_STATUS_FILTER, (topic, payload, publisherId) =>
      this.#onReport(topic, payload, publisherId),
    );
    // Pick up campaigns that were running when the process stopped.
    for (const id of await storage.campaigns.idsInState('running')) {
      this.#queue.run(() => this.#publisher.republishNotified(id)).catch(() => {}); // logged by the queue
      this.#scheduler.requestEvaluate(id);
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#unsubscribe?.();
    this.#unsubscribe = null;
    this.#scheduler.cancelAll();
    await this.#queue.idle();
  }

  /** Resolves when every queued operation has run (tests, shutdown). */
  idle(): Promise<void> {
    return this.#queue.idle();
  }

  // ---- operator actions ----

  create(input: NewCampaign, actor: CampaignActor, reason: string | null): Promise<CampaignRecord> {
    return this.#actions.create(input, actor, reason);
  }

  /** draft → running: resolves the selector, assigns waves, notifies wave 1. */
  startCampaign(id: string, actor: CampaignActor, reason: string | null): Promise<CampaignRecord> {
    return this.#actions.start(id, actor, reason);
  }

  /**
   * The OTA kill switch for one campaign: no device is notified after this resolves, jobs not
   * yet started are withdrawn, devices working on it are told to stop.
   */
  halt(id: string, actor: CampaignActor, reason: string | null): Promise<HaltOutcome> {
    return this.#actions.halt(id, actor, reason);
  }

  /** `POST /killswitch/ota-halt`: one campaign, or every running one. */
  haltAll(actor: CampaignActor, reason: string): Promise<HaltOutcome[]> {
    return this.#actions.haltAll(actor, reason);
  }

  /** halted → running: continues the wave it stopped in; unfinished jobs are sent again. */
  resume(id: string, actor: CampaignActor, reason: string | null): Promise<ResumeOutcome> {
    return this.#actions.resume(id, actor, reason);
  }

  /** Back to each updated device's previous version (rollback.ts). */
  rollback(
    id: string,
    actor: CampaignActor,
    reason: string | null,
    options: RollbackOptions = {},
  ): Promise<RollbackOutcome> {
    return rollbackCampaign(this.#ctx, id, actor, reason, options, (rollbackId) =>
      this.startCampaign(rollbackId, actor, reason),
    );
  }

  // ---- reads ----

  waveSummaries(c: CampaignRecord): Promise<WaveSummary[]> {
    return waveSummaries(this.#ctx.storage.campaigns, c);
  }

  // ---- device reports ----

  #onReport(topic: string, payload: Buffer, publisherId: string | null): void {
    const deviceId = statusTopicDevice(topic);
    if (deviceId === undefined || publisherId !== deviceId) {
      this.spoofedReports++;
      return;
    }
    const report = parseStatusReport(payload);
    if (report === null) return;
    this.#queue
      .run(async () => {
        const running = await applyReport(this.#ctx, this.#publisher, deviceId, report);
        if (running !== null) this.#scheduler.requestEvaluate(running);
      })
      .catch(() => {}); // logged by the queue
  }
}
