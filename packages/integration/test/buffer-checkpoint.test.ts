/**
 * The durable buffer's WAL checkpoints run in a worker thread, never inside a COMMIT on the event
 * loop (a checkpoint fsyncs; on a busy disk that stalled the broker for seconds at a time, see
 * bench/results/sink-stall.md). Real SQLite files in a temp dir.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { BufferStore, type Enqueue } from '../src/buffer/store.js';
import { waitFor } from './helpers.js';

function tempFile(): string {
  const dir = mkdtempSync(join(tmpdir(), 'bw-buffer-ckpt-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  return join(dir, 'integration.db');
}

function batch(store: BufferStore, n: number): Enqueue[] {
  return Array.from({ length: n }, () => {
    const msgId = store.nextMsgId();
    return {
      sink: 's1',
      msgId,
      rule: 'r1',
      topic: `devices/d${msgId}/telemetry`,
      payload: Buffer.from(JSON.stringify({ seq: msgId, temp: 20.5 })),
      publisher: `d${msgId}`,
      receivedAt: Date.now(),
    };
  });
}

describe('integration buffer: WAL checkpoints off the event loop', () => {
  it('the event-loop connection never checkpoints; the worker copies the WAL into the file', async () => {
    // A long interval: only checkpointNow() checkpoints during this test.
    const store = new BufferStore({ file: tempFile(), maxDeadLetters: 10, checkpointIntervalMs: 60_000 });
    try {
      assert.equal(store.autocheckpointPages, 0);
      // Well past SQLite's default autocheckpoint (1,000 pages), one commit at a time.
      for (let i = 0; i < 400; i++) store.append(batch(store, 20), []);
      const r = await store.checkpointer.checkpointNow();
      // Nothing had been checkpointed on the event loop: the worker copies every frame now.
      assert.ok(r.log > 1000, `WAL of ${r.log} frames`);
      assert.equal(r.checkpointed, r.log);
      assert.equal(store.checkpointer.framesCheckpointed, r.log);
      assert.equal(store.depth('s1').messages, 8000);
    } finally {
      await store.close();
    }
  });

  it('a WAL that does not start over gets a quiet window: appends wait, then the WAL restarts', async () => {
    const store = new BufferStore({
      file: tempFile(),
      maxDeadLetters: 10,
      checkpointIntervalMs: 10,
      quietAfterFrames: 50,
    });
    try {
      let heldSeen = false;
      // A writer that commits on every turn, as the engine does under load, honouring the hold.
      let writing = true;
      const writer = (async () => {
        while (writing) {
          if (store.appendsHeld) heldSeen = true;
          else store.append(batch(store, 5), []);
          await new Promise((r) => setImmediate(r));
        }
      })();
      await waitFor(() => store.checkpointer.quietWindows >= 2, 'two quiet windows', 20_000);
      writing = false;
      await writer;
      assert.ok(heldSeen, 'the writer saw appendsHeld during a quiet window');
      await waitFor(() => !store.appendsHeld, 'the end of the quiet window', 5_000);
      // Checkpoint everything, then one append: it starts the WAL over from its beginning.
      await store.checkpointer.checkpointNow();
      store.append(batch(store, 1), []);
      const r = await store.checkpointer.checkpointNow();
      assert.ok(r.log < 10, `the WAL restarted (${r.log} frames)`);
    } finally {
      await store.close();
    }
  });

  it('appends are not held outside a quiet window, and afterHold runs at once', async () => {
    const store = new BufferStore({ file: tempFile(), maxDeadLetters: 10 });
    try {
      assert.equal(store.appendsHeld, false);
      let ran = false;
      store.afterHold(() => {
        ran = true;
      });
      assert.equal(ran, true);
    } finally {
      await store.close();
    }
  });

  it('close stops the worker; the last connection to close checkpoints and removes the WAL', async () => {
    const file = tempFile();
    const store = new BufferStore({ file, maxDeadLetters: 10, checkpointIntervalMs: 60_000 });
    store.append(batch(store, 100), []);
    assert.ok(existsSync(`${file}-wal`));
    await store.close();
    assert.equal(existsSync(`${file}-wal`), false);
    const reopened = new BufferStore({ file, maxDeadLetters: 10 });
    try {
      assert.equal(reopened.depth('s1').messages, 100);
    } finally {
      await reopened.close();
    }
  });
});
