/**
 * The durable buffer: one SQLite file (better-sqlite3, WAL) holding every sink's queue, the
 * dead-letter queue, the rules created through the API and the sinks' paused state.
 *
 * Writes come in batches: the engine appends everything the broker handed it during one
 * event-loop turn in ONE transaction (`append`), so a burst of N messages costs one COMMIT.
 * Durability is SQLite's: with `synchronous = NORMAL` (the default) a committed batch survives the
 * process being killed, not a power loss; `full` fsyncs every commit (see the broker's SqliteStorage
 * for the same trade-off).
 *
 * Bounded: each sink's queue has a message and a byte cap; `append` applies the sink's overflow
 * policy in the same transaction (drop-oldest deletes the head, drop-new skips the message) and
 * reports what it dropped. The dead-letter queue keeps its newest `maxDeadLetters` entries.
 */
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import {
  BreakwaterError,
  type OverflowPolicy,
  SQLITE_DEFAULT_AUTOCHECKPOINT,
  WalCheckpointer,
} from '@breakwater/broker';
import Database from 'better-sqlite3';
import type { BufferedMessage } from '../types.js';

const WAL_SIZE_LIMIT = 64 * 2 ** 20;

const migrations: readonly string[] = [
  `
  CREATE TABLE queue (
    seq INTEGER PRIMARY KEY,
    sink TEXT NOT NULL,
    msg_id INTEGER NOT NULL,
    rule TEXT NOT NULL,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    publisher TEXT,
    received_at INTEGER NOT NULL
  );
  CREATE INDEX queue_by_sink ON queue (sink, seq);
  CREATE TABLE dead_letter (
    id INTEGER PRIMARY KEY,
    sink TEXT,
    msg_id INTEGER NOT NULL,
    rule TEXT,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    publisher TEXT,
    received_at INTEGER NOT NULL,
    failed_at INTEGER NOT NULL,
    reason TEXT NOT NULL,
    error_code TEXT NOT NULL,
    error TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    context TEXT
  );
  CREATE INDEX dead_letter_by_sink ON dead_letter (sink, id);
  CREATE TABLE api_rules (
    id TEXT PRIMARY KEY NOT NULL,
    body TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
  );
  CREATE TABLE sink_state (
    sink TEXT PRIMARY KEY NOT NULL,
    paused INTEGER NOT NULL,
    reason TEXT,
    changed_at INTEGER NOT NULL
  );
  CREATE TABLE meta (key TEXT PRIMARY KEY NOT NULL, value INTEGER NOT NULL);
  `,
];

/** A message the engine hands to one sink's queue. */
export interface Enqueue {
  sink: string;
  msgId: number;
  rule: string;
  topic: string;
  payload: Buffer;
  publisher: string | null;
  receivedAt: number;
}

export type DeadLetterReason = 'rejected' | 'invalid';

export interface NewDeadLetter {
  /** Null for a validation failure (it was on its way to no particular sink). */
  sink: string | null;
  msgId: number;
  rule: string | null;
  topic: string;
  payload: Buffer;
  publisher: string | null;
  receivedAt: number;
  failedAt: number;
  reason: DeadLetterReason;
  errorCode: string;
  error: string;
  attempts: number;
  context: Record<string, unknown> | null;
}

export interface DeadLetter extends NewDeadLetter {
  id: number;
}

export interface DeadLetterQuery {
  sink?: string;
  rule?: string;
  reason?: DeadLetterReason;
  /** Entries with an id below this (pages go newest first). */
  beforeId?: number;
  limit: number;
}

/** Which dead letters a replay or purge takes: ids, or everything matching the filters. */
export interface DeadLetterSelection {
  ids?: readonly number[];
  sink?: string;
  rule?: string;
  reason?: DeadLetterReason;
}

export interface SinkLimits {
  maxMessages: number;
  maxBytes: number;
  overflow: OverflowPolicy;
}

export interface QueueDepth {
  messages: number;
  bytes: number;
}

