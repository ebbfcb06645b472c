export { isUniqueViolation, type SqlExecutor } from './executor.js';
export { SCHEMA_VERSION } from './migrations.js';
export { PostgresControlStorage, type PostgresControlStorageOptions } from './postgres.js';
export { SqliteControlStorage, type SqliteControlStorageOptions } from './sqlite.js';
export type * from './types.js';
export { apiKeyRoles, connectionStates } from './types.js';
