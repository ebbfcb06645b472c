export { type AuthDecision, AuthEngine } from './auth-engine.js';
export { looksLikeJwt } from './authenticators/jwt.js';
export { parsePasswordFile, upsertPasswordEntry } from './authenticators/password-file.js';
export type { Authenticator, AuthRequest, AuthResult } from './authenticators/types.js';
export { type AuthzExplanation, type AuthzOptions, intersects, isSubset, TopicAuthorizer } from './authz.js';
export {
  type AuthzAction,
  type AuthzPermission,
  type AuthzRule,
  AuthzRuleError,
  authzActions,
  authzPermissions,
  compileRule,
  formatRule,
  formatRules,
  type ParsedRule,
  type Principal,
  parseRulesText,
  RulesTextError,
} from './authz-rules.js';
export { AuthzRulesFile, defaultRulesFile, type RulesFileError } from './authz-rules-file.js';
export { BackendGate } from './backend-gate.js';
export { BreakerState, CircuitBreaker } from './circuit-breaker.js';
export { AuthzRuleSchema, type GuardConfig, guardConfigSchema, resolveGuardConfig } from './config.js';
export { GuardError, type GuardErrorCode } from './errors.js';
export {
  type AuthzQuery,
  type AuthzRulesView,
  type BypassState,
  Guard,
  type GuardDecision,
  type GuardDeps,
} from './guard.js';
export { type KnownGood, KnownGoodStore } from './known-good-store.js';
export { AuthOutcome, GuardMetrics } from './metrics.js';
export {
  type ColumnHashOptions,
  DEFAULT_HASH_COST,
  type HashCost,
  hashPassword,
  hashPasswordScrypt,
  type PasswordFormat,
  passwordFormats,
  verifyPassword,
} from './password-hash.js';
export { type RevocationEntry, RevocationList } from './revocation.js';
