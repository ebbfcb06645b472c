/**
 * Column mapping of the PostgreSQL sink: each column gets a value expression, compiled once.
 *
 * `$id` message id · `$topic` · `$topic.N` topic level N (0-based) · `$publisher` ·
 * `$receivedAt` (Date → timestamptz) · `$payload` (bytea) · `$text` (UTF-8 text) · `$json` (the
 * payload text, for json/jsonb columns: PostgreSQL checks it) · `$json.a.b` (one field of the JSON
 * payload; a payload that is not JSON is rejected into the DLQ). Anything else is a literal.
 */
import { BreakwaterError } from '@breakwater/broker';
import { pick } from '../rules/condition.js';
import type { BufferedMessage } from '../types.js';

/** Parsed JSON per message, shared by the columns of one row. */
export interface RowScratch {
  json: unknown;
  parsed: boolean;
}

export type ColumnValue = (m: BufferedMessage, scratch: RowScratch) => unknown;

export class PayloadNotJsonError extends Error {}

export function compileColumn(column: string, expr: string): ColumnValue {
  if (!expr.startsWith('$')) return () => expr;
  if (expr === '$id') return (m) => m.msgId;
  if (expr === '$topic') return (m) => m.topic;
  if (expr === '$publisher') return (m) => m.publisher;
  if (expr === '$receivedAt') return (m) => new Date(m.receivedAt);
  if (expr === '$payload') return (m) => m.payload;
  if (expr === '$text' || expr === '$json') return (m) => m.payload.toString('utf8');
  const level = /^\$topic\.(\d+)$/.exec(expr);
  if (level) {
    const n = Number(level[1]);
    return (m) => m.topic.split('/')[n] ?? null;
  }
  if (expr.startsWith('$json.')) {
    const path = expr.slice('$json.'.length).split('.');
    return (m, scratch) => {
      const v = pick(parsedJson(m, scratch), path);
      if (v === undefined) return null;
      // Objects and arrays go to json/jsonb columns as text.
      return v !== null && typeof v === 'object' ? JSON.stringify(v) : v;
    };
  }
  throw new BreakwaterError(
    'BW_ERR_CONFIG_INVALID',
    `column ${column}: unknown value ${JSON.stringify(expr)} (use $id, $topic, $topic.N, $publisher, $receivedAt, $payload, $text, $json, $json.<path>)`,
  );
}

function parsedJson(m: BufferedMessage, scratch: RowScratch): unknown {
  if (!scratch.parsed) {
    scratch.parsed = true;
    try {
      scratch.json = JSON.parse(m.payload.toString('utf8'));
    } catch {
      throw new PayloadNotJsonError('the payload is not JSON (a column maps $json.<path>)');
    }
  }
  return scratch.json;
}
