/**
 * SQLite storage (better-sqlite3, WAL) for one broker process, in `<dataDir>/breakwater.db`.
 *
 * Group commit. Every mutation is executed at once inside a transaction that stays open for the
 * rest of the event-loop turn, and one `setImmediate` per turn commits it. So a burst of N
 * publishes costs one COMMIT, and reads (`load*`) on this connection see every recorded mutation
 * even before it is committed (an offline session coming back online in the same turn a message
 * was queued for it must see that message). `flush()` returns the promise of the batch that
 * covers everything recorded so far — one shared promise per batch, however many callers.
 *
 * Durability. In WAL mode a COMMIT appends the transaction's pages to the -wal file with write(2);
 * with `synchronous = NORMAL` SQLite does not fsync on commit, only at checkpoints. The data is
 * then in the OS page cache, which survives the broker process being killed (kill -9, OOM killer,
 * crash) but not a power loss or kernel panic, where the last transactions may roll back (the
 * database is never corrupted). Issue 2 asks for the former: an acknowledged publish survives
 * `kill -9` of the broker. `synchronous: 'full'` fsyncs the WAL on every commit for power-loss
 * durability, at the cost of one fsync per batch (see https://sqlite.org/pragma.html#pragma_synchronous
 * and https://sqlite.org/wal.html "Performance Considerations").
 *
 * Failures. Mutations are also kept in a journal (statement + bound parameters) until their
 * batch commits. If a statement or the COMMIT fails (disk full, I/O error, database locked by
 * another process), the batch's flush() promise rejects with BW_ERR_STORAGE (cause: the SQLite
 * error), the error is logged, and nothing is dropped: the open transaction is rolled back and
 * the journal is replayed into a fresh transaction on the next attempt, which happens on the next
 * mutation, flush() or load. Callers therefore never see a half-applied batch, and an engine that
 * withholds PUBACK until flush() resolves never acknowledges a message that is not on disk.
 *
 * Checkpoints. SQLite would checkpoint the WAL inside the COMMIT that takes it past 1,000 pages,
 * fsyncing on the event loop (seconds on a busy disk: the stall in bench/results/sink-stall.md).
 * So this connection runs with `wal_autocheckpoint = 0` and a WalCheckpointer thread checkpoints
 * (PASSIVE) every second. When the WAL has not started over for a while, the thread asks for a
 * quiet window: the open batch is committed at once, later mutations are journalled but not
 * executed, and no COMMIT happens until the window ends (at most 500 ms: PUBACKs wait, the event
 * loop does not); then the journal is replayed into a transaction that begins after the
 * checkpoint, so the WAL starts over. If the thread fails, SQLite's own checkpoints come back.
 *
 * The only mutation that throws synchronously is appendOutbox() with a seq that already exists
 * for the session (an engine bug: replacing a queued message would lose it).
 */
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import type { Logger } from 'pino';
import { BreakwaterError } from '../errors.js';
import type {
  BrokerStorage,
  OutboxRecord,
  OutboxState,
  QoS,
  RetainedRecord,
  SessionRecord,
  StoredPublishProperties,
  SubscriptionRecord,
  WillRecord,
} from './types.js';
import { SQLITE_DEFAULT_AUTOCHECKPOINT, WalCheckpointer } from './wal-checkpointer.js';

/** The -wal file is cut back to this size when it starts over after a burst. */
const WAL_SIZE_LIMIT = 64 * 2 ** 20;

export interface SqliteStorageOptions {
  /** The database file, normally `<dataDir>/breakwater.db`. Its directory is created if missing. */
  file: string;
  /**
   * 'normal' (default): durable against a killed broker process, not against power loss.
   * 'full': fsync on every commit, durable against power loss too. See the module comment.
   */
  synchronous?: 'normal' | 'full';
  /**
   * How long a statement waits for a lock held by another connection before failing with
   * SQLITE_BUSY. The broker is the only writer, so this only matters if something else (a backup
   * tool, a second broker by mistake) opens the file. It blocks the event loop while waiting.
   */
  busyTimeoutMs?: number;
  /** Between two WAL checkpoints in the checkpointer thread (default 1,000 ms). */
  checkpointIntervalMs?: number;
  /** WAL size (frames) past which the checkpointer asks for a quiet window (default 4,096). */
  quietAfterFrames?: number;
  logger?: Logger;
}

