import type { Clock } from '@breakwater/broker';
import type { AuditRepository } from '../audit/model.js';

/** Who asked (an API key), written to the audit log with the change. */
export interface CampaignActor {
  id: string;
  name: string;
}

/**
 * The engine acting by itself (gate halt, next wave, completion). `haltedBy === ENGINE_ACTOR.id`
 * marks a halt as automatic: resuming it overrides the gate, and clears the gate alert.
 */
export const ENGINE_ACTOR: CampaignActor = { id: 'system', name: 'ota campaign engine' };

/** One audit entry about a campaign; call it inside the transaction of the change it describes. */
export function auditCampaign(
  tx: { readonly audit: AuditRepository },
  clock: Clock,
  actor: CampaignActor,
  action: string,
  campaignId: string,
  reason: string | null,
  details: Record<string, unknown>,
): Promise<number> {
  return tx.audit.append({
    at: clock.now(),
    actorId: actor.id,
    actorName: actor.name,
    action,
    targetType: 'campaign',
    targetId: campaignId,
    reason,
    details,
  });
}
