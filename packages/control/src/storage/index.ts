// The storage surface of the package: the drivers, the aggregate, and the record and repository
// types of every feature that lives in the core registry (devices, API keys, audit, signing keys).
export type { AuditEntry, AuditFilter, AuditRecord, AuditRepository } from '../audit/model.js';
export { type ApiKeyRecord, type ApiKeyRepository, type ApiKeyRole, apiKeyRoles } from '../auth/model.js';
export { type ConnectionState, connectionStates } from '../devices/connection-state.js';
export type {
  DevicePatch,
  DeviceRecord,
  DeviceRepository,
  NewDevice,
  PresenceUpdate,
} from '../devices/model.js';
export type { SigningKeyRecord, SigningKeyRepository } from '../tokens/model.js';
export { isUniqueViolation, type SqlExecutor, type StorageDialect } from './executor.js';
export { SCHEMA_VERSION } from './migrations.js';
export type { Page } from './page.js';
export { PostgresControlStorage, type PostgresControlStorageOptions } from './postgres.js';
export { SqliteControlStorage, type SqliteControlStorageOptions } from './sqlite.js';
export type { ControlStorage, Repositories } from './types.js';
