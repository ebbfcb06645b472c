/**
 * @breakwater/device: the device side of Breakwater. A device that reconnects like a fleet, not
 * like a single device (issue 4, DESIGN.md §3).
 */

export {
  type Credentials,
  type IssuedToken,
  SIGNATURE_HEADER,
  signBody,
  type TokenProvider,
} from './credentials.js';
export {
  type AuthBreakerOpenEvent,
  type ClientFactory,
  type Command,
  type CommandHandler,
  type ConfigEvent,
  type ConfigHandler,
  type ConnectedEvent,
  createDevice,
  type DesiredConfig,
  Device,
  type DeviceCounters,
  type DeviceEvents,
  type DeviceOptions,
  type DeviceState,
  type DeviceTlsOptions,
  type DisconnectedEvent,
  type ReconnectingEvent,
  readRetryAfterMs,
} from './device.js';
export { DeviceError, DeviceErrorCatalog, type DeviceErrorCode } from './errors.js';
export { type OobOptions, type OobReport, OobReporter, type OobStats } from './oob.js';
export {
  downloadArtifact,
  type OtaArtifact,
  type OtaContext,
  type OtaHandler,
  type OtaJob,
  OtaStatus,
  type OtaStatusReport,
  type OtaStatusValue,
  parseOtaMessage,
} from './ota.js';
export * from './policy.js';
export { type Scheduler, systemScheduler } from './scheduler.js';
export { resolveServerReference, ServerRotation } from './servers.js';
