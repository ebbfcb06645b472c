import type { Logger } from 'pino';

/** What the engine tells the rest of the control plane (alerting: the `ota-gate-failed` rule). */
export interface CampaignEvents {
  /** A wave failed its gate and the campaign halted itself. `wave` is 1-based. */
  gateFailed(e: { campaignId: string; name: string; wave: number; reason: string; value: number }): void;
  /** An operator resumed or rolled back a campaign that a gate had halted. */
  gateHaltResolved(e: { campaignId: string; wave: number; how: 'resumed' | 'rolled back' }): void;
}

/**
 * The listener behind a catch: a failing listener is logged, never allowed to fail the halt,
 * resume or rollback that emitted the event (those are already stored and audited).
 */
export function guardedEvents(events: CampaignEvents | null, logger: Logger | null): CampaignEvents {
  const guard = (fn: () => void): void => {
    try {
      fn();
    } catch (err) {
      logger?.error({ err }, 'ota campaign event listener failed');
    }
  };
  return {
    gateFailed: (e) => guard(() => events?.gateFailed(e)),
    gateHaltResolved: (e) => guard(() => events?.gateHaltResolved(e)),
  };
}
