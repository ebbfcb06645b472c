import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import type { BreakwaterError } from '../../src/errors.js';
import { SQLITE_SCHEMA_VERSION } from '../../src/storage/sqlite.js';
import type { OutboxRecord } from '../../src/storage/types.js';
import { runStorageContract } from './contract.js';
import { makeSqliteHarness } from './harness.js';

runStorageContract('sqlite', () => makeSqliteHarness());
runStorageContract('sqlite (synchronous=full)', () => makeSqliteHarness({ synchronous: 'full' }));

const repoRoot = fileURLToPath(new URL('../../../../', import.meta.url));
const crashChild = fileURLToPath(new URL('../fixtures/storage-crash-child.ts', import.meta.url));

function row(seq: number): OutboxRecord {
  return {
    seq,
    qos: 1,
    packetId: null,
    state: 'queued',
    topic: `t/${seq}`,
    payload: Buffer.from(`p${seq}`),
    retain: false,
    properties: null,
    subscriptionIds: null,
    expiresAt: null,
  };
}

describe('SqliteStorage', () => {
  it('creates a versioned schema in WAL mode with the configured synchronous level', async (t) => {
    for (const synchronous of ['normal', 'full'] as const) {
      const h = await makeSqliteHarness({ synchronous });
      t.after(() => h.cleanup());
      const raw = new Database(h.file, { readonly: true });
      t.after(() => raw.close());
      assert.deepEqual(raw.prepare("SELECT value FROM meta WHERE key = 'schema_version'").get(), {
        value: String(SQLITE_SCHEMA_VERSION),
      });
      const tables = raw
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .all()
        .map((r) => (r as { name: string }).name);
      assert.deepEqual(tables, [
        'inbound_qos2',
        'meta',
        'outbox',
        'retained',
        'sessions',
        'subscriptions',
        'wills',
      ]);
      assert.equal(raw.pragma('journal_mode', { simple: true }), 'wal');
      // synchronous is per connection, so ask the storage's own connection.
      assert.deepEqual(h.storage.durability(), { journalMode: 'wal', synchronous });
      // Opening the file again keeps the version (no second migration).
      const again = await h.open();
      again.putSession({ clientId: 'x', protocolVersion: 5, expiryInterval: 0, disconnectedAt: null });
      await again.flush();
    }
  });

  it('refuses a database with a newer schema version', async (t) => {
    const h = await makeSqliteHarness();
    t.after(() => h.cleanup());
    await h.storage.close();
    const raw = new Database(h.file);
    raw
      .prepare("UPDATE meta SET value = ? WHERE key = 'schema_version'")
      .run(String(SQLITE_SCHEMA_VERSION + 1));
    raw.close();
    await assert.rejects(h.open(), (err: BreakwaterError) => {
      assert.equal(err.code, 'BW_ERR_STORAGE');
      assert.match(err.message, /newer than this Breakwater supports/);
      return true;
    });
  });

  it('group commit: one transaction per turn, one shared flush promise per batch', async (t) => {
    const h = await makeSqliteHarness();
    t.after(() => h.cleanup());
    const s = h.storage;
    const raw = new Database(h.file, { readonly: true });
    t.after(() => raw.close());
    const countRows = raw.prepare('SELECT count(*) AS n FROM outbox').pluck();

    const before = s.commits;
    for (let seq = 1; seq <= 1000; seq++) s.appendOutbox('a', row(seq));
    const f1 = s.flush();
    s.deleteOutbox('a', 1000);
    const f2 = s.flush();
    assert.equal(f1, f2, 'flush() calls within one batch share one promise');
    // Recorded, visible to this connection, not yet committed for anyone else.
    assert.equal(s.loadOutbox('a').length, 999);
    assert.equal(countRows.get(), 0);
    await f1;
    assert.equal(countRows.get(), 999);
    assert.equal(s.commits - before, 1, 'all 1001 mutations committed in one transaction');

    // A new batch gets a new promise.
    s.deleteOutbox('a', 999);
    const f3 = s.flush();
    assert.notEqual(f3, f1);
    await f3;
    assert.equal(countRows.get(), 998);
    assert.equal(s.commits - before, 2);
  });

  it('a failed commit rejects flush() with BW_ERR_STORAGE and keeps the mutations for the retry', async (t) => {
    const h = await makeSqliteHarness({ busyTimeoutMs: 0 });
    t.after(() => h.cleanup());
    const s = h.storage;
    // Another connection holds the write lock, so our writes fail with SQLITE_BUSY.
    const locker = new Database(h.file);
    t.after(() => locker.close());
    locker.exec('BEGIN IMMEDIATE');

    s.appendOutbox('a', row(1));
    s.appendOutbox('a', row(2));
    s.putRetained({
      topic: 'r',
      payload: Buffer.from('x'),
      qos: 0,
      properties: null,
      expiresAt: null,
      publisherId: null,
    });
    await assert.rejects(s.flush(), (err: BreakwaterError) => {
      assert.equal(err.code, 'BW_ERR_STORAGE');
      assert.equal((err.cause as { code?: string }).code, 'SQLITE_BUSY');
      return true;
    });
    // Still locked: the next attempt fails again, without dropping anything.
    s.appendOutbox('a', row(3));
    await assert.rejects(s.flush(), (err: BreakwaterError) => err.code === 'BW_ERR_STORAGE');

    locker.exec('COMMIT');
    assert.deepEqual(
      s.loadOutbox('a').map((r) => r.seq),
      [1, 2, 3],
    );
    await s.flush();
    const d = await h.durable();
    assert.deepEqual(d.loadOutbox('a'), [row(1), row(2), row(3)]);
    assert.equal(d.loadRetained().length, 1);
  });

  it('close() rejects with BW_ERR_STORAGE when the final commit fails', async (t) => {
    const h = await makeSqliteHarness({ busyTimeoutMs: 0 });
    t.after(() => h.cleanup());
    const locker = new Database(h.file);
    t.after(() => locker.close());
    locker.exec('BEGIN IMMEDIATE');
    h.storage.appendOutbox('a', row(1));
    await assert.rejects(h.storage.close(), (err: BreakwaterError) => {
      assert.equal(err.code, 'BW_ERR_STORAGE');
      assert.match(err.message, /1 uncommitted mutations lost on close/);
      return true;
    });
    locker.exec('COMMIT');
  });

  it('flushed rows survive SIGKILL of the writing process', { timeout: 60_000 }, async (t) => {
    const h = await makeSqliteHarness();
    t.after(() => h.cleanup());
    await h.storage.close();
    const n = 2000;
    const child = spawn(
      process.execPath,
      ['--conditions=source', '--import', 'tsx', crashChild, h.file, String(n)],
      {
        cwd: repoRoot,
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    const exited = once(child, 'exit');
    t.after(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
    });
    let stdout = '';
    child.stdout.setEncoding('utf8');
    for await (const chunk of child.stdout) {
      stdout += chunk;
      if (stdout.includes('flushed\n')) break;
    }
    assert.ok(stdout.includes('flushed\n'), `child did not flush; stderr: ${stderr}`);
    child.kill('SIGKILL');
    const [code, signal] = await exited;
    assert.equal(code, null);
    assert.equal(signal, 'SIGKILL');

    const raw = new Database(h.file);
    assert.equal(raw.pragma('integrity_check', { simple: true }), 'ok');
    raw.close();

    const reopened = await h.open();
    const rows = reopened.loadOutbox('crash-client');
    assert.ok(rows.length >= n, `expected at least ${n} rows, found ${rows.length}`);
    // Flushed rows are all there, byte-exact; later (unflushed) batches are all-or-nothing, in order.
    rows.forEach((r, i) => {
      assert.equal(r.seq, i + 1);
      assert.equal(r.topic, `crash/${i + 1}`);
      assert.deepEqual(r.payload, Buffer.from(`message ${i + 1}`));
      assert.deepEqual(r.properties, {
        correlationData: Buffer.from([(i + 1) & 0xff, 0]),
        userProperties: { seq: String(i + 1) },
      });
    });
  });
});
