/**
 * WAL checkpoints off the event loop.
 *
 * better-sqlite3 is synchronous, and by default SQLite checkpoints the WAL inside the COMMIT that
 * takes it past 1,000 pages: that commit copies the WAL into the database file and fsyncs both. On
 * a busy disk the fsync takes seconds, and it runs on the broker's event loop: nothing is read,
 * routed or acknowledged meanwhile, the next turn's batch is larger, fills the WAL again at once,
 * and the next commit checkpoints again (bench/results/sink-stall.md). With `synchronous = NORMAL`
 * a WAL commit itself never fsyncs, so the checkpoint is the only disk wait on the event loop.
 *
 * So the event-loop connection runs with `wal_autocheckpoint = 0`, and this worker thread, with its
 * own connection to the same file, runs `PRAGMA wal_checkpoint(PASSIVE)` every `intervalMs`.
 * PASSIVE never blocks the writer (the writer keeps appending to the WAL while pages are copied).
 *
 * The WAL only starts over from its beginning when a write begins while the WAL is *entirely*
 * checkpointed. A writer committing every few milliseconds never leaves such a moment (it appends
 * during each checkpoint's fsync), so the WAL would grow without bound. Hence the quiet window:
 * when a checkpoint finds the WAL past `quietAfterFrames` (it has not started over for a while), the worker asks
 * for a pause (`hold`: the caller defers its writes — PUBACKs wait, the event loop does not),
 * checkpoints the frames appended meanwhile, and releases (`release`); the next append starts
 * the WAL over. The pause never lasts more than `maxQuietMs`; if the disk is slower than that the
 * WAL grows for now and the next checkpoint tries again.
 *
 * Used by the broker's storage (storage/sqlite.ts) and by the integration buffer
 * (@breakwater/integration buffer/store.ts).
 *
 * The worker is eval'd JavaScript (no file to resolve from source or from dist) that loads the same
 * better-sqlite3 the caller uses.
 */
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

/** SQLite's default `wal_autocheckpoint` (pages): what a caller restores if the checkpointer fails. */
export const SQLITE_DEFAULT_AUTOCHECKPOINT = 1000;

/** `PRAGMA wal_checkpoint` result: WAL frames in the log, and how many are in the database file. */
export interface CheckpointResult {
  busy: number;
  log: number;
  checkpointed: number;
}

export interface WalCheckpointerOptions {
  file: string;
  /** Between two checkpoints (default 1,000 ms: ~1 s of writes in the WAL). */
  intervalMs?: number;
  /** A checkpoint that leaves frames behind asks for a quiet window past this WAL size (frames). */
  quietAfterFrames?: number;
  /** The longest quiet window (default 500 ms). */
  maxQuietMs?: number;
  /** Defer writes on the event-loop connection until `release`. */
  hold: () => void;
  release: () => void;
  /** The worker failed or exited: the caller must checkpoint by itself again. Called once. */
  onFailure: (err: Error) => void;
}

