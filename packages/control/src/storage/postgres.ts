/**
 * PostgreSQL driver (`pg`), for deployments where several control-plane processes share one
 * registry. `storage: postgres` in the config. Tables live in one schema (default `breakwater`,
 * created if missing) chosen with the connection's search_path, so tests run each in their own
 * schema and drop it.
 */
import { BreakwaterError } from '@breakwater/broker';
import pg from 'pg';
import { ApiError } from '../errors.js';
import { isUniqueViolation, type SqlExecutor } from './executor.js';
import { pendingMigrations, SCHEMA_VERSION } from './migrations.js';
import { sqlRepositories } from './sql-repositories.js';
import type { ControlStorage, Repositories } from './types.js';

export interface PostgresControlStorageOptions {
  /** e.g. `postgres://postgres@127.0.0.1:5432/test`. */
  connectionString: string;
  /** Schema holding the tables (default `breakwater`). Created if missing. */
  schema?: string;
  /** Pool size (default 5: the control plane is low-rate). */
  maxConnections?: number;
}

/** Any object that can run a query: the pool, or one checked-out client inside a transaction. */
interface Queryable {
  query(text: string, values?: unknown[]): Promise<pg.QueryResult>;
}

function storageError(err: unknown): unknown {
  if (err instanceof ApiError || isUniqueViolation(err)) return err;
  return new BreakwaterError('BW_ERR_STORAGE', (err as Error)?.message, { cause: err });
}

class PgExecutor implements SqlExecutor {
  readonly dialect = 'postgres' as const;
  constructor(private readonly q: Queryable) {}

  async query<R>(sql: string, params: readonly unknown[] = []): Promise<R[]> {
    try {
      return (await this.q.query(sql, [...params])).rows as R[];
    } catch (err) {
      throw storageError(err);
    }
  }

  async execute(sql: string, params: readonly unknown[] = []): Promise<number> {
    try {
      return (await this.q.query(sql, [...params])).rowCount ?? 0;
    } catch (err) {
      throw storageError(err);
    }
  }
}

function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

// Any 64-bit number works; it only has to be the same in every process migrating this database.
const MIGRATION_LOCK = 0x6277_636f_6e74_726fn; // "bwcontro"

export class PostgresControlStorage implements ControlStorage {
  readonly dialect = 'postgres' as const;
  readonly apiKeys: Repositories['apiKeys'];
  readonly audit: Repositories['audit'];
  readonly devices: Repositories['devices'];
  readonly deviceEvents: Repositories['deviceEvents'];
  readonly signingKeys: Repositories['signingKeys'];
  readonly configPushes: Repositories['configPushes'];
  readonly campaigns: Repositories['campaigns'];
  readonly revocations: Repositories['revocations'];
  readonly incidents: Repositories['incidents'];
  readonly #pool: pg.Pool;

  private constructor(pool: pg.Pool) {
    this.#pool = pool;
    const repos = sqlRepositories(new PgExecutor(pool));
    this.apiKeys = repos.apiKeys;
    this.audit = repos.audit;
    this.devices = repos.devices;
    this.deviceEvents = repos.deviceEvents;
    this.signingKeys = repos.signingKeys;
    this.configPushes = repos.configPushes;
    this.campaigns = repos.campaigns;
    this.revocations = repos.revocations;
    this.incidents = repos.incidents;
  }

  /** Connects, creates the schema if needed and migrates it (under an advisory lock). */
  static async open(options: PostgresControlStorageOptions): Promise<PostgresControlStorage> {
    const schema = options.schema ?? 'breakwater';
    if (!/^[A-Za-z_][A-Za-z0-9_]{0,62}$/.test(schema)) {
      throw new BreakwaterError(
        'BW_ERR_CONFIG_INVALID',
        `storage.postgres.schema: not a plain identifier: ${schema}`,
      );
    }
    const pool = new pg.Pool({
      connectionString: options.connectionString,
      max: options.maxConnections ?? 5,
      // search_path per connection: every unqualified table name resolves in our schema.
      options: `-c search_path=${schema}`,
    });
    // An idle client that loses its connection emits 'error' on the pool; without a listener
    // that would crash the process. The next query gets a fresh connection.
    pool.on('error', () => {});
    const storage = new PostgresControlStorage(pool);
    try {
      const client = await pool.connect();
      try {
        await client.query('BEGIN');
        await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK.toString()]);
        await client.query(`CREATE SCHEMA IF NOT EXISTS ${quoteIdent(schema)}`);
        await client.query('CREATE TABLE IF NOT EXISTS control_schema (version INTEGER NOT NULL)');
        const { rows } = await client.query<{ version: number }>('SELECT version FROM control_schema');
        const from = rows[0]?.version ?? 0;
        if (from > SCHEMA_VERSION) {
          throw new Error(
            `schema ${schema} is at version ${from}, newer than this Breakwater (${SCHEMA_VERSION})`,
          );
        }
        for (const ddl of pendingMigrations('postgres', from)) await client.query(ddl);
        if (rows[0]) await client.query('UPDATE control_schema SET version = $1', [SCHEMA_VERSION]);
        else await client.query('INSERT INTO control_schema (version) VALUES ($1)', [SCHEMA_VERSION]);
        await client.query('COMMIT');
      } catch (err) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw err;
      } finally {
        client.release();
      }
    } catch (err) {
      await pool.end().catch(() => undefined);
      throw new BreakwaterError(
        'BW_ERR_STORAGE',
        `cannot open PostgreSQL storage: ${(err as Error).message}`,
        {
          cause: err,
        },
      );
    }
    return storage;
  }

  async transaction<T>(fn: (repos: Repositories) => Promise<T>): Promise<T> {
    let client: pg.PoolClient;
    try {
      client = await this.#pool.connect();
    } catch (err) {
      throw storageError(err);
    }
    try {
      await client.query('BEGIN');
      const result = await fn(sqlRepositories(new PgExecutor(client)));
      await client.query('COMMIT');
      return result;
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      client.release();
    }
  }

  async schemaVersion(): Promise<number> {
    const { rows } = await this.#pool.query<{ version: number }>('SELECT version FROM control_schema');
    return Number(rows[0]?.version ?? 0);
  }

  async close(): Promise<void> {
    await this.#pool.end();
  }
}