/**
 * Schema migrations: `migrations[i]` takes a database from version i to i + 1. Version 0 is an
 * empty file. Append new entries; never edit a released one.
 */
const migrations: readonly string[] = [
  `
  CREATE TABLE sessions (
    client_id TEXT PRIMARY KEY NOT NULL,
    protocol_version INTEGER NOT NULL,
    expiry_interval INTEGER NOT NULL,
    disconnected_at INTEGER
  );
  CREATE TABLE subscriptions (
    client_id TEXT NOT NULL,
    filter TEXT NOT NULL,
    qos INTEGER NOT NULL,
    no_local INTEGER NOT NULL,
    retain_as_published INTEGER NOT NULL,
    retain_handling INTEGER NOT NULL,
    subscription_id INTEGER,
    PRIMARY KEY (client_id, filter)
  ) WITHOUT ROWID;
  -- Rowid table (not WITHOUT ROWID): payloads can be large, and SQLite advises WITHOUT ROWID only
  -- for small rows (https://sqlite.org/withoutrowid.html section 4).
  CREATE TABLE outbox (
    client_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    qos INTEGER NOT NULL,
    packet_id INTEGER,
    state TEXT NOT NULL,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    retain INTEGER NOT NULL,
    -- JSON of the properties without correlationData, which is binary and kept byte-exact in
    -- correlation_data. NULL when the record has no properties.
    properties TEXT,
    correlation_data BLOB,
    subscription_ids TEXT,
    expires_at INTEGER,
    PRIMARY KEY (client_id, seq)
  );
  CREATE TABLE inbound_qos2 (
    client_id TEXT NOT NULL,
    packet_id INTEGER NOT NULL,
    PRIMARY KEY (client_id, packet_id)
  ) WITHOUT ROWID;
  CREATE TABLE retained (
    topic TEXT PRIMARY KEY NOT NULL,
    payload BLOB NOT NULL,
    qos INTEGER NOT NULL,
    properties TEXT,
    correlation_data BLOB,
    expires_at INTEGER,
    publisher_id TEXT
  );
  `,
  // 2: wills of stored sessions (durable wills, issue 13).
  `
  CREATE TABLE wills (
    client_id TEXT PRIMARY KEY NOT NULL,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    qos INTEGER NOT NULL,
    retain INTEGER NOT NULL,
    properties TEXT,
    correlation_data BLOB,
    delay_sec INTEGER NOT NULL,
    expiry_sec INTEGER,
    -- Epoch ms when it is due; NULL while its connection is up.
    due_at INTEGER
  );
  `,
];

export const SQLITE_SCHEMA_VERSION = migrations.length;

interface SessionRow {
  client_id: string;
  protocol_version: number;
  expiry_interval: number;
  disconnected_at: number | null;
}

interface SubscriptionRow {
  client_id: string;
  filter: string;
  qos: number;
  no_local: number;
  retain_as_published: number;
  retain_handling: number;
  subscription_id: number | null;
}

interface OutboxRow {
  seq: number;
  qos: number;
  packet_id: number | null;
  state: string;
  topic: string;
  payload: Buffer;
  retain: number;
  properties: string | null;
  correlation_data: Buffer | null;
  subscription_ids: string | null;
  expires_at: number | null;
}

interface WillRow {
  client_id: string;
  topic: string;
  payload: Buffer;
  qos: number;
  retain: number;
  properties: string | null;
  correlation_data: Buffer | null;
  delay_sec: number;
  expiry_sec: number | null;
  due_at: number | null;
}

