import { BreakwaterError, type ErrorCode } from '../errors.js';

/** The catalog codes the guard raises (their rows live in ../errors.ts and docs/errors.md). */
export type GuardErrorCode = Extract<
  ErrorCode,
  | 'BW_ERR_GUARD_CONFIG'
  | 'BW_ERR_AUTH_BACKEND'
  | 'BW_ERR_AUTH_TIMEOUT'
  | 'BW_ERR_AUTH_BREAKER_OPEN'
  | 'BW_ERR_AUTH_RATE_LIMITED'
  | 'BW_ERR_AUTH_BULKHEAD_FULL'
  | 'BW_ERR_AUTH_HASH_FORMAT'
  | 'BW_ERR_PASSWORD_FILE'
>;

/** A BreakwaterError raised by the guard (authentication half); `instanceof GuardError` still works. */
export class GuardError extends BreakwaterError {
  declare readonly code: GuardErrorCode;

  constructor(code: GuardErrorCode, detail?: string, options?: { cause?: unknown }) {
    super(code, detail, options);
    this.name = 'GuardError';
  }
}
