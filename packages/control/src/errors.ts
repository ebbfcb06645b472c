import { BreakwaterError, type ErrorCode } from '@breakwater/broker';

/**
 * A control-plane error: a catalog code (the HTTP status comes from the catalog) plus, for
 * validation errors, the field it is about, so API clients can point at it
 * (`{ error: { code, message, field } }`).
 */
export class ApiError extends BreakwaterError {
  readonly field: string | undefined;

  constructor(code: ErrorCode, detail?: string, options?: { field?: string; cause?: unknown }) {
    super(code, detail, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'ApiError';
    this.field = options?.field;
  }
}

/** Storage: a unique key (device id, …) already exists. The HTTP layer answers 409. */
export class DuplicateKeyError extends ApiError {
  constructor(what: string, options?: { cause?: unknown }) {
    super('BW_ERR_API_CONFLICT', what, options);
    this.name = 'DuplicateKeyError';
  }
}
