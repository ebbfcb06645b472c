/**
 * The device credential database of `auth-backend-outage` (PostgreSQL at 127.0.0.1:5432, trust
 * auth, database `test`, as in bench/auth-storm/postgres.ts which this follows): a schema with the
 * `mqtt_user` table (EMQX-style salted SHA-256), a login role for the broker, and the "credential
 * rotated wrong" fault. Under trust auth a wrong password cannot be simulated; the broker's role
 * losing SELECT fails the same query the same way (REVOKE = fault, GRANT = repair).
 *
 * The schema and role are named after the process (`bw_gameday_<pid>`) so concurrent runs do not
 * collide; `create()` first drops what dead processes left behind.
 *
 * The table is the only place a device exists at the start of a run: the broker's auth cache and
 * known-good store start empty and are earned by the devices' own successful connects.
 */
import { createHash, randomBytes } from 'node:crypto';
import pg from 'pg';

export const PG = { host: '127.0.0.1', port: 5432, user: 'postgres', database: 'test' } as const;
const PREFIX = 'bw_gameday_';

export interface DeviceCredential {
  id: string;
  username: string;
  password: string;
}

/** Deterministic per-device password (the simulator and the table must agree). */
export function devicePassword(id: string): string {
  return `pw-${createHash('sha256').update(`gameday:${id}`).digest('hex').slice(0, 16)}`;
}

/** Schema and role of this process's credential database. */
export function backendName(): string {
  return `${PREFIX}${process.pid}`;
}

/** The guard's `authenticators.postgres.<name>` entry for this process's database. */
export function postgresAuthenticatorConfig(limits?: Record<string, unknown>): Record<string, unknown> {
  const name = backendName();
  return {
    host: PG.host,
    port: PG.port,
    database: PG.database,
    user: name,
    query: `SELECT password_hash, salt, is_superuser FROM ${name}.mqtt_user WHERE username = $1 LIMIT 1`,
    ...(limits ? { limits } : {}),
  };
}

export class PostgresBackend {
  readonly name = backendName();
  readonly #admin = new pg.Client(PG);
  #connected = false;

  async create(ids: readonly string[]): Promise<void> {
    await this.#admin.connect();
    this.#connected = true;
    await this.#dropOrphans();
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
    for (const id of ids) {
      const salt = randomBytes(8).toString('hex');
      users.push(id);
      salts.push(salt);
      hashes.push(createHash('sha256').update(salt).update(devicePassword(id)).digest('hex'));
    }
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

  async drop(): Promise<void> {
    await dropSchemaAndRole(this.#admin, this.name);
  }

  async close(): Promise<void> {
    if (!this.#connected) return;
    try {
      await this.drop();
    } finally {
      this.#connected = false;
      await this.#admin.end();
    }
  }

  /** Schemas of processes that no longer exist (a killed run). */
  async #dropOrphans(): Promise<void> {
    const r = await this.#admin.query<{ nspname: string }>(
      `SELECT nspname FROM pg_namespace WHERE nspname LIKE '${PREFIX}%'`,
    );
    for (const { nspname } of r.rows) {
      const pid = Number(nspname.slice(PREFIX.length));
      if (Number.isInteger(pid) && pid !== process.pid && !alive(pid)) {
        await dropSchemaAndRole(this.#admin, nspname);
      }
    }
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function dropSchemaAndRole(a: pg.Client, name: string): Promise<void> {
  await a.query(`DROP SCHEMA IF EXISTS ${name} CASCADE`);
  const role = await a.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [name]);
  if (role.rowCount) {
    // Sessions of a pool that is still closing would block DROP ROLE.
    await a.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1', [name]);
    await a.query(`DROP OWNED BY ${name}`);
    await a.query(`DROP ROLE IF EXISTS ${name}`);
  }
}
