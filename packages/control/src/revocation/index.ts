export { activeEntries, denylistEntries, denylistKey } from './denylist.js';
export { enforce, liveVictims, NO_AUTH_WARNING, NO_BROKER_WARNING } from './enforce.js';
export { REVOCATIONS_MIGRATION } from './migration.js';
export { SqlRevocations } from './repository.js';
export {
  createRevocation,
  type RevertOutcome,
  type RevokeInput,
  type RevokeOutcome,
  revertRevocation,
  revokeDeletedDeviceTokens,
} from './revoke.js';
export { revocationRoutes } from './routes.js';
export { RevocationView, RevokeBody } from './schemas.js';
export { revocationService } from './service.js';
export * from './types.js';
