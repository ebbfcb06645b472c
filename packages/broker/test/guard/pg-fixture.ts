import { randomBytes } from 'node:crypto';
import pg from 'pg';

export const PG = { host: '127.0.0.1', port: 5432, user: 'postgres', database: 'test' } as const;

/**
 * A private schema, table and login role in the test database, with a unique name so parallel
 * test files never collide; `drop()` removes all three.
 */
export class PgFixture {
  readonly name = `bw_guard_${randomBytes(5).toString('hex')}`;
  readonly admin = new pg.Client(PG);

  get table(): string {
    return `${this.name}.mqtt_user`;
  }

  get query(): string {
    return `SELECT password_hash, salt, is_superuser FROM ${this.table} WHERE username = $1 LIMIT 1`;
  }

  async create(): Promise<void> {
    await this.admin.connect();
    await this.admin.query(`CREATE SCHEMA ${this.name}`);
    await this.admin.query(
      `CREATE TABLE ${this.table} (username text PRIMARY KEY, password_hash text NOT NULL, salt text, is_superuser boolean NOT NULL DEFAULT false)`,
    );
    await this.admin.query(`CREATE ROLE ${this.name} LOGIN PASSWORD 'right'`);
    await this.admin.query(`GRANT USAGE ON SCHEMA ${this.name} TO ${this.name}`);
    await this.admin.query(`GRANT SELECT ON ${this.table} TO ${this.name}`);
  }

  async addUser(
    username: string,
    hash: string,
    salt: string | null = null,
    superuser = false,
  ): Promise<void> {
    await this.admin.query(`INSERT INTO ${this.table} VALUES ($1, $2, $3, $4)`, [
      username,
      hash,
      salt,
      superuser,
    ]);
  }

  /** Breaks the broker's credential the way a bad rotation does: its role loses access. */
  async breakCredential(): Promise<void> {
    await this.admin.query(`REVOKE SELECT ON ${this.table} FROM ${this.name}`);
  }

  async restoreCredential(): Promise<void> {
    await this.admin.query(`GRANT SELECT ON ${this.table} TO ${this.name}`);
  }

  async drop(): Promise<void> {
    try {
      await this.admin.query(`DROP SCHEMA IF EXISTS ${this.name} CASCADE`);
      // Sessions of the role (the guard's pool) are closed by then; drop what it still owns.
      await this.admin.query(`DROP OWNED BY ${this.name}`).catch(() => {});
      await this.admin.query(`DROP ROLE IF EXISTS ${this.name}`);
    } finally {
      await this.admin.end();
    }
  }
}
