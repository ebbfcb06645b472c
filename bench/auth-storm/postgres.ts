/**
 * The auth-storm benchmark's PostgreSQL side (127.0.0.1:5432, trust auth, database `test`): a
 * dedicated schema with the device table, a login role for the broker, the "wrong credential"
 * (the role loses SELECT, as in the guard's storm test — under trust auth a wrong password
 * cannot be simulated, a wrong grant fails the same query the same way), the slow backend (a
 * lookup function that sleeps before it answers), and the query counters the results report.
 */
import { createHash, randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import type { DeviceSpec } from './protocol.js';

export const PG = { host: '127.0.0.1', port: 5432, user: 'postgres', database: 'test' } as const;

/**
 * Fixed, so a run killed half-way is cleaned up by the next one (`create()` drops leftovers first).
 * Schema and role share the name.
 */
export const BENCH_SCHEMA = 'bw_bench_auth_storm';

export class BenchDatabase {
  readonly name = BENCH_SCHEMA;
  readonly #admin = new pg.Client(PG);

  /** The broker's lookup: a plain indexed SELECT. */
  get query(): string {
    return `SELECT password_hash, salt, is_superuser FROM ${this.name}.mqtt_user WHERE username = $1 LIMIT 1`;
  }

  /**
   * The slowed lookup (issue 11, "Postgres slowed to 200 ms per query"): the same row, through a
   * function that first sleeps `slowMs` on the server (`lookup_slow`, created by `create()`).
   */
  slowQuery(slowMs: number): string {
    return `SELECT password_hash, salt, is_superuser FROM ${this.name}.lookup_slow($1, ${slowMs / 1000})`;
  }

  async connect(): Promise<void> {
    await this.#admin.connect();
  }

  /**
   * Creates schema, table and role, and one row per device: EMQX-style salted SHA-256
   * (`hex(sha256(salt ++ password))`, the guard's postgres default). A cheap hash on purpose: the
   * benchmark is about backend queries, not about the broker's hashing CPU.
   */
  async create(devices: readonly DeviceSpec[]): Promise<void> {
    await this.drop();
    const a = this.#admin;
    await a.query(`CREATE SCHEMA ${this.name}`);
    await a.query(
      `CREATE TABLE ${this.name}.mqtt_user (username text PRIMARY KEY, password_hash text NOT NULL, salt text, is_superuser boolean NOT NULL DEFAULT false)`,
    );
    await a.query(`CREATE ROLE ${this.name} LOGIN`);
    await a.query(`GRANT USAGE ON SCHEMA ${this.name} TO ${this.name}`);
    await a.query(`GRANT SELECT ON ${this.name}.mqtt_user TO ${this.name}`);
    const users: string[] = [];
    const hashes: string[] = [];
    const salts: string[] = [];
    for (const d of devices) {
      const salt = randomBytes(8).toString('hex');
      users.push(d.username);
      salts.push(salt);
      hashes.push(createHash('sha256').update(salt).update(d.password).digest('hex'));
    }
    // SECURITY INVOKER (the default): it reads the table as the broker's role, so a REVOKE breaks
    // it the same way. EXECUTE on functions is granted to PUBLIC by default.
    await a.query(
      `CREATE FUNCTION ${this.name}.lookup_slow(u text, delay_s double precision)
       RETURNS TABLE (password_hash text, salt text, is_superuser boolean)
       LANGUAGE plpgsql AS $$
       BEGIN
         PERFORM pg_sleep(delay_s);
         RETURN QUERY SELECT m.password_hash, m.salt, m.is_superuser FROM ${this.name}.mqtt_user m WHERE m.username = u LIMIT 1;
       END $$`,
    );
    await a.query(
      `INSERT INTO ${this.name}.mqtt_user (username, password_hash, salt)
       SELECT * FROM unnest($1::text[], $2::text[], $3::text[])`,
      [users, hashes, salts],
    );
  }

  /** The bad rotation: the broker's role can no longer read the table; every auth query fails. */
  async breakCredential(): Promise<void> {
    await this.#admin.query(`REVOKE SELECT ON ${this.name}.mqtt_user FROM ${this.name}`);
  }

  async fixCredential(): Promise<void> {
    await this.#admin.query(`GRANT SELECT ON ${this.name}.mqtt_user TO ${this.name}`);
  }

  /**
   * Transactions the server counted for the whole `test` database (commits + rollbacks; a failed
   * query is a rolled-back transaction). A cross-check taken at the server: it includes anyone
   * else using `test` and this query itself, and PostgreSQL 15 flushes backend statistics at most
   * about once a second, so per-second values lag.
   */
  async serverTransactions(): Promise<number> {
    const r = await this.#admin.query<{ n: string }>(
      'SELECT xact_commit + xact_rollback AS n FROM pg_stat_database WHERE datname = current_database()',
    );
    return Number(r.rows[0]?.n ?? 0);
  }

  /** Drops schema and role (also what a previous, killed run left behind). */
  async drop(): Promise<void> {
    const a = this.#admin;
    await a.query(`DROP SCHEMA IF EXISTS ${this.name} CASCADE`);
    const role = await a.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [this.name]);
    if (role.rowCount) {
      // Sessions of a pool that is still closing would block DROP ROLE.
      await a.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1', [this.name]);
      await a.query(`DROP OWNED BY ${this.name}`);
      await a.query(`DROP ROLE ${this.name}`);
    }
  }

  async close(): Promise<void> {
    await this.#admin.end();
  }
}

/** Auth queries of the broker, counted where they leave it: the authenticator's pg pool. */
export interface QueryCounter {
  /** `pool.query` calls: queries the broker asked for. */
  issued: number;
  /**
   * Queries that got a connection and went to the server (the pool's `acquire` event; one per
   * `pool.query`). The rest waited for a free connection longer than the pool's connect timeout
   * and failed in the broker without reaching PostgreSQL.
   */
  sent: number;
  /** Issued queries that failed (server error or pool wait timeout). */
  failed: number;
  /**
   * New server connections the pool opened. pg-pool discards a connection whose query failed, so
   * with a broken credential every failing query also costs a connection (a backend process).
   */
  connections: number;
  /** Issued and not yet settled. */
  inflight: number;
  /**
   * Latency of every settled query (ms, from `pool.query` to its answer or error: includes any
   * wait for a pool connection), in settle order. The reader takes what it needs (`drain`).
   */
  latencies: number[];
}

/** Removes and returns the latencies recorded since the last call. */
export function drainLatencies(counter: QueryCounter): number[] {
  const out = counter.latencies;
  counter.latencies = [];
  return out;
}

/**
 * Wraps `pool.query` and listens to `acquire`, so every auth query the broker issues and every
 * one that reaches the server is counted. The postgres authenticator issues exactly one query per
 * backend call, through this method.
 */
export function countQueries(pool: pg.Pool): QueryCounter {
  const counter: QueryCounter = { issued: 0, sent: 0, failed: 0, connections: 0, inflight: 0, latencies: [] };
  const original = pool.query.bind(pool) as (text: string, values: unknown[]) => Promise<unknown>;
  pool.on('acquire', () => {
    counter.sent++;
  });
  pool.on('connect', () => {
    counter.connections++;
  });
  (pool as unknown as { query: unknown }).query = (text: string, values: unknown[]) => {
    counter.issued++;
    counter.inflight++;
    const started = performance.now();
    const p = original(text, values);
    p.then(
      () => {
        counter.inflight--;
        counter.latencies.push(performance.now() - started);
      },
      () => {
        counter.inflight--;
        counter.failed++;
        counter.latencies.push(performance.now() - started);
      },
    );
    return p;
  };
  return counter;
}
