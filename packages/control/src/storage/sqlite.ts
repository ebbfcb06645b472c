/**
 * SQLite driver (better-sqlite3): the embedded default, one file in the data dir
 * (`<dataDir>/control.db`, separate from the broker's breakwater.db so the broker's group-commit
 * transaction never interleaves with control-plane transactions).
 *
 * better-sqlite3 is synchronous, but a repository transaction is async (it awaits hashing,
 * validation, several statements). With one connection, any statement issued while a
 * transaction is open would join it — and be rolled back with it. So every operation takes a
 * FIFO lock; a transaction holds it from BEGIN to COMMIT and its repositories run unlocked.
 * Control-plane traffic is low-rate, so serialising it costs nothing that matters.
 */
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { BreakwaterError } from '@breakwater/broker';
import Database from 'better-sqlite3';
import { ApiError } from '../errors.js';
import { isUniqueViolation, type SqlExecutor } from './executor.js';
import { pendingMigrations, SCHEMA_VERSION } from './migrations.js';
import { sqlRepositories } from './sql-repositories.js';
import type { ControlStorage, Repositories } from './types.js';

export interface SqliteControlStorageOptions {
  /** Database file (`:memory:` for tests). Its directory is created if missing. */
  file: string;
}

/** `$1`-style SQL → `?` plus which parameter goes to each `?` (placeholders may repeat). */
interface SqliteSql {
  sql: string;
  order: number[];
}

// Repositories use a small set of SQL texts; compiling each once keeps regex work off hot paths
// such as presence updates during a reconnect storm. Bounded like the statement cache.
const compiled = new Map<string, SqliteSql>();

function toSqlite(sql: string, params: readonly unknown[]): { sql: string; args: unknown[] } {
  let c = compiled.get(sql);
  if (c === undefined) {
    const order: number[] = [];
    const out = sql.replace(/\$(\d+)/g, (_, n: string) => {
      order.push(Number(n) - 1);
      return '?';
    });
    c = { sql: out, order };
    if (compiled.size > 1000) compiled.clear();
    compiled.set(sql, c);
  }
  const args = new Array<unknown>(c.order.length);
  for (let i = 0; i < c.order.length; i++) args[i] = params[c.order[i]!];
  return { sql: c.sql, args };
}

class FifoLock {
  #tail: Promise<unknown> = Promise.resolve();

  run<T>(fn: () => Promise<T> | T): Promise<T> {
    const result = this.#tail.then(fn);
    // The next waiter starts when this one settles, whether it failed or not.
    this.#tail = result.catch(() => undefined);
    return result;
  }
}

function storageError(err: unknown): unknown {
  // Domain errors pass through; unique violations are mapped to 409 by the repositories.
  if (err instanceof ApiError || isUniqueViolation(err)) return err;
  return new BreakwaterError('BW_ERR_STORAGE', (err as Error)?.message, { cause: err });
}

class SqliteExecutor implements SqlExecutor {
  readonly dialect = 'sqlite' as const;
  readonly #db: Database.Database;
  readonly #lock: FifoLock | null;
  readonly #stmts = new Map<string, Database.Statement>();

  constructor(db: Database.Database, lock: FifoLock | null) {
    this.#db = db;
    this.#lock = lock;
  }

  #prepare(sql: string): Database.Statement {
    let stmt = this.#stmts.get(sql);
    if (!stmt) {
      stmt = this.#db.prepare(sql);
      // Selector queries vary with their criteria; keep the cache bounded.
      if (this.#stmts.size > 500) this.#stmts.clear();
      this.#stmts.set(sql, stmt);
    }
    return stmt;
  }

