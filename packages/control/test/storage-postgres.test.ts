import { randomBytes } from 'node:crypto';
import { after } from 'node:test';
import { requireService } from '@breakwater/testkit';
import pg from 'pg';
import { PostgresControlStorage } from '../src/storage/postgres.js';
import { storageContract } from './storage-contract.js';

const PG_URL = 'postgres://postgres@127.0.0.1:5432/test';

const admin = new pg.Pool({ connectionString: PG_URL, max: 1 });
admin.on('error', () => {});
after(() => admin.end());

storageContract(
  'postgres',
  async () => {
    // Each test gets its own schema and drops it.
    const schema = `bw_control_test_${randomBytes(6).toString('hex')}`;
    const storage = await PostgresControlStorage.open({ connectionString: PG_URL, schema });
    return {
      storage,
      cleanup: async () => {
        await storage.close();
        await admin.query(`DROP SCHEMA ${schema} CASCADE`);
      },
    };
  },
  (t) => requireService(t, 'PostgreSQL', '127.0.0.1', 5432),
);