interface RetainedRow {
  topic: string;
  payload: Buffer;
  qos: number;
  properties: string | null;
  correlation_data: Buffer | null;
  expires_at: number | null;
  publisher_id: string | null;
}

/** The prepared statements, created once in open(). */
interface Statements {
  begin: Database.Statement;
  commit: Database.Statement;
  rollback: Database.Statement;
  loadSessions: Database.Statement<[], SessionRow>;
  loadSubscriptions: Database.Statement<[], SubscriptionRow>;
  loadOutbox: Database.Statement<[string], OutboxRow>;
  loadInboundQos2: Database.Statement<[string], { packet_id: number }>;
  loadRetained: Database.Statement<[], RetainedRow>;
  loadWills: Database.Statement<[], WillRow>;
  putWill: Database.Statement;
  deleteWill: Database.Statement;
  putSession: Database.Statement;
  deleteSession: Database.Statement;
  deleteSessionSubscriptions: Database.Statement;
  deleteSessionOutbox: Database.Statement;
  deleteSessionInboundQos2: Database.Statement;
  putSubscription: Database.Statement;
  deleteSubscription: Database.Statement;
  appendOutbox: Database.Statement;
  updateOutbox: Database.Statement;
  deleteOutbox: Database.Statement;
  addInboundQos2: Database.Statement;
  deleteInboundQos2: Database.Statement;
  putRetained: Database.Statement;
  deleteRetained: Database.Statement;
}

/** The promise shared by every flush() that a batch commit covers. */
interface Batch {
  promise: Promise<void>;
  resolve: () => void;
  reject: (err: Error) => void;
}

const noop = (): void => {};

export class SqliteStorage implements BrokerStorage {
  readonly #options: Required<
    Omit<SqliteStorageOptions, 'logger' | 'checkpointIntervalMs' | 'quietAfterFrames'>
  > & {
    logger: Logger | null;
    checkpointIntervalMs: number | undefined;
    quietAfterFrames: number | undefined;
  };
  #db: Database.Database | null = null;
  #stmts: Statements | null = null;
  #closed = false;
  /** Null for ':memory:' (no WAL) or if the thread could not start. */
  #checkpointer: WalCheckpointer | null = null;
  /** A checkpointer's quiet window: mutations are journalled only, and nothing commits. */
  #held = false;

  /**
   * Statements executed in the open transaction but not committed yet, with their parameters
   * (parallel arrays, no per-mutation closure), kept to replay them if the transaction is lost.
   */
  #journalStmts: Database.Statement[] = [];
  #journalParams: unknown[][] = [];
  /**
   * The journal is not (all) in an open transaction: a statement or COMMIT failed, or a quiet
   * window deferred it. Replay it into a new transaction before using the connection.
   */
  #broken = false;
  #lastError: unknown = null;
  #commitScheduled = false;
  #batch: Batch | null = null;
  #commits = 0;
  /** The `setImmediate` callback: one function per instance, so scheduling allocates nothing. */
  readonly #commitCallback = (): void => this.#commit();

