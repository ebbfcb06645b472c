import assert from 'node:assert/strict';
import { once } from 'node:events';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { requireService } from '@breakwater/testkit';
import pg from 'pg';
import { runCli } from './cli-process.js';
import { startUp, tempDir } from './up-helpers.js';

// `control.storage` under `breakwater up`: PostgreSQL (skipped locally when 127.0.0.1:5432 is
// down, fails under CI=true) and the start-up errors, each one line naming the key.

describe('breakwater up: control.storage', () => {
  test('control.storage postgres: the control plane keeps its tables in PostgreSQL', async (t) => {
    if (!(await requireService(t, 'PostgreSQL', '127.0.0.1', 5432))) return;
    const pgUrl = 'postgres://postgres@127.0.0.1:5432/test';
    const schema = `bw_cli_${process.pid}_${Date.now().toString(36)}`;
    after(async () => {
      const admin = new pg.Client({ connectionString: pgUrl });
      await admin.connect();
      await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      await admin.end();
    });
    const dataDir = tempDir();
    const file = join(dataDir, 'breakwater.yaml');
    writeFileSync(
      file,
      `control:\n  storage:\n    driver: postgres\n    url: ${pgUrl}\n    schema: ${schema}\n`,
    );
    const { cli, httpBase } = await startUp(dataDir, ['--config', file]);
    await cli.waitForStdout(/admin API key/);
    const key = readFileSync(join(dataDir, 'admin.key'), 'utf8').trim();
    const created = await fetch(`${httpBase}/api/v1/devices`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ id: 'pg-dev' }),
    });
    assert.equal(created.status, 201);
    assert.ok(!existsSync(join(dataDir, 'control.db')), 'no SQLite control database');

    const db = new pg.Client({ connectionString: pgUrl });
    await db.connect();
    after(() => db.end());
    const rows = await db.query(`SELECT id FROM ${schema}.devices`);
    assert.deepEqual(
      rows.rows.map((r: { id: string }) => r.id),
      ['pg-dev'],
    );
  });

  test('control.storage postgres that cannot be reached: one line naming the key, no password', async () => {
    const dir = tempDir();
    const file = join(dir, 'breakwater.yaml');
    const squatter = net.createServer();
    squatter.listen(0, '127.0.0.1');
    await once(squatter, 'listening');
    const port = (squatter.address() as net.AddressInfo).port;
    await new Promise((resolve) => squatter.close(resolve));
    writeFileSync(
      file,
      `control:\n  storage:\n    driver: postgres\n    url: postgres://bw:hunter2@127.0.0.1:${port}/fleet\n`,
    );
    const { code, stderr } = await runCli([
      'up',
      '--config',
      file,
      '--data-dir',
      dir,
      '--host',
      '127.0.0.1',
      '--mqtt-port',
      '0',
      '--ws-port',
      '0',
      '--http-port',
      '0',
      '--log-level',
      'silent',
    ]);
    assert.equal(code, 1);
    const lines = stderr.split('\n').filter((l) => l !== '');
    assert.equal(lines.length, 1, stderr);
    assert.match(
      lines[0]!,
      /control-plane database \(control\.storage\.url postgres:\/\/bw:\*\*\*@127\.0\.0\.1:\d+\/fleet\).*\[BW_ERR_STORAGE\]$/,
    );
    assert.doesNotMatch(stderr, /hunter2/);
  });

  test('control.storage postgres without a url names the key, exit 1', async () => {
    const dir = tempDir();
    const file = join(dir, 'breakwater.yaml');
    writeFileSync(file, 'control:\n  storage:\n    driver: postgres\n');
    const { code, stderr } = await runCli(['up', '--config', file, '--data-dir', dir]);
    assert.equal(code, 1);
    assert.match(stderr, /control\.storage\.url is required with driver "postgres"/);
    assert.equal(stderr.trim().split('\n').length, 1, stderr);
  });
});
