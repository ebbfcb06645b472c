import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';

/** A credential that a backend confirmed. Holds no secret: `key` is a keyed hash. */
export interface KnownGood {
  key: string;
  backend: string;
  /** Keyed hash of the client id, so revoking a client can purge its entries. */
  subject: string;
  identity: string;
  superuser: boolean;
  /** Epoch ms of the backend's last confirmation (not refreshed by cache hits). */
  verifiedAt: number;
}

export const KNOWN_GOOD_FILE = 'guard-known-good.db';

interface Row {
  key: string;
  backend: string;
  subject: string;
  identity: string;
  superuser: number;
  verified_at: number;
}

/**
 * Known-good credentials in the data dir (SQLite, WAL). They must survive a restart or a config
 * reload because that is exactly when the whole fleet reconnects at once (issue 3). Writes happen
 * only when a backend confirms a credential, so they are bounded by the backend query cap.
 */
export class KnownGoodStore {
  readonly #db: Database.Database;
  readonly #get: Database.Statement<[string], Row>;
  readonly #put: Database.Statement<Row>;
  readonly #del: Database.Statement<[string]>;
  readonly #delSubject: Database.Statement<[string]>;
  readonly #prune: Database.Statement<[number]>;
  readonly #count: Database.Statement<[], { n: number }>;
  /** Told of every confirmation made here (a cluster shares them, issue 15); null = nobody. */
  #onConfirmed: ((e: KnownGood) => void) | null = null;

  constructor(dataDir: string) {
    mkdirSync(dataDir, { recursive: true });
    this.#db = new Database(join(dataDir, KNOWN_GOOD_FILE));
    this.#db.pragma('journal_mode = WAL');
    // A lost last write costs one extra backend query after a crash; fsync per login is not worth it.
    this.#db.pragma('synchronous = NORMAL');
    this.#db.exec(`CREATE TABLE IF NOT EXISTS known_good (
      key TEXT PRIMARY KEY, backend TEXT NOT NULL, subject TEXT NOT NULL, identity TEXT NOT NULL,
      superuser INTEGER NOT NULL, verified_at INTEGER NOT NULL);
      CREATE INDEX IF NOT EXISTS known_good_subject ON known_good(subject);
      CREATE INDEX IF NOT EXISTS known_good_verified ON known_good(verified_at);`);
    this.#get = this.#db.prepare('SELECT * FROM known_good WHERE key = ?');
    this.#put = this.#db.prepare(
      `INSERT INTO known_good (key, backend, subject, identity, superuser, verified_at)
       VALUES (@key, @backend, @subject, @identity, @superuser, @verified_at)
       ON CONFLICT(key) DO UPDATE SET identity = excluded.identity, superuser = excluded.superuser,
         verified_at = excluded.verified_at`,
    );
    this.#del = this.#db.prepare('DELETE FROM known_good WHERE key = ?');
    this.#delSubject = this.#db.prepare('DELETE FROM known_good WHERE subject = ?');
    this.#prune = this.#db.prepare('DELETE FROM known_good WHERE verified_at < ?');
    this.#count = this.#db.prepare('SELECT count(*) AS n FROM known_good');
  }

  get(key: string): KnownGood | undefined {
    const r = this.#get.get(key);
    if (!r) return undefined;
    return {
      key: r.key,
      backend: r.backend,
      subject: r.subject,
      identity: r.identity,
      superuser: r.superuser === 1,
      verifiedAt: r.verified_at,
    };
  }

  put(e: KnownGood): void {
    this.#write(e);
    this.#onConfirmed?.(e);
  }

  /**
   * A confirmation made by another node of the cluster (issue 15): stored unless ours is newer,
   * never passed on again. Keys are keyed hashes: they match only on nodes that share the guard
   * secret (`guard.secret` in the data dir).
   */
  applyShared(e: KnownGood): void {
    const mine = this.#get.get(e.key);
    if (mine !== undefined && mine.verified_at >= e.verifiedAt) return;
    this.#write(e);
  }

  /** Follow the confirmations made on this node (one listener). */
  onConfirmed(listener: ((e: KnownGood) => void) | null): void {
    this.#onConfirmed = listener;
  }

  #write(e: KnownGood): void {
    this.#put.run({
      key: e.key,
      backend: e.backend,
      subject: e.subject,
      identity: e.identity,
      superuser: e.superuser ? 1 : 0,
      verified_at: e.verifiedAt,
    });
  }

  delete(key: string): void {
    this.#del.run(key);
  }

  deleteSubject(subject: string): void {
    this.#delSubject.run(subject);
  }

  /** Drops entries confirmed before `before` (epoch ms): too old even for stale-if-error. */
  prune(before: number): number {
    return this.#prune.run(before).changes;
  }

  get size(): number {
    return this.#count.get()!.n;
  }

  close(): void {
    if (this.#db.open) this.#db.close();
  }
}
