/** Test support: a control plane on a fresh storage (SQLite file or a throwaway PG schema). */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { FakeClock, requireService } from '@breakwater/testkit';
import Fastify, { type FastifyInstance, type LightMyRequestResponse } from 'fastify';
import pg from 'pg';
import { type ControlPlane, type ControlPlaneOptions, createControlPlane } from '../src/http/app.js';
import { PostgresControlStorage } from '../src/storage/postgres.js';
import { SqliteControlStorage } from '../src/storage/sqlite.js';
import type { ControlStorage } from '../src/storage/types.js';

export const PG_URL = 'postgres://postgres@127.0.0.1:5432/test';

export interface Driver {
  name: string;
  available(t: TestContext): Promise<boolean>;
  /** A fresh, empty storage and how to dispose of it. */
  open(dataDir: string): Promise<{ storage: ControlStorage; drop: () => Promise<void> }>;
}

export const sqliteDriver: Driver = {
  name: 'sqlite',
  available: async () => true,
  async open(dataDir) {
    const storage = SqliteControlStorage.open({ file: join(dataDir, 'control.db') });
    return { storage, drop: async () => {} };
  },
};

export const postgresDriver: Driver = {
  name: 'postgres',
  available: (t) => requireService(t, 'PostgreSQL', '127.0.0.1', 5432),
  async open() {
    const schema = `bw_control_test_${randomBytes(6).toString('hex')}`;
    const storage = await PostgresControlStorage.open({ connectionString: PG_URL, schema });
    return {
      storage,
      drop: async () => {
        const admin = new pg.Client({ connectionString: PG_URL });
        await admin.connect();
        try {
          await admin.query(`DROP SCHEMA ${schema} CASCADE`);
        } finally {
          await admin.end();
        }
      },
    };
  },
};

export interface Harness {
  app: FastifyInstance;
  cp: ControlPlane;
  clock: FakeClock;
  dataDir: string;
  storage: ControlStorage;
  adminKey: string;
  /** inject() with `Authorization: Bearer <key>` (admin key unless given). */
  call(
    method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE',
    url: string,
    options?: { key?: string | null; body?: unknown; headers?: Record<string, string> },
  ): Promise<LightMyRequestResponse>;
}

/** Starts a control plane (not listening; use app.listen for socket tests); torn down after `t`. */
export async function startControlPlane(
  t: TestContext,
  driver: Driver,
  extra: Partial<ControlPlaneOptions> = {},
): Promise<Harness> {
  const dataDir = await mkdtemp(join(tmpdir(), 'bw-control-api-'));
  const { storage, drop } = await driver.open(dataDir);
  const clock = new FakeClock();
  const app = Fastify({ logger: false });
  t.after(async () => {
    await app.close();
    await storage.close();
    await drop();
    await rm(dataDir, { recursive: true, force: true });
  });
  const cp = await createControlPlane({ storage, dataDir, clock, ...extra });
  await app.register(cp.plugin);
  await app.ready();
  const adminKey = cp.initialAdminKey!;
  return {
    app,
    cp,
    clock,
    dataDir,
    storage,
    adminKey,
    call(method, url, options = {}) {
      const key = options.key === undefined ? adminKey : options.key;
      const headers: Record<string, string> = { ...options.headers };
      if (key !== null) headers.authorization = `Bearer ${key}`;
      const body = options.body;
      return app.inject({
        method,
        url,
        headers,
        ...(body === undefined
          ? {}
          : typeof body === 'string'
            ? { payload: body }
            : { payload: body as object }),
      });
    },
  };
}

export function errorOf(res: LightMyRequestResponse): { code: string; message: string; field?: string } {
  return (res.json() as { error: { code: string; message: string; field?: string } }).error;
}