export interface StoredRule {
  id: string;
  body: unknown;
  createdAt: number;
  updatedAt: number;
}

interface QueueRow {
  seq: number;
  msg_id: number;
  rule: string;
  topic: string;
  payload: Buffer;
  publisher: string | null;
  received_at: number;
}

interface DeadLetterRow {
  id: number;
  sink: string | null;
  msg_id: number;
  rule: string | null;
  topic: string;
  payload: Buffer;
  publisher: string | null;
  received_at: number;
  failed_at: number;
  reason: DeadLetterReason;
  error_code: string;
  error: string;
  attempts: number;
  context: string | null;
}

export interface BufferStoreOptions {
  file: string;
  synchronous?: 'normal' | 'full';
  maxDeadLetters: number;
  /** Between two WAL checkpoints in the checkpointer thread (default 1,000 ms). */
  checkpointIntervalMs?: number;
  /** WAL size (frames) past which the checkpointer asks for a quiet window (default 4,096). */
  quietAfterFrames?: number;
  /** The checkpointer thread failed: the event-loop connection checkpoints by itself again. */
  onCheckpointerFailure?: (err: Error) => void;
}

export interface AppendResult {
  /** Messages dropped by an overflow policy, per sink. */
  dropped: Map<string, number>;
  /** Sinks that received at least one message. */
  touched: Set<string>;
}

export class BufferStore {
  readonly #db: Database.Database;
  readonly #maxDeadLetters: number;
  readonly #depth = new Map<string, QueueDepth>();
  readonly #limits = new Map<string, SinkLimits>();
  #deadLetters = 0;
  #lastMsgId = 0;
  readonly #s: ReturnType<typeof prepare>;
  readonly #checkpointer: WalCheckpointer;
  #held = false;
  readonly #afterHold: Array<() => void> = [];

  constructor(options: BufferStoreOptions) {
    mkdirSync(dirname(options.file), { recursive: true });
    try {
      this.#db = new Database(options.file);
      this.#db.pragma('journal_mode = WAL');
      this.#db.pragma(`synchronous = ${options.synchronous === 'full' ? 'FULL' : 'NORMAL'}`);
      this.#db.pragma('busy_timeout = 5000');
      // No checkpoint inside a COMMIT on the event loop: the checkpointer thread does them (its
      // fsyncs take seconds on a busy disk; see @breakwater/broker's storage/wal-checkpointer.ts).
      this.#db.pragma('wal_autocheckpoint = 0');
      // A WAL that grew during a burst is cut back to this size once it starts over.
      this.#db.pragma(`journal_size_limit = ${WAL_SIZE_LIMIT}`);
      migrate(this.#db);
    } catch (err) {
      throw new BreakwaterError('BW_ERR_STORAGE', `cannot open the integration buffer ${options.file}`, {
        cause: err,
      });
    }
    const onFailure = options.onCheckpointerFailure;
    this.#checkpointer = new WalCheckpointer({
      file: options.file,
      intervalMs: options.checkpointIntervalMs,
      quietAfterFrames: options.quietAfterFrames,
      hold: () => {
        this.#held = true;
      },
      release: () => {
        this.#held = false;
        const waiting = this.#afterHold.splice(0);
        for (const f of waiting) f();
      },
      onFailure: (err) => {
        // Fall back to SQLite's own checkpoints (on the event loop) rather than a WAL without bound.
        if (this.#db.open) this.#db.pragma(`wal_autocheckpoint = ${SQLITE_DEFAULT_AUTOCHECKPOINT}`);
        onFailure?.(err);
      },
    });
    this.#maxDeadLetters = options.maxDeadLetters;
    this.#s = prepare(this.#db);
    for (const r of this.#s.depths.all() as Array<{ sink: string; n: number; bytes: number }>) {
      this.#depth.set(r.sink, { messages: r.n, bytes: r.bytes });
    }
    this.#deadLetters = (this.#s.countDeadLetters.get() as { n: number }).n;
    const m = this.#s.maxMsgId.get() as { m: number | null };
    this.#lastMsgId = m.m ?? 0;
  }

