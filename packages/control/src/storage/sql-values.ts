/**
 * What every repository needs to turn driver rows into records and build portable SQL:
 * PostgreSQL returns BIGINT as strings and SQLite returns numbers, so conversions go through here.
 */
import { ApiError } from '../errors.js';

export type Row = Record<string, unknown>;

export function num(v: unknown): number {
  return typeof v === 'number' ? v : Number(v);
}

export function numOrNull(v: unknown): number | null {
  return v === null || v === undefined ? null : num(v);
}

export function strOrNull(v: unknown): string | null {
  return v === null || v === undefined ? null : String(v);
}

/** A JSON column (TEXT) parsed, or null. */
export function jsonOrNull<T = Record<string, unknown>>(v: unknown): T | null {
  return v === null || v === undefined ? null : (JSON.parse(String(v)) as T);
}

/** Collects parameters and hands out their `$n` placeholders. */
export class Params {
  readonly values: unknown[] = [];
  add(v: unknown): string {
    this.values.push(v);
    return `$${this.values.length}`;
  }
  /** `$1, $2, …` for an IN list. */
  list(vs: readonly unknown[]): string {
    return vs.map((v) => this.add(v)).join(', ');
  }
}

export function encodeCursor(value: string): string {
  return Buffer.from(value, 'utf8').toString('base64url');
}

/** The value of a cursor this API handed out; anything else is a 400 naming `cursor`. */
export function decodeCursor(cursor: string): string {
  const value = Buffer.from(cursor, 'base64url').toString('utf8');
  // Round-trip check: anything that is not our own encoding is rejected rather than guessed at.
  if (value.length === 0 || encodeCursor(value) !== cursor) {
    throw new ApiError('BW_ERR_API_VALIDATION', 'cursor is not a cursor returned by this API', {
      field: 'cursor',
    });
  }
  return value;
}

/**
 * The keyset condition `seq < <cursor>` for a page after `cursor` (a cursor this API returned
 * for a table ordered by `seq DESC`); a 400 naming `cursor` for anything else.
 */
export function seqBefore(cursor: string, p: Params): string {
  const seq = decodeCursor(cursor);
  if (!/^\d+$/.test(seq)) {
    throw new ApiError('BW_ERR_API_VALIDATION', 'cursor is not a cursor returned by this API', {
      field: 'cursor',
    });
  }
  return `seq < ${p.add(Number(seq))}`;
}
