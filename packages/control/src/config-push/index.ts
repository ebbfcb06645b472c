export { canonicalJson, configHash, MAX_CONFIG_BYTES, mergePatch } from './document.js';
export {
  type ConfigPushRepository,
  type DeviceConfigRecord,
  type DriftRecord,
  type DriftStatus,
  type DriftSummary,
  driftStatuses,
} from './model.js';
export { ConfigPusher, configTopic, type PushInput, type PushResult, type PushTarget } from './pusher.js';
export { type ConfigReportCounters, ConfigReportFollower, REPORTED_FILTER } from './reports.js';
export { configPusherFor, configPushRoutes } from './routes.js';
