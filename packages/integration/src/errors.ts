import { BreakwaterError } from '@breakwater/broker';

/** The sink cannot take anything now (down, timing out, 5xx): the batch stays buffered and is retried. */
export class SinkUnavailableError extends BreakwaterError {
  constructor(sink: string, detail: string, options?: { cause?: unknown }) {
    super('BW_ERR_SINK_UNAVAILABLE', `${sink}: ${detail}`, options);
    this.name = 'SinkUnavailableError';
  }
}

/** The sink refused this message for what it is (bad data): it goes to the dead-letter queue. */
export class SinkRejectedError extends BreakwaterError {
  constructor(sink: string, detail: string, options?: { cause?: unknown }) {
    super('BW_ERR_SINK_REJECTED', `${sink}: ${detail}`, options);
    this.name = 'SinkRejectedError';
  }
}

/** The error's message, one line, for logs, the API and DLQ entries. */
export function errorText(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  return text.replace(/\s*\n\s*/g, ' ').slice(0, 1000);
}

/** BW_ERR_* code of an error, or a generic one. */
export function errorCode(err: unknown): string {
  if (err instanceof BreakwaterError) return err.code;
  return 'BW_ERR_SINK_UNAVAILABLE';
}
