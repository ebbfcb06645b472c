/** OTA campaigns and the OTA-halt kill switch (issue 5, kill switch 3). */
export { otaGateAlerts } from './alerts.js';
export { assignWaves, cumulativeCounts, rankOf } from './assignment.js';
export type { ResumeOutcome } from './campaign-actions.js';
export type { CampaignActor } from './campaign-audit.js';
export { jobPayload, OTA_STATUS_FILTER, otaTopic } from './device-protocol.js';
export { DEFAULT_GATE, type NewCampaign, validateWaves } from './drafts.js';
export { CampaignEngine, type CampaignEngineOptions } from './engine.js';
export type { CampaignEvents } from './events.js';
export { countsToHealth, failureGate, type GateVerdict, soakGate, type WaveHealth } from './gates.js';
export type { HaltOutcome } from './halt.js';
export { acceptTransition } from './job-reports.js';
export { SqlCampaigns } from './repository.js';
export type { RollbackOutcome } from './rollback.js';
export { campaignRoutes } from './routes.js';
export * from './types.js';
export type { WaveSummary } from './wave-summaries.js';
