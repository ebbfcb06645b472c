/** Campaign engine → alerting: a gate halt raises `ota-gate-failed`; resume or rollback clears it. */
import type { AlertEngine } from '../alerts/engine.js';
import type { CampaignEvents } from './events.js';

export function otaGateAlerts(alerts: Pick<AlertEngine, 'raise' | 'clear'>): CampaignEvents {
  return {
    gateFailed: (e) =>
      alerts.raise('ota-gate-failed', {
        labels: { campaign: e.campaignId, wave: String(e.wave) },
        value: e.value,
        summary: `OTA campaign "${e.name}" halted: ${e.reason}`,
      }),
    gateHaltResolved: (e) => {
      alerts.clear('ota-gate-failed', { campaign: e.campaignId, wave: String(e.wave) }, `campaign ${e.how}`);
    },
  };
}
