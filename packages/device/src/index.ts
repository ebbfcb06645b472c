/**
 * @breakwater/device: the device side of Breakwater. A device that reconnects like a fleet, not
 * like a single device (issue 4, DESIGN.md §3).
 */

export type { Command, CommandHandler } from './commands.js';
export { readRetryAfterMs } from './connection-attempt.js';
export {
  type Credentials,
  type IssuedToken,
  SIGNATURE_HEADER,
  signBody,
  type TokenProvider,
} from './credentials.js';
export type { ConfigEvent, ConfigHandler, DesiredConfig } from './desired-config.js';
export { createDevice, Device } from './device.js';
export type {
  AuthBreakerOpenEvent,
  ConnectedEvent,
  DeviceCounters,
  DeviceEvents,
  DeviceState,
  DisconnectedEvent,
  ReconnectingEvent,
} from './device-events.js';
export type { ClientFactory, DeviceOptions, DeviceTlsOptions } from './device-options.js';
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
