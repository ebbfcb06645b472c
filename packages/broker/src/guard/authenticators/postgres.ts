import pg from 'pg';
import type { PostgresAuthConfig } from '../config.js';
import { GuardError } from '../errors.js';
import { verifyPassword } from '../password-hash.js';
import {
  type Authenticator,
  type AuthenticatorContext,
  AuthMethod,
  type AuthRequest,
  type AuthResult,
} from './types.js';

function truthy(v: unknown): boolean {
  return v === true || v === 1 || v === '1' || v === 't' || v === 'true';
}

/**
 * Credentials from PostgreSQL: a configurable parameterised query returning `password_hash` and
 * optionally `salt` and `is_superuser`. No row → pass (the next authenticator may know the user);
 * wrong password → deny; SQL error, connection failure or statement timeout → error (0x88, or a
 * stale-if-error admit by the AuthEngine), never a deny.
 *
 * The AuthEngine's gate bounds what reaches the pool (rate cap, bulkhead, breaker), so the pool
 * only needs `poolSize` connections; `statement_timeout` makes the server give up on slow queries.
 */
export class PostgresAuthenticator implements Authenticator {
  readonly method = AuthMethod.Postgres;
  readonly remote = true;
  readonly name: string;
  readonly pool: pg.Pool;
  readonly #config: PostgresAuthConfig;
  readonly #ctx: AuthenticatorContext;

  constructor(name: string, config: PostgresAuthConfig, ctx: AuthenticatorContext) {
    this.name = name;
    this.#config = config;
    this.#ctx = ctx;
    this.pool = new pg.Pool({
      ...(config.connectionString
        ? { connectionString: config.connectionString }
        : {
            host: config.host,
            port: config.port,
            user: config.user,
            password: config.password,
            database: config.database,
          }),
      max: config.poolSize,
      statement_timeout: config.statementTimeoutMs,
      // Client-side bound too, in case the server never answers (network partition).
      query_timeout: config.statementTimeoutMs + 1_000,
      connectionTimeoutMillis: config.connectTimeoutMs,
      idleTimeoutMillis: 30_000,
      application_name: `breakwater-guard-${name}`,
    });
    // An idle client losing its connection emits on the pool; unhandled, that would crash the process.
    this.pool.on('error', (err) =>
      ctx.logger.warn({ authenticator: name, err }, 'postgres pool client error'),
    );
  }

  async start(): Promise<void> {}

  async authenticate(request: AuthRequest): Promise<AuthResult> {
    if (request.username === undefined || request.password === undefined) return { outcome: 'pass' };
    const values = this.#config.params.map((p) => (p === 'clientId' ? request.clientId : request.username));
    let rows: Record<string, unknown>[];
    try {
      rows = (await this.pool.query(this.#config.query, values)).rows;
    } catch (err) {
      this.#ctx.logger.warn({ authenticator: this.name, err }, 'postgres auth query failed');
      return { outcome: 'error', reason: `postgres: ${(err as Error).message}` };
    }
    const row = rows[0];
    if (!row) return { outcome: 'pass' };
    const hash = row.password_hash ?? row.password;
    if (typeof hash !== 'string')
      return { outcome: 'error', reason: 'postgres: query returned no password_hash column' };
    const salt = typeof row.salt === 'string' ? row.salt : null;
    try {
      const h = this.#config.hash;
      const ok = await verifyPassword(request.password, hash, {
        algorithm: h.algorithm,
        saltPosition: h.saltPosition,
        encoding: h.encoding,
        macFun: h.macFun,
        iterations: h.iterations,
        ...(h.dkLength !== undefined ? { dkLength: h.dkLength } : {}),
        salt,
      });
      if (!ok) return { outcome: 'deny', reason: 'bad user name or password' };
    } catch (err) {
      if (!(err instanceof GuardError)) throw err;
      this.#ctx.logger.error(
        { authenticator: this.name, user: request.username, err },
        'unusable password hash',
      );
      return { outcome: 'error', reason: err.message };
    }
    return { outcome: 'allow', identity: request.clientId, superuser: truthy(row.is_superuser) };
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}
