import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteControlStorage } from '../src/storage/sqlite.js';
import { storageContract } from './storage-contract.js';

storageContract('sqlite (file)', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'bw-control-'));
  const storage = SqliteControlStorage.open({ file: join(dir, 'control.db') });
  return {
    storage,
    cleanup: async () => {
      await storage.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
});
