export * from './alerts/index.js';
export { generateApiKey, hashApiKey, roleAllows } from './auth/api-keys.js';
export * from './config-push/index.js';
export {
  DEFAULT_DEVICE_EVENTS_PER_DEVICE,
  DEVICE_EVENT_KINDS,
  type DeviceEventKind,
  type DeviceEventRecord,
} from './devices/events.js';
export { DevicePresence, type DevicePresenceOptions } from './devices/presence.js';
export { AttemptLimiter, type AttemptLimiterOptions } from './devices/rate-limit.js';
export { generateDeviceSecret, hashDeviceSecret, verifyDeviceSecret } from './devices/secret.js';
export { SelectorResolver } from './devices/selector-resolver.js';
export { ApiError, DuplicateKeyError } from './errors.js';
export {
  brokerFleet,
  type FleetAuthz,
  type FleetBroker,
  type FleetMessageHandler,
  type FleetPresenceListener,
  type FleetRevocations,
} from './fleet-broker.js';
export {
  ADMIN_KEY_FILE,
  type ControlPlane,
  type ControlPlaneOptions,
  type ControlService,
  createControlPlane,
} from './http/app.js';
export type { Access, Actor } from './http/context.js';
export { type Labels, MetricHistory, type SeriesKind, seriesKey } from './metrics-history/history.js';
export { RegistrySampler } from './metrics-history/sampler.js';
export * from './ota/index.js';
export * from './revocation/index.js';
export { isEmptySelector, requireTargeted, type Selector, SelectorSchema } from './selector.js';
export * from './storage/index.js';
export { type MintedToken, SIGNING_ALG, TokenIssuer, type TokenIssuerOptions } from './tokens/issuer.js';
export { KEK_FILE, loadOrCreateKek } from './tokens/key-encryption.js';