  constructor(options: SqliteStorageOptions) {
    this.#options = {
      file: options.file,
      synchronous: options.synchronous ?? 'normal',
      busyTimeoutMs: options.busyTimeoutMs ?? 5000,
      logger: options.logger ?? null,
      checkpointIntervalMs: options.checkpointIntervalMs,
      quietAfterFrames: options.quietAfterFrames,
    };
  }

  /** Number of successful group commits so far (observability and tests). */
  get commits(): number {
    return this.#commits;
  }

  /** The checkpointer thread (tests: it, not this connection, checkpoints the WAL). */
  get checkpointer(): WalCheckpointer | null {
    return this.#checkpointer;
  }

  /** This connection's `wal_autocheckpoint` in pages (0: checkpoints are the thread's). */
  get autocheckpointPages(): number {
    const db = this.#db;
    if (db === null) throw new BreakwaterError('BW_ERR_STORAGE', 'storage is not open');
    return db.pragma('wal_autocheckpoint', { simple: true }) as number;
  }

  /** The journal mode and synchronous level in effect on this connection (for start-up logs and tests). */
  durability(): { journalMode: string; synchronous: 'normal' | 'full' | 'other' } {
    const db = this.#db;
    if (db === null) throw new BreakwaterError('BW_ERR_STORAGE', 'storage is not open');
    const level = db.pragma('synchronous', { simple: true });
    return {
      journalMode: String(db.pragma('journal_mode', { simple: true })),
      synchronous: level === 1 ? 'normal' : level === 2 ? 'full' : 'other',
    };
  }

  async open(): Promise<void> {
    if (this.#db !== null) return;
    if (this.#closed) throw new BreakwaterError('BW_ERR_STORAGE', 'storage is closed');
    const { file } = this.#options;
    let db: Database.Database;
    try {
      if (file !== ':memory:') mkdirSync(dirname(file), { recursive: true });
      db = new Database(file, { timeout: this.#options.busyTimeoutMs });
    } catch (err) {
      throw new BreakwaterError('BW_ERR_STORAGE', `cannot open ${file}`, { cause: err });
    }
    try {
      db.pragma('journal_mode = WAL');
      db.pragma(`synchronous = ${this.#options.synchronous === 'full' ? 'FULL' : 'NORMAL'}`);
      // Keep the -wal file from staying large after a burst (it is truncated when it starts over).
      db.pragma(`journal_size_limit = ${WAL_SIZE_LIMIT}`);
      migrate(db, file);
      this.#stmts = prepare(db);
    } catch (err) {
      db.close();
      if (err instanceof BreakwaterError) throw err;
      throw new BreakwaterError('BW_ERR_STORAGE', `cannot initialise ${file}`, { cause: err });
    }
    this.#db = db;
    if (file !== ':memory:') this.#startCheckpointer(db, file);
  }

  /** Checkpoints move to a thread; on any failure SQLite's own (on the event loop) come back. */
  #startCheckpointer(db: Database.Database, file: string): void {
    const fallBack = (err: unknown): void => {
      this.#checkpointer = null;
      if (db.open) db.pragma(`wal_autocheckpoint = ${SQLITE_DEFAULT_AUTOCHECKPOINT}`);
      this.#options.logger?.error(
        { err },
        'storage: WAL checkpointer thread failed; checkpointing on the event loop',
      );
    };
    try {
      this.#checkpointer = new WalCheckpointer({
        file,
        intervalMs: this.#options.checkpointIntervalMs,
        quietAfterFrames: this.#options.quietAfterFrames,
        hold: () => this.#hold(),
        release: () => this.#release(),
        onFailure: fallBack,
      });
      db.pragma('wal_autocheckpoint = 0');
    } catch (err) {
      fallBack(err);
    }
  }

  #hold(): void {
    // Commit this turn's batch now: its frames go into the quiet checkpoint, and no transaction
    // stays open on a snapshot from before it (the WAL starts over only for a transaction that
    // begins once the WAL is entirely checkpointed).
    if (this.#journalStmts.length > 0) this.#commit();
    this.#held = true;
    this.#broken = true;
  }

  #release(): void {
    this.#held = false;
    if (this.#journalStmts.length > 0) this.#scheduleCommit();
  }

  loadSessions(): SessionRecord[] {
    const s = this.#readable();
    const byClient = new Map<string, SessionRecord>();
    for (const row of s.loadSessions.iterate()) {
      byClient.set(row.client_id, {
        clientId: row.client_id,
        protocolVersion: row.protocol_version,
        expiryInterval: row.expiry_interval,
        disconnectedAt: row.disconnected_at,
        subscriptions: [],
      });
    }
    for (const row of s.loadSubscriptions.iterate()) {
      const session = byClient.get(row.client_id);
      if (session === undefined) continue;
      const sub: SubscriptionRecord = {
        filter: row.filter,
        qos: row.qos as QoS,
        noLocal: row.no_local === 1,
        retainAsPublished: row.retain_as_published === 1,
        retainHandling: row.retain_handling as 0 | 1 | 2,
      };
      if (row.subscription_id !== null) sub.subscriptionId = row.subscription_id;
      session.subscriptions.push(sub);
    }
    for (const row of s.loadWills.iterate()) {
      const session = byClient.get(row.client_id);
      if (session === undefined) continue;
      session.will = {
        topic: row.topic,
        payload: row.payload,
        qos: row.qos as QoS,
        retain: row.retain === 1,
        properties: decodeProperties(row.properties, row.correlation_data),
        delaySec: row.delay_sec,
        expirySec: row.expiry_sec,
        dueAt: row.due_at,
      };
    }
    return Array.from(byClient.values());
  }

  loadOutbox(clientId: string): OutboxRecord[] {
    const rows = this.#readable().loadOutbox.all(clientId);
    return rows.map((row) => ({
      seq: row.seq,
      qos: row.qos as QoS,
      packetId: row.packet_id,
      state: row.state as OutboxState,
      topic: row.topic,
      payload: row.payload,
      retain: row.retain === 1,
      properties: decodeProperties(row.properties, row.correlation_data),
      subscriptionIds: row.subscription_ids === null ? null : (JSON.parse(row.subscription_ids) as number[]),
      expiresAt: row.expires_at,
    }));
  }

  loadInboundQos2(clientId: string): number[] {
    return this.#readable()
      .loadInboundQos2.all(clientId)
      .map((row) => row.packet_id);
  }

  loadRetained(): RetainedRecord[] {
    return this.#readable()
      .loadRetained.all()
      .map((row) => ({
        topic: row.topic,
        payload: row.payload,
        qos: row.qos as QoS,
        properties: decodeProperties(row.properties, row.correlation_data),
        expiresAt: row.expires_at,
        publisherId: row.publisher_id,
      }));
  }

  putSession(session: Omit<SessionRecord, 'subscriptions' | 'will'>): void {
    const s = this.#writable();
    this.#record(s.putSession, [
      session.clientId,
      session.protocolVersion,
      session.expiryInterval,
      session.disconnectedAt,
    ]);
  }

  deleteSession(clientId: string): void {
    const s = this.#writable();
    const params = [clientId];
    this.#record(s.deleteSession, params);
    this.#record(s.deleteSessionSubscriptions, params);
    this.#record(s.deleteSessionOutbox, params);
    this.#record(s.deleteSessionInboundQos2, params);
    this.#record(s.deleteWill, params);
  }

  putWill(clientId: string, will: WillRecord): void {
    const s = this.#writable();
    const props = will.properties;
    this.#record(s.putWill, [
      clientId,
      will.topic,
      will.payload,
      will.qos,
      will.retain ? 1 : 0,
      encodeProperties(props),
      props?.correlationData ?? null,
      will.delaySec,
      will.expirySec,
      will.dueAt,
    ]);
  }

  deleteWill(clientId: string): void {
    this.#record(this.#writable().deleteWill, [clientId]);
  }

  putSubscription(clientId: string, sub: SubscriptionRecord): void {
    const s = this.#writable();
    this.#record(s.putSubscription, [
      clientId,
      sub.filter,
      sub.qos,
      sub.noLocal ? 1 : 0,
      sub.retainAsPublished ? 1 : 0,
      sub.retainHandling,
      sub.subscriptionId ?? null,
    ]);
  }

  deleteSubscription(clientId: string, filter: string): void {
    this.#record(this.#writable().deleteSubscription, [clientId, filter]);
  }

  appendOutbox(clientId: string, record: OutboxRecord): void {
    const s = this.#writable();
    const props = record.properties;
    this.#record(s.appendOutbox, [
      clientId,
      record.seq,
      record.qos,
      record.packetId,
      record.state,
      record.topic,
      record.payload,
      record.retain ? 1 : 0,
      encodeProperties(props),
      props?.correlationData ?? null,
      record.subscriptionIds === null ? null : JSON.stringify(record.subscriptionIds),
      record.expiresAt,
    ]);
  }

  updateOutbox(clientId: string, seq: number, packetId: number | null, state: OutboxState): void {
    this.#record(this.#writable().updateOutbox, [packetId, state, clientId, seq]);
  }

  deleteOutbox(clientId: string, seq: number): void {
    this.#record(this.#writable().deleteOutbox, [clientId, seq]);
  }

  addInboundQos2(clientId: string, packetId: number): void {
    this.#record(this.#writable().addInboundQos2, [clientId, packetId]);
  }

  deleteInboundQos2(clientId: string, packetId: number): void {
    this.#record(this.#writable().deleteInboundQos2, [clientId, packetId]);
  }

  putRetained(record: RetainedRecord): void {
    const s = this.#writable();
    const props = record.properties;
    this.#record(s.putRetained, [
      record.topic,
      record.payload,
      record.qos,
      encodeProperties(props),
      props?.correlationData ?? null,
      record.expiresAt,
      record.publisherId,
    ]);
  }

  deleteRetained(topic: string): void {
    this.#record(this.#writable().deleteRetained, [topic]);
  }

  flush(): Promise<void> {
    if (this.#journalStmts.length === 0) return Promise.resolve();
    if (this.#batch === null) {
      let resolve = noop;
      let reject: (err: Error) => void = noop;
      const promise = new Promise<void>((res, rej) => {
        resolve = res;
        reject = rej;
      });
      this.#batch = { promise, resolve, reject };
    }
    this.#scheduleCommit();
    return this.#batch.promise;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const db = this.#db;
    if (db === null) return;
    // Stop the thread first (it ends a quiet window); then this connection, the last one, removes
    // the WAL when it closes.
    const checkpointer = this.#checkpointer;
    this.#checkpointer = null;
    if (checkpointer !== null) await checkpointer.close();
    this.#held = false;
    let failure: BreakwaterError | null = null;
    if (this.#journalStmts.length > 0) {
      // Commit now rather than waiting for the scheduled turn: close() is the last chance.
      this.#commit();
      if (this.#journalStmts.length > 0) {
        failure = new BreakwaterError(
          'BW_ERR_STORAGE',
          `${this.#journalStmts.length} uncommitted mutations lost on close`,
          { cause: this.#lastError },
        );
      }
    }
    if (db.inTransaction) db.exec('ROLLBACK');
    db.close();
    this.#db = null;
    this.#stmts = null;
    if (failure !== null) throw failure;
  }

  /** Commit the open transaction: everything recorded since the last commit, as one batch. */
  #commit(): void {
    this.#commitScheduled = false;
    const db = this.#db;
    const s = this.#stmts;
    if (db === null || s === null || this.#journalStmts.length === 0 || this.#held) return;
    const batch = this.#batch;
    this.#batch = null;
    try {
      if (this.#broken) this.#replay(db, s);
      s.commit.run();
    } catch (err) {
      this.#broken = true;
      this.#lastError = err;
      const error = new BreakwaterError(
        'BW_ERR_STORAGE',
        `commit of ${this.#journalStmts.length} mutations failed; kept for retry`,
        { cause: err },
      );
      this.#options.logger?.error({ err: error }, 'storage commit failed');
      batch?.reject(error);
      return;
    }
    this.#journalStmts = [];
    this.#journalParams = [];
    this.#commits++;
    batch?.resolve();
  }

  /** Execute one mutation in the open transaction and journal it until its batch commits. */
  #record(stmt: Database.Statement, params: unknown[]): void {
    const db = this.#db!;
    if (!this.#broken) {
      try {
        if (!db.inTransaction) this.#stmts!.begin.run();
        stmt.run(params);
      } catch (err) {
        if (isConstraintError(err)) {
          // Statement-level failure: SQLite aborted only this statement; the transaction is fine.
          throw new BreakwaterError('BW_ERR_STORAGE', 'constraint violated', { cause: err });
        }
        this.#broken = true;
        this.#lastError = err;
        this.#options.logger?.error({ err }, 'storage write failed; will replay the batch');
      }
    }
    this.#journalStmts.push(stmt);
    this.#journalParams.push(params);
    this.#scheduleCommit();
  }

  /** Roll back whatever is left of the open transaction and re-apply the journal in a new one. */
  #replay(db: Database.Database, s: Statements): void {
    if (db.inTransaction) s.rollback.run();
    s.begin.run();
    const stmts = this.#journalStmts;
    const params = this.#journalParams;
    let i = 0;
    try {
      for (; i < stmts.length; i++) stmts[i]!.run(params[i]);
    } catch (err) {
      if (!isConstraintError(err)) throw err;
      // Only appendOutbox can violate a constraint, and #record() rejected those before
      // journalling them; a violation here means the journal is inconsistent. Drop the entry so
      // one bad row cannot block every later commit, and say so loudly.
      this.#options.logger?.error({ err }, 'storage replay dropped a conflicting mutation');
      stmts.splice(i, 1);
      params.splice(i, 1);
      this.#replay(db, s);
      return;
    }
    this.#broken = false;
  }

  #scheduleCommit(): void {
    if (this.#commitScheduled) return;
    this.#commitScheduled = true;
    setImmediate(this.#commitCallback);
  }

  #writable(): Statements {
    if (this.#closed) throw new BreakwaterError('BW_ERR_STORAGE', 'storage is closed');
    if (this.#stmts === null) throw new BreakwaterError('BW_ERR_STORAGE', 'storage is not open');
    return this.#stmts;
  }

  #readable(): Statements {
    const s = this.#writable();
    if (this.#broken) {
      try {
        this.#replay(this.#db!, s);
      } catch (err) {
        this.#lastError = err;
        throw new BreakwaterError('BW_ERR_STORAGE', 'cannot read: pending mutations cannot be applied', {
          cause: err,
        });
      }
    }
    return s;
  }
}

function migrate(db: Database.Database, file: string): void {
  db.exec('CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL)');
  const row = db.prepare("SELECT value FROM meta WHERE key = 'schema_version'").get() as
    | { value: string }
    | undefined;
  const version = row === undefined ? 0 : Number(row.value);
  if (!Number.isInteger(version) || version > migrations.length) {
    throw new BreakwaterError(
      'BW_ERR_STORAGE',
      `${file} has schema version ${row?.value}, newer than this Breakwater supports (${migrations.length})`,
    );
  }
  const setVersion = db.prepare("INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)");
  for (let v = version; v < migrations.length; v++) {
    db.transaction(() => {
      db.exec(migrations[v]!);
      setVersion.run(String(v + 1));
    })();
  }
}

function prepare(db: Database.Database): Statements {
  return {
    begin: db.prepare('BEGIN'),
    commit: db.prepare('COMMIT'),
    rollback: db.prepare('ROLLBACK'),
    loadSessions: db.prepare<[], SessionRow>(
      'SELECT client_id, protocol_version, expiry_interval, disconnected_at FROM sessions',
    ),
    loadSubscriptions: db.prepare<[], SubscriptionRow>(
      'SELECT client_id, filter, qos, no_local, retain_as_published, retain_handling, subscription_id FROM subscriptions',
    ),
    loadOutbox: db.prepare<[string], OutboxRow>(
      `SELECT seq, qos, packet_id, state, topic, payload, retain, properties, correlation_data,
         subscription_ids, expires_at FROM outbox WHERE client_id = ? ORDER BY seq`,
    ),
    loadInboundQos2: db.prepare<[string], { packet_id: number }>(
      'SELECT packet_id FROM inbound_qos2 WHERE client_id = ? ORDER BY packet_id',
    ),
    loadRetained: db.prepare<[], RetainedRow>(
      'SELECT topic, payload, qos, properties, correlation_data, expires_at, publisher_id FROM retained',
    ),
    putSession: db.prepare(
      `INSERT OR REPLACE INTO sessions (client_id, protocol_version, expiry_interval, disconnected_at)
       VALUES (?, ?, ?, ?)`,
    ),
    deleteSession: db.prepare('DELETE FROM sessions WHERE client_id = ?'),
    deleteSessionSubscriptions: db.prepare('DELETE FROM subscriptions WHERE client_id = ?'),
    deleteSessionOutbox: db.prepare('DELETE FROM outbox WHERE client_id = ?'),
    deleteSessionInboundQos2: db.prepare('DELETE FROM inbound_qos2 WHERE client_id = ?'),
    putSubscription: db.prepare(
      `INSERT OR REPLACE INTO subscriptions
         (client_id, filter, qos, no_local, retain_as_published, retain_handling, subscription_id)
       VALUES (?, ?, ?, ?, ?, ?, ?)`,
    ),
    deleteSubscription: db.prepare('DELETE FROM subscriptions WHERE client_id = ? AND filter = ?'),
    appendOutbox: db.prepare(
      `INSERT INTO outbox (client_id, seq, qos, packet_id, state, topic, payload, retain, properties,
         correlation_data, subscription_ids, expires_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ),
    updateOutbox: db.prepare('UPDATE outbox SET packet_id = ?, state = ? WHERE client_id = ? AND seq = ?'),
    deleteOutbox: db.prepare('DELETE FROM outbox WHERE client_id = ? AND seq = ?'),
    addInboundQos2: db.prepare('INSERT OR IGNORE INTO inbound_qos2 (client_id, packet_id) VALUES (?, ?)'),
    deleteInboundQos2: db.prepare('DELETE FROM inbound_qos2 WHERE client_id = ? AND packet_id = ?'),
    putRetained: db.prepare(
      `INSERT OR REPLACE INTO retained
         (topic, payload, qos, properties, correlation_data, expires_at, publisher_id)
       VALUES (?, ?, ?, ?, ?, ?, ?)`,
    ),
    deleteRetained: db.prepare('DELETE FROM retained WHERE topic = ?'),
    loadWills: db.prepare<[], WillRow>(
      `SELECT client_id, topic, payload, qos, retain, properties, correlation_data, delay_sec,
         expiry_sec, due_at FROM wills`,
    ),
    putWill: db.prepare(
      `INSERT OR REPLACE INTO wills (client_id, topic, payload, qos, retain, properties,
         correlation_data, delay_sec, expiry_sec, due_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ),
    deleteWill: db.prepare('DELETE FROM wills WHERE client_id = ?'),
  };
}

/** JSON of the properties minus correlationData (stored as a BLOB next to it); null stays null. */
function encodeProperties(p: StoredPublishProperties | null): string | null {
  if (p === null) return null;
  if (p.correlationData === undefined) return JSON.stringify(p);
  const { correlationData: _binary, ...text } = p;
  return JSON.stringify(text);
}

function decodeProperties(
  json: string | null,
  correlationData: Buffer | null,
): StoredPublishProperties | null {
  if (json === null) return null;
  const p = JSON.parse(json) as StoredPublishProperties;
  if (correlationData !== null) p.correlationData = correlationData;
  return p;
}

function isConstraintError(err: unknown): boolean {
  return (
    err instanceof Database.SqliteError &&
    typeof err.code === 'string' &&
    err.code.startsWith('SQLITE_CONSTRAINT')
  );
}
