/** OTA campaigns and the OTA-halt kill switch (issue 5, kill switch 3). */
export { otaGateAlerts } from './alerts.js';
export { assignWaves, cumulativeCounts, rankOf } from './assignment.js';
export {
  acceptTransition,
  type CampaignActor,
  CampaignEngine,
  type CampaignEngineOptions,
  type CampaignEvents,
  DEFAULT_GATE,
  type HaltOutcome,
  jobPayload,
  type NewCampaign,
  OTA_STATUS_FILTER,
  otaTopic,
  type ResumeOutcome,
  type RollbackOutcome,
  validateWaves,
  type WaveSummary,
} from './engine.js';
export { countsToHealth, failureGate, type GateVerdict, soakGate, type WaveHealth } from './gates.js';
export { SqlCampaigns } from './repository.js';
export { campaignRoutes } from './routes.js';
export * from './types.js';