  #sync<T>(fn: () => T): Promise<T> {
    const run = () => {
      try {
        return fn();
      } catch (err) {
        throw storageError(err);
      }
    };
    return this.#lock ? this.#lock.run(run) : Promise.resolve().then(run);
  }

  query<R>(sql: string, params: readonly unknown[] = []): Promise<R[]> {
    const q = toSqlite(sql, params);
    return this.#sync(() => this.#prepare(q.sql).all(...q.args) as R[]);
  }

  execute(sql: string, params: readonly unknown[] = []): Promise<number> {
    const q = toSqlite(sql, params);
    return this.#sync(() => {
      const stmt = this.#prepare(q.sql);
      // INSERT … RETURNING is a reader; run() would refuse it.
      return stmt.reader ? stmt.all(...q.args).length : stmt.run(...q.args).changes;
    });
  }
}

export class SqliteControlStorage implements ControlStorage {
  readonly dialect = 'sqlite' as const;
  readonly apiKeys: Repositories['apiKeys'];
  readonly audit: Repositories['audit'];
  readonly devices: Repositories['devices'];
  readonly deviceEvents: Repositories['deviceEvents'];
  readonly signingKeys: Repositories['signingKeys'];
  readonly configPushes: Repositories['configPushes'];
  readonly campaigns: Repositories['campaigns'];
  readonly revocations: Repositories['revocations'];
  readonly incidents: Repositories['incidents'];
  readonly #db: Database.Database;
  readonly #lock = new FifoLock();
  readonly #txRepos: Repositories;

  private constructor(db: Database.Database) {
    this.#db = db;
    const repos = sqlRepositories(new SqliteExecutor(db, this.#lock));
    this.apiKeys = repos.apiKeys;
    this.audit = repos.audit;
    this.devices = repos.devices;
    this.deviceEvents = repos.deviceEvents;
    this.signingKeys = repos.signingKeys;
    this.configPushes = repos.configPushes;
    this.campaigns = repos.campaigns;
    this.revocations = repos.revocations;
    this.incidents = repos.incidents;
    this.#txRepos = sqlRepositories(new SqliteExecutor(db, null));
  }

  /** Opens (creating if needed) and migrates the database. */
  static open(options: SqliteControlStorageOptions): SqliteControlStorage {
    let db: Database.Database;
    try {
      if (options.file !== ':memory:') mkdirSync(dirname(options.file), { recursive: true });
      db = new Database(options.file);
      db.pragma('journal_mode = WAL');
      db.pragma('busy_timeout = 5000');
      db.exec('CREATE TABLE IF NOT EXISTS control_schema (version INTEGER NOT NULL)');
      db.transaction(() => {
        const row = db.prepare('SELECT version FROM control_schema').get() as { version: number } | undefined;
        const from = row?.version ?? 0;
        if (from > SCHEMA_VERSION) {
          throw new Error(
            `control.db schema version ${from} is newer than this Breakwater (${SCHEMA_VERSION})`,
          );
        }
        for (const ddl of pendingMigrations('sqlite', from)) db.exec(ddl);
        if (row) db.prepare('UPDATE control_schema SET version = ?').run(SCHEMA_VERSION);
        else db.prepare('INSERT INTO control_schema (version) VALUES (?)').run(SCHEMA_VERSION);
      })();
    } catch (err) {
      throw new BreakwaterError('BW_ERR_STORAGE', `cannot open ${options.file}: ${(err as Error).message}`, {
        cause: err,
      });
    }
    return new SqliteControlStorage(db);
  }

  transaction<T>(fn: (repos: Repositories) => Promise<T>): Promise<T> {
    return this.#lock.run(async () => {
      this.#db.exec('BEGIN IMMEDIATE');
      try {
        const result = await fn(this.#txRepos);
        this.#db.exec('COMMIT');
        return result;
      } catch (err) {
        if (this.#db.inTransaction) this.#db.exec('ROLLBACK');
        throw err;
      }
    });
  }

  async schemaVersion(): Promise<number> {
    return this.#lock.run(
      () => (this.#db.prepare('SELECT version FROM control_schema').get() as { version: number }).version,
    );
  }

  async close(): Promise<void> {
    await this.#lock.run(() => this.#db.close());
  }
}
