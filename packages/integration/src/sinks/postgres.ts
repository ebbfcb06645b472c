/**
 * PostgreSQL sink (`pg`): one multi-row INSERT per batch into the table you map, through a small
 * pool. With `onConflict: ignore` the INSERT says ON CONFLICT DO NOTHING: map `$id` to a column
 * with a unique index and a batch delivered twice (at-least-once) inserts each message once.
 *
 * Errors: SQLSTATE class 22 (data exception: bad JSON for jsonb, value out of range…) and 23
 * (integrity constraint) are about the data — the batch is split to find the rows PostgreSQL
 * refuses, which go to the DLQ. Everything else (connection refused, authentication, missing table,
 * timeouts) is the sink being unavailable: retried, never dead-lettered.
 */
import type { PostgresSinkConfig } from '@breakwater/broker';
import pg from 'pg';
import { SinkRejectedError, SinkUnavailableError } from '../errors.js';
import { type BufferedMessage, DELIVERED, type DeliveryOutcome, type Sink } from '../types.js';
import { bisect } from './bisect.js';
import { type ColumnValue, compileColumn, PayloadNotJsonError, type RowScratch } from './column-values.js';

/** PostgreSQL caps bind parameters per statement at 65,535. */
const MAX_PARAMS = 65_535;

export class PostgresSink implements Sink {
  readonly type = 'postgres' as const;
  readonly name: string;
  readonly #pool: pg.Pool;
  readonly #columns: readonly string[];
  readonly #values: readonly ColumnValue[];
  readonly #sqlPrefix: string;
  readonly #sqlSuffix: string;

  constructor(name: string, config: PostgresSinkConfig) {
    this.name = name;
    const entries = Object.entries(config.columns);
    this.#columns = entries.map(([c]) => c);
    this.#values = entries.map(([c, expr]) => compileColumn(c, expr));
    const table = config.table
      .split('.')
      .map((p) => `"${p}"`)
      .join('.');
    this.#sqlPrefix = `INSERT INTO ${table} (${this.#columns.map((c) => `"${c}"`).join(', ')}) VALUES `;
    this.#sqlSuffix = config.onConflict === 'ignore' ? ' ON CONFLICT DO NOTHING' : '';
    this.#pool = new pg.Pool({
      connectionString: config.url,
      max: config.poolSize,
      connectionTimeoutMillis: config.timeoutMs,
      query_timeout: config.timeoutMs,
      idleTimeoutMillis: 30_000,
      application_name: `breakwater-sink-${name}`,
    });
    // An idle client losing its server must not crash the process: the next query reconnects.
    this.#pool.on('error', () => {});
  }

  async deliver(batch: readonly BufferedMessage[]): Promise<DeliveryOutcome> {
    const perStatement = Math.max(1, Math.floor(MAX_PARAMS / this.#columns.length));
    if (batch.length <= perStatement) return bisect(batch, (part) => this.#insert(part));
    const rejected: DeliveryOutcome['rejected'] = [];
    for (let i = 0; i < batch.length; i += perStatement) {
      const out = await bisect(batch.slice(i, i + perStatement), (part) => this.#insert(part), i);
      rejected.push(...out.rejected);
    }
    return { rejected };
  }

  async #insert(batch: readonly BufferedMessage[]): Promise<DeliveryOutcome> {
    const params: unknown[] = [];
    const rows: string[] = [];
    const n = this.#columns.length;
    for (const m of batch) {
      const scratch: RowScratch = { json: undefined, parsed: false };
      const base = params.length;
      try {
        for (const value of this.#values) params.push(value(m, scratch));
      } catch (err) {
        if (err instanceof PayloadNotJsonError)
          throw new SinkRejectedError(this.name, err.message, { cause: err });
        throw err;
      }
      let row = '(';
      for (let c = 1; c <= n; c++) row += c === 1 ? `$${base + c}` : `, $${base + c}`;
      rows.push(`${row})`);
    }
    try {
      await this.#pool.query(this.#sqlPrefix + rows.join(', ') + this.#sqlSuffix, params);
      return DELIVERED;
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      const detail = `${(err as Error).message}${typeof code === 'string' ? ` (SQLSTATE ${code})` : ''}`;
      if (typeof code === 'string' && (code.startsWith('22') || code.startsWith('23')))
        throw new SinkRejectedError(this.name, detail, { cause: err });
      throw new SinkUnavailableError(this.name, detail, { cause: err });
    }
  }

  async close(): Promise<void> {
    await this.#pool.end();
  }
}