  /** The next message id (ids are persisted with each append, never reused). */
  nextMsgId(): number {
    return ++this.#lastMsgId;
  }

  setLimits(sink: string, limits: SinkLimits): void {
    this.#limits.set(sink, limits);
  }

  depth(sink: string): QueueDepth {
    return this.#depth.get(sink) ?? { messages: 0, bytes: 0 };
  }

  /** Sinks that have buffered messages (including sinks no longer configured). */
  sinksWithMessages(): string[] {
    return [...this.#depth].filter(([, d]) => d.messages > 0).map(([s]) => s);
  }

  get deadLetterCount(): number {
    return this.#deadLetters;
  }

  /**
   * Appends in one transaction: the messages, the dead letters (validation samples), and the last
   * message id. Applies each sink's overflow policy. Throws BW_ERR_STORAGE when SQLite fails (the
   * whole batch is then rolled back: nothing half-written).
   */
  append(entries: readonly Enqueue[], deadLetters: readonly NewDeadLetter[]): AppendResult {
    const result: AppendResult = { dropped: new Map(), touched: new Set() };
    if (entries.length === 0 && deadLetters.length === 0) return result;
    const before = new Map<string, QueueDepth>();
    try {
      this.#db.transaction(() => {
        for (const e of entries) {
          let d = this.#depth.get(e.sink);
          if (d === undefined) {
            d = { messages: 0, bytes: 0 };
            this.#depth.set(e.sink, d);
          }
          if (!before.has(e.sink)) before.set(e.sink, { ...d });
          const limits = this.#limits.get(e.sink);
          if (limits !== undefined && !this.#makeRoom(e.sink, d, e.payload.length, limits, result)) continue;
          this.#s.insert.run(e.sink, e.msgId, e.rule, e.topic, e.payload, e.publisher, e.receivedAt);
          d.messages++;
          d.bytes += e.payload.length;
          result.touched.add(e.sink);
        }
        this.#insertDeadLetters(deadLetters);
        this.#s.setMeta.run('last_msg_id', this.#lastMsgId);
      })();
    } catch (err) {
      // Rolled back: restore the counters of what this call changed.
      for (const [sink, d] of before) this.#depth.set(sink, d);
      this.#deadLetters = (this.#s.countDeadLetters.get() as { n: number }).n;
      throw new BreakwaterError('BW_ERR_STORAGE', 'integration buffer append failed', { cause: err });
    }
    return result;
  }