const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driver);
const db = new Database(workerData.file);
let timer = null;
let closing = false;
function checkpoint() {
  const r = db.pragma('wal_checkpoint(PASSIVE)')[0];
  return { busy: r.busy, log: r.log, checkpointed: r.checkpointed };
}
function tick() {
  timer = null;
  if (closing) return;
  const r = checkpoint();
  if (r.log > 0) parentPort.postMessage({ type: 'checkpoint', result: r });
  // A long WAL has not started over for a while (the writer appended during every checkpoint):
  // ask for a quiet window to finish (see the module comment). 'log' is the WAL length this
  // checkpoint saw; frames appended meanwhile are not counted in it.
  if (r.log > workerData.quietAfterFrames) parentPort.postMessage({ type: 'want-quiet' });
  else timer = setTimeout(tick, workerData.intervalMs);
}
parentPort.on('message', (m) => {
  if (m.type === 'quiet') {
    if (closing) return;
    parentPort.postMessage({ type: 'quiet-done', result: checkpoint() });
    timer = setTimeout(tick, workerData.intervalMs);
  } else if (m.type === 'now') {
    parentPort.postMessage({ type: 'now', id: m.id, result: checkpoint() });
  } else if (m.type === 'close') {
    closing = true;
    if (timer !== null) clearTimeout(timer);
    db.close();
    parentPort.close();
  }
});
timer = setTimeout(tick, workerData.intervalMs);
parentPort.postMessage({ type: 'ready' });
`;

export class WalCheckpointer {
  readonly #worker: Worker;
  readonly #exited: Promise<void>;
  readonly #onFailure: (err: Error) => void;
  readonly #pending = new Map<
    number,
    { resolve: (r: CheckpointResult) => void; reject: (e: Error) => void }
  >();
  #nextId = 0;
  #closing = false;
  #failed = false;
  #checkpointed = 0;
  #quietWindows = 0;
  #maxLogFrames = 0;
  #quietTimer: NodeJS.Timeout | null = null;
  readonly #hold: () => void;
  readonly #release: () => void;

  constructor(o: WalCheckpointerOptions) {
    this.#onFailure = o.onFailure;
    this.#hold = o.hold;
    this.#release = o.release;
    const maxQuietMs = o.maxQuietMs ?? 500;
    this.#worker = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: {
        file: o.file,
        intervalMs: o.intervalMs ?? 1_000,
        quietAfterFrames: o.quietAfterFrames ?? 4_096,
        driver: createRequire(import.meta.url).resolve('better-sqlite3'),
      },
    });
    // A checkpointer alone never keeps the process alive.
    this.#worker.unref();
    this.#worker.on('message', (m: { type: string; id?: number; result?: CheckpointResult }) => {
      if (m.result !== undefined) {
        if (m.result.checkpointed > 0) this.#checkpointed += m.result.checkpointed;
        this.#maxLogFrames = Math.max(this.#maxLogFrames, m.result.log);
      }
      if (m.type === 'want-quiet') {
        // Asked just before close: no window, the caller is about to commit and close.
        if (this.#closing || this.#failed) return;
        // Between two event-loop turns: no write is in progress on the event-loop connection.
        this.#quietWindows++;
        this.#hold();
        this.#quietTimer = setTimeout(() => this.#endQuiet(), maxQuietMs);
        this.#worker.postMessage({ type: 'quiet' });
      } else if (m.type === 'quiet-done') {
        this.#endQuiet();
      } else if (m.type === 'now' && m.id !== undefined) {
        this.#pending.get(m.id)?.resolve(m.result!);
        this.#pending.delete(m.id);
        if (this.#pending.size === 0) this.#worker.unref();
      }
    });
    this.#worker.on('error', (err) => this.#fail(err));
    this.#exited = new Promise<void>((resolve) => {
      this.#worker.once('exit', (code) => {
        if (!this.#closing) this.#fail(new Error(`WAL checkpointer exited (${code})`));
        resolve();
      });
    });
  }

  /** WAL frames the worker has copied into the database file so far. */
  get framesCheckpointed(): number {
    return this.#checkpointed;
  }

  /** The longest WAL (frames) a checkpoint has seen. */
  get maxLogFrames(): number {
    return this.#maxLogFrames;
  }

  /** Quiet windows the worker asked for so far. */
  get quietWindows(): number {
    return this.#quietWindows;
  }

  #endQuiet(): void {
    if (this.#quietTimer === null) return;
    clearTimeout(this.#quietTimer);
    this.#quietTimer = null;
    this.#release();
  }

  /** Checkpoints now in the worker (tests, and an operator's "flush the WAL"). */
  checkpointNow(): Promise<CheckpointResult> {
    const id = ++this.#nextId;
    return new Promise((resolve, reject) => {
      if (this.#failed || this.#closing) {
        reject(new Error('WAL checkpointer is not running'));
        return;
      }
      this.#pending.set(id, { resolve, reject });
      // Someone awaits the answer: the thread keeps the process alive until it comes.
      this.#worker.ref();
      this.#worker.postMessage({ type: 'now', id });
    });
  }

  /** Stops the timer and closes the worker's connection; resolves when the thread is gone. */
  close(): Promise<void> {
    if (!this.#closing) {
      this.#closing = true;
      this.#endQuiet();
      this.#worker.ref();
      this.#worker.postMessage({ type: 'close' });
    }
    return this.#exited;
  }

  #fail(err: Error): void {
    if (this.#failed || this.#closing) return;
    this.#failed = true;
    this.#endQuiet();
    for (const p of this.#pending.values()) p.reject(err);
    this.#pending.clear();
    this.#onFailure(err);
  }
}
