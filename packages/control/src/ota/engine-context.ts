/** What the parts of the campaign engine share (engine.ts builds it, the parts receive it). */
import type { Clock } from '@breakwater/broker';
import type { Logger } from 'pino';
import type { AuditRepository } from '../audit/model.js';
import type { DeviceRepository } from '../devices/model.js';
import { ApiError } from '../errors.js';
import type { FleetBroker } from '../fleet-broker.js';
import type { Transactional } from '../storage/transactional.js';
import type { CampaignEvents } from './events.js';
import type { CampaignRecord, CampaignRepository } from './types.js';

/** What the engine reads and writes: campaigns, the registry (targets, firmware versions), audit. */
export interface CampaignRepositories {
  readonly campaigns: CampaignRepository;
  readonly devices: DeviceRepository;
  readonly audit: AuditRepository;
}

export interface EngineContext {
  readonly storage: Transactional<CampaignRepositories>;
  readonly clock: Clock;
  readonly fleet: FleetBroker | null;
  readonly logger: Logger | null;
  /** Never throws (events.ts `guardedEvents`). */
  readonly events: CampaignEvents;
  /**
   * Campaigns a halt was requested for. A halt marks its campaign here before it waits for its
   * turn in the serial queue; the notify loops check the mark before every chunk, so no device
   * is notified once a halt was asked for.
   */
  readonly stopNotifying: Set<string>;
  /** True once the engine is closed (until it starts again): loops stop, no timer is set. */
  closed(): boolean;
  /** Queues `fn` behind every operation already queued (serial-queue.ts). */
  serial<T>(fn: () => Promise<T>): Promise<T>;
}

/** 409: the campaign is not in a state that allows this. */
export function conflict(detail: string): ApiError {
  return new ApiError('BW_ERR_CAMPAIGN_STATE', detail);
}

export async function requireCampaign(ctx: EngineContext, id: string): Promise<CampaignRecord> {
  const c = await ctx.storage.campaigns.get(id);
  if (!c) throw new ApiError('BW_ERR_API_NOT_FOUND', `campaign ${id}`);
  return c;
}

export function requireFleet(ctx: EngineContext): FleetBroker {
  if (ctx.fleet === null) throw conflict('no broker attached: this control plane cannot run campaigns');
  return ctx.fleet;
}