  /** Room for one message of `bytes` under the sink's caps: false = drop it (drop-new). */
  #makeRoom(sink: string, d: QueueDepth, bytes: number, l: SinkLimits, result: AppendResult): boolean {
    if (d.messages + 1 <= l.maxMessages && d.bytes + bytes <= l.maxBytes) return true;
    if (l.overflow === 'drop-new' || bytes > l.maxBytes) {
      result.dropped.set(sink, (result.dropped.get(sink) ?? 0) + 1);
      return false;
    }
    // drop-oldest: delete from the head until the new message fits (in chunks: one statement each).
    while (d.messages > 0 && (d.messages + 1 > l.maxMessages || d.bytes + bytes > l.maxBytes)) {
      const excess = Math.max(1, d.messages + 1 - l.maxMessages);
      const n = Math.min(excess, 1000);
      const gone = this.#s.headStats.get(sink, n) as { n: number; bytes: number | null; last: number | null };
      if (gone.n === 0 || gone.last === null) break;
      this.#s.deleteUpTo.run(sink, gone.last);
      d.messages -= gone.n;
      d.bytes -= gone.bytes ?? 0;
      result.dropped.set(sink, (result.dropped.get(sink) ?? 0) + gone.n);
    }
    return true;
  }

  /** Up to `limit` messages of the sink after `afterSeq`, oldest first. */
  read(sink: string, afterSeq: number, limit: number): BufferedMessage[] {
    const rows = this.#s.read.all(sink, afterSeq, limit) as QueueRow[];
    return rows.map((r) => ({
      seq: r.seq,
      msgId: r.msg_id,
      rule: r.rule,
      topic: r.topic,
      payload: r.payload,
      publisher: r.publisher,
      receivedAt: r.received_at,
    }));
  }

  /** Epoch ms of the oldest buffered message of the sink, or null when its queue is empty. */
  oldest(sink: string): number | null {
    const r = this.#s.oldest.get(sink) as { received_at: number } | undefined;
    return r?.received_at ?? null;
  }

  /**
   * Removes the delivered range of a batch and, in the same transaction, writes the dead letters
   * of the messages the sink rejected. Returns how many queue rows went.
   */
  complete(sink: string, firstSeq: number, lastSeq: number, deadLetters: readonly NewDeadLetter[]): number {
    let removed = 0;
    this.#db.transaction(() => {
      const st = this.#s.rangeStats.get(sink, firstSeq, lastSeq) as { n: number; bytes: number | null };
      this.#s.deleteRange.run(sink, firstSeq, lastSeq);
      removed = st.n;
      const d = this.#depth.get(sink);
      if (d !== undefined) {
        d.messages -= st.n;
        d.bytes -= st.bytes ?? 0;
      }
      this.#insertDeadLetters(deadLetters);
    })();
    return removed;
  }

  #insertDeadLetters(list: readonly NewDeadLetter[]): void {
    for (const dl of list) {
      this.#s.insertDeadLetter.run(
        dl.sink,
        dl.msgId,
        dl.rule,
        dl.topic,
        dl.payload,
        dl.publisher,
        dl.receivedAt,
        dl.failedAt,
        dl.reason,
        dl.errorCode,
        dl.error,
        dl.attempts,
        dl.context === null ? null : JSON.stringify(dl.context),
      );
      this.#deadLetters++;
    }
    if (list.length > 0 && this.#deadLetters > this.#maxDeadLetters) {
      const over = this.#deadLetters - this.#maxDeadLetters;
      this.#s.trimDeadLetters.run(over);
      this.#deadLetters -= over;
    }
  }

  listDeadLetters(q: DeadLetterQuery): DeadLetter[] {
    const where: string[] = [];
    const params: unknown[] = [];
    if (q.sink !== undefined) {
      where.push('sink = ?');
      params.push(q.sink);
    }
    if (q.rule !== undefined) {
      where.push('rule = ?');
      params.push(q.rule);
    }
    if (q.reason !== undefined) {
      where.push('reason = ?');
      params.push(q.reason);
    }
    if (q.beforeId !== undefined) {
      where.push('id < ?');
      params.push(q.beforeId);
    }
    const sql = `SELECT * FROM dead_letter${where.length ? ` WHERE ${where.join(' AND ')}` : ''} ORDER BY id DESC LIMIT ?`;
    return (this.#db.prepare(sql).all(...params, q.limit) as DeadLetterRow[]).map(deadLetterOf);
  }

  getDeadLetter(id: number): DeadLetter | null {
    const r = this.#s.getDeadLetter.get(id) as DeadLetterRow | undefined;
    return r === undefined ? null : deadLetterOf(r);
  }

  /** The dead letters a selection names, oldest first (at most `limit`). */
  selectDeadLetters(sel: DeadLetterSelection, limit: number): DeadLetter[] {
    if (sel.ids !== undefined) {
      return sel.ids
        .slice(0, limit)
        .map((id) => this.getDeadLetter(id))
        .filter((d): d is DeadLetter => d !== null)
        .sort((a, b) => a.id - b.id);
    }
    const where: string[] = [];
    const params: unknown[] = [];
    for (const [col, v] of [
      ['sink', sel.sink],
      ['rule', sel.rule],
      ['reason', sel.reason],
    ] as const) {
      if (v === undefined) continue;
      where.push(`${col} = ?`);
      params.push(v);
    }
    const sql = `SELECT * FROM dead_letter${where.length ? ` WHERE ${where.join(' AND ')}` : ''} ORDER BY id LIMIT ?`;
    return (this.#db.prepare(sql).all(...params, limit) as DeadLetterRow[]).map(deadLetterOf);
  }

  /**
   * Moves dead letters back into sink queues (same message id, so sinks can deduplicate) in one
   * transaction. `targets` gives each entry's sink, or null to leave it where it is.
   */
  requeue(
    entries: ReadonlyArray<{ dl: DeadLetter; sink: string }>,
    receivedAtNow: boolean,
    now: number,
  ): number {
    let n = 0;
    this.#db.transaction(() => {
      for (const { dl, sink } of entries) {
        this.#s.insert.run(
          sink,
          dl.msgId,
          dl.rule ?? 'replay',
          dl.topic,
          dl.payload,
          dl.publisher,
          receivedAtNow ? now : dl.receivedAt,
        );
        const d = this.#depth.get(sink) ?? { messages: 0, bytes: 0 };
        d.messages++;
        d.bytes += dl.payload.length;
        this.#depth.set(sink, d);
        this.#s.deleteDeadLetter.run(dl.id);
        this.#deadLetters--;
        n++;
      }
    })();
    return n;
  }

  deleteDeadLetters(ids: readonly number[]): number {
    let n = 0;
    this.#db.transaction(() => {
      for (const id of ids) n += this.#s.deleteDeadLetter.run(id).changes;
    })();
    this.#deadLetters -= n;
    return n;
  }

  // --- rules created through the API, sink pause state ---

  listRules(): StoredRule[] {
    return (
      this.#s.listRules.all() as Array<{ id: string; body: string; created_at: number; updated_at: number }>
    ).map((r) => ({
      id: r.id,
      body: JSON.parse(r.body) as unknown,
      createdAt: r.created_at,
      updatedAt: r.updated_at,
    }));
  }

  putRule(id: string, body: unknown, now: number): void {
    this.#s.putRule.run(id, JSON.stringify(body), now, now);
  }

  deleteRule(id: string): boolean {
    return this.#s.deleteRule.run(id).changes > 0;
  }

  pausedSinks(): Map<string, { reason: string | null; at: number }> {
    const out = new Map<string, { reason: string | null; at: number }>();
    for (const r of this.#s.paused.all() as Array<{
      sink: string;
      reason: string | null;
      changed_at: number;
    }>) {
      out.set(r.sink, { reason: r.reason, at: r.changed_at });
    }
    return out;
  }

  setPaused(sink: string, paused: boolean, reason: string | null, now: number): void {
    this.#s.setPaused.run(sink, paused ? 1 : 0, reason, now);
  }

  /**
   * True during a checkpointer's quiet window: the engine defers `append` (see @breakwater/broker's
   * storage/wal-checkpointer.ts) and calls it again from `afterHold`. Other writes go on (they are rare, and only cost a retry).
   */
  get appendsHeld(): boolean {
    return this.#held;
  }

  /** Runs `f` once the quiet window ends (at once if there is none). */
  afterHold(f: () => void): void {
    if (this.#held) this.#afterHold.push(f);
    else f();
  }

  /** The checkpointer thread (tests: it, not the event-loop connection, checkpoints the WAL). */
  get checkpointer(): WalCheckpointer {
    return this.#checkpointer;
  }

  /** The event-loop connection's `wal_autocheckpoint` (0: checkpoints are the worker's). */
  get autocheckpointPages(): number {
    return this.#db.pragma('wal_autocheckpoint', { simple: true }) as number;
  }

  /** Closes the file; resolves when the checkpointer thread has closed its connection too. */
  close(): Promise<void> {
    const stopped = this.#checkpointer.close();
    if (this.#db.open) this.#db.close();
    return stopped;
  }
}

function deadLetterOf(r: DeadLetterRow): DeadLetter {
  return {
    id: r.id,
    sink: r.sink,
    msgId: r.msg_id,
    rule: r.rule,
    topic: r.topic,
    payload: r.payload,
    publisher: r.publisher,
    receivedAt: r.received_at,
    failedAt: r.failed_at,
    reason: r.reason,
    errorCode: r.error_code,
    error: r.error,
    attempts: r.attempts,
    context: r.context === null ? null : (JSON.parse(r.context) as Record<string, unknown>),
  };
}

function migrate(db: Database.Database): void {
  const version = db.pragma('user_version', { simple: true }) as number;
  for (let v = version; v < migrations.length; v++) {
    db.transaction(() => {
      db.exec(migrations[v]!);
      db.pragma(`user_version = ${v + 1}`);
    })();
  }
}

function prepare(db: Database.Database) {
  return {
    insert: db.prepare(
      'INSERT INTO queue (sink, msg_id, rule, topic, payload, publisher, received_at) VALUES (?, ?, ?, ?, ?, ?, ?)',
    ),
    read: db.prepare(
      'SELECT seq, msg_id, rule, topic, payload, publisher, received_at FROM queue WHERE sink = ? AND seq > ? ORDER BY seq LIMIT ?',
    ),
    oldest: db.prepare('SELECT received_at FROM queue WHERE sink = ? ORDER BY seq LIMIT 1'),
    depths: db.prepare(
      'SELECT sink, count(*) AS n, coalesce(sum(length(payload)), 0) AS bytes FROM queue GROUP BY sink',
    ),
    rangeStats: db.prepare(
      'SELECT count(*) AS n, sum(length(payload)) AS bytes FROM queue WHERE sink = ? AND seq BETWEEN ? AND ?',
    ),
    deleteRange: db.prepare('DELETE FROM queue WHERE sink = ? AND seq BETWEEN ? AND ?'),
    headStats: db.prepare(
      'SELECT count(*) AS n, sum(len) AS bytes, max(seq) AS last FROM (SELECT seq, length(payload) AS len FROM queue WHERE sink = ? ORDER BY seq LIMIT ?)',
    ),
    deleteUpTo: db.prepare('DELETE FROM queue WHERE sink = ? AND seq <= ?'),
    maxMsgId: db.prepare(
      `SELECT max(m) AS m FROM (
         SELECT max(msg_id) AS m FROM queue UNION ALL SELECT max(msg_id) FROM dead_letter
         UNION ALL SELECT value FROM meta WHERE key = 'last_msg_id')`,
    ),
    setMeta: db.prepare(
      'INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value',
    ),
    insertDeadLetter: db.prepare(
      `INSERT INTO dead_letter (sink, msg_id, rule, topic, payload, publisher, received_at, failed_at, reason, error_code, error, attempts, context)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ),
    countDeadLetters: db.prepare('SELECT count(*) AS n FROM dead_letter'),
    trimDeadLetters: db.prepare(
      'DELETE FROM dead_letter WHERE id IN (SELECT id FROM dead_letter ORDER BY id LIMIT ?)',
    ),
    getDeadLetter: db.prepare('SELECT * FROM dead_letter WHERE id = ?'),
    deleteDeadLetter: db.prepare('DELETE FROM dead_letter WHERE id = ?'),
    listRules: db.prepare('SELECT id, body, created_at, updated_at FROM api_rules ORDER BY id'),
    putRule: db.prepare(
      'INSERT INTO api_rules (id, body, created_at, updated_at) VALUES (?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET body = excluded.body, updated_at = excluded.updated_at',
    ),
    deleteRule: db.prepare('DELETE FROM api_rules WHERE id = ?'),
    paused: db.prepare('SELECT sink, reason, changed_at FROM sink_state WHERE paused = 1'),
    setPaused: db.prepare(
      'INSERT INTO sink_state (sink, paused, reason, changed_at) VALUES (?, ?, ?, ?) ON CONFLICT (sink) DO UPDATE SET paused = excluded.paused, reason = excluded.reason, changed_at = excluded.changed_at',
    ),
  };
}
