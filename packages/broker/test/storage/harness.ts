import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteStorage, type SqliteStorageOptions } from '../../src/storage/sqlite.js';
import type { StorageHarness } from './contract.js';

export interface SqliteHarness extends StorageHarness {
  storage: SqliteStorage;
  dir: string;
  file: string;
  /** Open another instance on the same file (closed by cleanup()). */
  open(options?: Partial<SqliteStorageOptions>): Promise<SqliteStorage>;
}

/** A SqliteStorage on a fresh temp dir; cleanup() closes every instance and deletes the dir. */
export async function makeSqliteHarness(options: Partial<SqliteStorageOptions> = {}): Promise<SqliteHarness> {
  const dir = await mkdtemp(join(tmpdir(), 'bw-sqlite-'));
  const file = join(dir, 'breakwater.db');
  const instances: SqliteStorage[] = [];
  const open = async (extra: Partial<SqliteStorageOptions> = {}): Promise<SqliteStorage> => {
    const s = new SqliteStorage({ ...options, ...extra, file });
    instances.push(s);
    await s.open();
    return s;
  };
  const storage = await open();
  return {
    storage,
    dir,
    file,
    open,
    durable: () => open(),
    reopen: async () => {
      await storage.close();
      return open();
    },
    cleanup: async () => {
      for (const s of instances) await s.close().catch(() => {});
      await rm(dir, { recursive: true, force: true });
    },
  };
}
