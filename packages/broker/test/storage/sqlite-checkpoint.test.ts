/**
 * The broker storage's WAL checkpoints run in a worker thread, never inside a COMMIT on the event
 * loop (a checkpoint fsyncs; on a busy disk that stalls the broker for seconds, see
 * bench/results/sink-stall.md). Real SQLite files in a temp dir.
 */
import assert from 'node:assert/strict';
import { closeSync, existsSync, openSync, readSync } from 'node:fs';
import { describe, it } from 'node:test';
import Database from 'better-sqlite3';
import type { SqliteStorage } from '../../src/storage/sqlite.js';
import type { OutboxRecord } from '../../src/storage/types.js';
import { makeSqliteHarness } from './harness.js';

function record(seq: number): OutboxRecord {
  return {
    seq,
    qos: 1,
    packetId: null,
    state: 'queued',
    topic: `devices/d${seq}/telemetry`,
    payload: Buffer.from(JSON.stringify({ seq, temp: 20.5, pad: 'x'.repeat(200) })),
    retain: false,
    properties: null,
    subscriptionIds: null,
    expiresAt: null,
  };
}

function outboxRows(file: string): number {
  const raw = new Database(file, { readonly: true });
  try {
    return (raw.prepare('SELECT count(*) AS n FROM outbox').get() as { n: number }).n;
  } finally {
    raw.close();
  }
}

/** The WAL header's checkpoint sequence number: SQLite bumps it each time the WAL starts over. */
function walRestarts(file: string): number {
  const fd = openSync(`${file}-wal`, 'r');
  try {
    const header = Buffer.alloc(32);
    readSync(fd, header, 0, 32, 0);
    return header.readUInt32BE(12);
  } finally {
    closeSync(fd);
  }
}

async function until(cond: () => boolean, what: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

function checkpointerOf(storage: SqliteStorage) {
  const c = storage.checkpointer;
  assert.ok(c !== null, 'a checkpointer thread is running');
  return c;
}

describe('SqliteStorage: WAL checkpoints off the event loop', () => {
  it('the event-loop connection never checkpoints; the worker copies the WAL into the file', async (t) => {
    // A long interval: only checkpointNow() checkpoints during this test.
    const h = await makeSqliteHarness({ checkpointIntervalMs: 60_000 });
    t.after(() => h.cleanup());
    const s = h.storage;
    assert.equal(s.autocheckpointPages, 0);
    s.putSession({ clientId: 'c1', protocolVersion: 5, expiryInterval: 3600, disconnectedAt: null });
    let seq = 0;
    // Well past SQLite's default autocheckpoint (1,000 pages), one group commit at a time.
    for (let i = 0; i < 200; i++) {
      for (let j = 0; j < 20; j++) s.appendOutbox('c1', record(++seq));
      await s.flush();
    }
    const r = await checkpointerOf(s).checkpointNow();
    // Nothing had been checkpointed on the event loop: the worker copies every frame now.
    assert.ok(r.log > 1000, `WAL of ${r.log} frames`);
    assert.equal(r.checkpointed, r.log);
    assert.equal(checkpointerOf(s).framesCheckpointed, r.log);
    assert.equal(s.loadOutbox('c1').length, 4000);
  });

  it('a WAL that does not start over gets a quiet window: commits wait, nothing is lost, the WAL restarts', async (t) => {
    const h = await makeSqliteHarness({ checkpointIntervalMs: 10, quietAfterFrames: 50 });
    t.after(() => h.cleanup());
    const s = h.storage;
    s.putSession({ clientId: 'c1', protocolVersion: 5, expiryInterval: 3600, disconnectedAt: null });
    await s.flush();
    const restartsBefore = walRestarts(h.file);
    // A writer that records and flushes on every turn, as the engine does under load.
    let writing = true;
    let seq = 0;
    const flushes: Promise<void>[] = [];
    const writer = (async () => {
      while (writing) {
        for (let j = 0; j < 5; j++) s.appendOutbox('c1', record(++seq));
        flushes.push(s.flush());
        await new Promise((r) => setImmediate(r));
      }
    })();
    await until(() => checkpointerOf(s).quietWindows >= 2, 'two quiet windows', 20_000);
    // The first window ended and the writer's next commit started the WAL over, under load.
    const restartsWhileWriting = walRestarts(h.file) - restartsBefore;
    writing = false;
    await writer;
    // Every batch, including those recorded during a quiet window, commits.
    await Promise.all(flushes);
    assert.ok(restartsWhileWriting >= 1, `the WAL started over ${restartsWhileWriting} times under load`);
    assert.equal(s.loadOutbox('c1').length, seq);
    // Checkpoint everything, then one commit: it starts the WAL over from its beginning.
    await checkpointerOf(s).checkpointNow();
    s.appendOutbox('c1', record(++seq));
    await s.flush();
    const r = await checkpointerOf(s).checkpointNow();
    assert.ok(r.log < 10, `the WAL restarted (${r.log} frames)`);
    await s.close();
    assert.equal(outboxRows(h.file), seq);
  });

  it('close stops the worker; the last connection to close removes the WAL', async (t) => {
    const h = await makeSqliteHarness({ checkpointIntervalMs: 60_000 });
    t.after(() => h.cleanup());
    const s = h.storage;
    s.putSession({ clientId: 'c1', protocolVersion: 5, expiryInterval: 3600, disconnectedAt: null });
    for (let i = 1; i <= 100; i++) s.appendOutbox('c1', record(i));
    await s.flush();
    assert.ok(existsSync(`${h.file}-wal`));
    const c = checkpointerOf(s);
    await s.close();
    assert.equal(s.checkpointer, null);
    await assert.rejects(c.checkpointNow(), /not running/);
    assert.equal(existsSync(`${h.file}-wal`), false);
    assert.equal(outboxRows(h.file), 100);
  });

  it('an in-memory database has no checkpointer and keeps SQLite defaults', async (t) => {
    const { SqliteStorage } = await import('../../src/storage/sqlite.js');
    const s = new SqliteStorage({ file: ':memory:' });
    t.after(() => s.close());
    await s.open();
    assert.equal(s.checkpointer, null);
  });
});
