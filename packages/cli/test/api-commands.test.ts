/**
 * `breakwater devices|tokens|revoke|revocations|config|campaign` in-process (`main()` with
 * captured stdout/stderr) against a real control plane on a real socket (port 0), backed by
 * SQLite and an in-process broker (no MQTT listener: the kill switches act on it directly).
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { Broker, BrokerMetrics, MemoryStorage } from '@breakwater/broker';
import {
  brokerFleet,
  type ControlPlane,
  createControlPlane,
  SqliteControlStorage,
} from '@breakwater/control';
import Fastify, { type FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { main } from '../src/index.js';
import { OutputSink } from './output-sink.js';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

let dir: string;
let url: string;
let apiKey: string;
let cp: ControlPlane;
let app: FastifyInstance;
let broker: Broker;
let storage: SqliteControlStorage;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'bw-cli-api-'));
  const logger = pino({ level: 'silent' });
  broker = new Broker({
    storage: new MemoryStorage(),
    metrics: new BrokerMetrics({ defaultMetrics: false }),
    logger,
  });
  await broker.start();
  storage = SqliteControlStorage.open({ file: join(dir, 'control.db') });
  cp = await createControlPlane({ storage, dataDir: dir, logger, fleet: brokerFleet(broker) });
  assert.ok(cp.initialAdminKey);
  apiKey = cp.initialAdminKey;
  app = Fastify({ logger: false });
  await app.register(cp.plugin);
  await app.listen({ port: 0, host: '127.0.0.1' });
  await cp.start();
  url = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`;
});

after(async () => {
  await cp.close();
  await app.close();
  await broker.close();
  await storage.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Runs `breakwater <args>` in-process; URL and key from the environment unless `env` says otherwise. */
async function cli(args: string[], options: { env?: NodeJS.ProcessEnv; stdin?: string } = {}): Promise<Run> {
  const stdout = new OutputSink();
  const stderr = new OutputSink();
  const code = await main(['node', 'breakwater', ...args], {
    stdout,
    stderr,
    env: options.env ?? { BREAKWATER_URL: url, BREAKWATER_API_KEY: apiKey },
    stdin: Readable.from([options.stdin ?? '']),
  });
  return { code, stdout: stdout.text, stderr: stderr.text };
}

/** Runs and expects exit 0 with nothing on stderr. */
async function ok(args: string[], options?: Parameters<typeof cli>[1]): Promise<string> {
  const run = await cli(args, options);
  assert.equal(run.stderr, '', `breakwater ${args.join(' ')}`);
  assert.equal(run.code, 0, `breakwater ${args.join(' ')}`);
  return run.stdout;
}

async function okJson<T>(args: string[], options?: Parameters<typeof cli>[1]): Promise<T> {
  return JSON.parse(await ok([...args, '--json'], options)) as T;
}

/** One line on stderr, nothing on stdout, exit 1. */
async function fails(args: string[], options?: Parameters<typeof cli>[1]): Promise<string> {
  const run = await cli(args, options);
  assert.equal(run.code, 1, `breakwater ${args.join(' ')}: ${run.stdout}`);
  assert.equal(run.stdout, '');
  const lines = run.stderr.split('\n').filter((l) => l !== '');
  assert.equal(lines.length, 1, run.stderr);
  return lines[0]!;
}

/** A port nothing listens on: bound on port 0, then released. */
async function closedPort(): Promise<number> {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** A usage error caught by commander (before any request): exit 1, the message and a --help hint. */
async function usage(args: string[]): Promise<string> {
  const run = await cli(args);
  assert.equal(run.code, 1);
  assert.equal(run.stdout, '');
  return run.stderr;
}

describe('breakwater devices', () => {
  test('add, list (table and --json), get, update, delete', async () => {
    const added = await ok(['devices', 'add', 'dev-a', '--tag', 'eu', '--tag', 'lab', '--cohort', 'canary']);
    assert.match(added, /^device dev-a registered$/m);
    assert.match(added, /shown only now.*: bws_\S+$/m);
    await ok(['devices', 'add', 'dev-b', '--tag', 'eu,us', '--firmware', '1.2.0']);

    const table = await ok(['devices', 'list', '--tag', 'eu']);
    const lines = table.trimEnd().split('\n');
    assert.match(lines[0]!, /^ID\s+STATE\s+TAGS\s+COHORT\s+FIRMWARE\s+LAST SEEN$/);
    assert.match(lines[1]!, /^dev-a\s+unknown\s+eu,lab\s+canary\s+-\s+-$/);
    assert.match(lines[2]!, /^dev-b\s+unknown\s+eu,us\s+-\s+1\.2\.0\s+-$/);

    const page = await okJson<{ items: Array<{ id: string }>; nextCursor: string | null }>([
      'devices',
      'list',
      '--tag',
      'lab',
    ]);
    assert.deepEqual(
      page.items.map((d) => d.id),
      ['dev-a'],
    );
    assert.equal(page.nextCursor, null);

    const firstPage = await ok(['devices', 'list', '--tag', 'eu', '--limit', '1']);
    const [, cursor] = /^more: --cursor (\S+)$/m.exec(firstPage) ?? [];
    assert.ok(cursor, firstPage);
    assert.match(await ok(['devices', 'list', '--tag', 'eu', '--cursor', cursor!]), /^dev-b\s/m);

    assert.match(await ok(['devices', 'get', 'dev-a']), /^cohort:\s+canary$/m);
    const updated = await okJson<{ cohort: string | null; tags: string[]; firmwareVersion: string }>([
      'devices',
      'update',
      'dev-a',
      '--no-cohort',
      '--tag',
      'eu',
      '--firmware',
      '2.0.0',
      '--reason',
      'moved out of canary',
    ]);
    assert.deepEqual(
      { cohort: updated.cohort, tags: updated.tags, firmwareVersion: updated.firmwareVersion },
      { cohort: null, tags: ['eu'], firmwareVersion: '2.0.0' },
    );

    assert.match(await ok(['devices', 'delete', 'dev-b', '--reason', 'scrapped']), /device dev-b deleted/);
    const missing = await fails(['devices', 'get', 'dev-b']);
    assert.match(missing, /^breakwater: .*dev-b.*\(HTTP 404\) \[BW_ERR_API_NOT_FOUND\]$/);
  });

  test('import from a CSV file and from JSON on stdin', async () => {
    const csv = join(dir, 'fleet.csv');
    writeFileSync(csv, 'id,tags,cohort\nimp-1,eu;lab,canary\nimp-2,,\n');
    const imported = await ok(['devices', 'import', csv]);
    assert.match(imported, /^imported 2 devices/);
    assert.match(imported, /^imp-1\s+bws_\S+$/m);

    const res = await okJson<{ imported: number; devices: Array<{ id: string; secret: string }> }>(
      ['devices', 'import', '-'],
      {
        stdin: JSON.stringify([{ id: 'imp-3', tags: ['us'] }]),
        env: { BREAKWATER_URL: url, BREAKWATER_API_KEY: apiKey },
      },
    );
    assert.equal(res.imported, 1);
    assert.equal(res.devices[0]!.id, 'imp-3');

    // All or nothing: a bad row names itself, and nothing was imported.
    writeFileSync(csv, 'id,firmwareVersion\nimp-4,1.0\nimp-5,not valid\n');
    assert.match(
      await fails(['devices', 'import', csv]),
      /field rows\[1\]\.firmwareVersion\) \[BW_ERR_API_VALIDATION\]$/,
    );
    assert.match(await fails(['devices', 'get', 'imp-4']), /BW_ERR_API_NOT_FOUND/);
  });

  test('errors: one line with the HTTP status, the field and the BW_ERR code; exit 1', async () => {
    const invalid = await fails(['devices', 'add', 'dev-x', '--tag', 'ok', '--tag', 'not ok']);
    assert.match(invalid, /^breakwater: .* \(HTTP 400, field tags\[1\]\) \[BW_ERR_API_VALIDATION\]$/);

    await ok(['devices', 'add', 'dev-dup']);
    assert.match(await fails(['devices', 'add', 'dev-dup']), /\(HTTP 409.*\) \[BW_ERR_API_CONFLICT\]$/);

    const wrongKey = await fails(['devices', 'list'], {
      env: { BREAKWATER_URL: url, BREAKWATER_API_KEY: 'bwk_nope' },
    });
    assert.match(wrongKey, /\(HTTP 401\) \[BW_ERR_API_UNAUTHENTICATED\]$/);

    const noKeyFile = await fails([
      'devices',
      'list',
      '--url',
      url,
      '--api-key-file',
      join(dir, 'missing.key'),
    ]);
    assert.match(noKeyFile, /missing\.key \(ENOENT\).*\[BW_ERR_API_UNAUTHENTICATED\]$/);

    const closed = await closedPort();
    const down = await fails(['devices', 'list', '--url', `http://127.0.0.1:${closed}`, '--api-key', apiKey]);
    assert.match(
      down,
      new RegExp(`http://127\\.0\\.0\\.1:${closed} \\(ECONNREFUSED\\).*\\[BW_ERR_API_UNREACHABLE\\]$`),
    );
  });

  test('flags win over the environment: --url and --api-key-file (the data dir key file)', async () => {
    const out = await ok(['devices', 'list', '--url', url, '--api-key-file', cp.adminKeyFile], {
      env: { BREAKWATER_URL: `http://127.0.0.1:${await closedPort()}`, BREAKWATER_API_KEY: 'bwk_wrong' },
    });
    assert.match(out, /^ID\s+STATE/);
  });
});

describe('breakwater tokens', () => {
  test('mint prints the JWT on its own line; keys and rotate', async () => {
    await ok(['devices', 'add', 'tok-1']);
    const minted = await ok(['tokens', 'mint', 'tok-1', '--ttl', '10m']);
    const jwt = minted.trimEnd().split('\n').at(-1)!;
    assert.match(jwt, /^[\w-]+\.[\w-]+\.[\w-]+$/);
    const claims = JSON.parse(Buffer.from(jwt.split('.')[1]!, 'base64url').toString()) as {
      sub: string;
      exp: number;
      iat: number;
    };
    assert.equal(claims.sub, 'tok-1');
    assert.equal(claims.exp - claims.iat, 600);

    const json = await okJson<{ tokenId: string; kid: string }>(['tokens', 'mint', 'tok-1', '--ttl', '60']);
    assert.ok(json.tokenId);

    assert.match(await usage(['tokens', 'mint', 'tok-1', '--ttl', 'soon']), /--ttl <duration>.*invalid/);

    const rotated = await okJson<{ kid: string; retired: string[] }>([
      'tokens',
      'rotate',
      '--reason',
      'drill',
    ]);
    assert.deepEqual(rotated.retired, [json.kid]);
    const keys = await ok(['tokens', 'keys']);
    assert.match(keys, new RegExp(`^${rotated.kid}\\s+active\\s`, 'm'));
    assert.match(keys, new RegExp(`^${json.kid}\\s+retired\\s`, 'm'));
  });
});

describe('breakwater revoke / revocations', () => {
  test('revoke a device, list it, lift it', async () => {
    await ok(['devices', 'add', 'rev-1', '--tag', 'stolen']);
    const revoked = await ok(['revoke', 'rev-1', '--reason', 'reported stolen']);
    const [, id] = /\(revocation (\S+)\)/.exec(revoked) ?? [];
    assert.ok(id, revoked);
    assert.match(revoked, /^revoked device rev-1 .*1 matched/m);

    const active = await okJson<{ items: Array<{ id: string; kind: string; active: boolean }> }>([
      'revocations',
      'list',
      '--active',
      '--device',
      'rev-1',
    ]);
    assert.deepEqual(
      active.items.map((r) => [r.id, r.kind, r.active]),
      [[id, 'device', true]],
    );
    assert.match(await ok(['revocations', 'show', id!]), /^devices:\s+rev-1$/m);

    assert.match(
      await ok(['revocations', 'lift', id!, '--reason', 'found it']),
      new RegExp(`lifted revocation ${id}`),
    );
    const lifted = await okJson<{ items: Array<{ id: string }> }>(['revocations', 'list', '--lifted']);
    assert.ok(lifted.items.some((r) => r.id === id));
    assert.match(
      await fails(['revocations', 'lift', id!, '--reason', 'again']),
      /\(HTTP 409\) \[BW_ERR_API_CONFLICT\]$/,
    );
  });

  test('by selector, as JSON; a target is required', async () => {
    await ok(['devices', 'add', 'rev-sel-1', '--cohort', 'bad-batch']);
    await ok(['devices', 'add', 'rev-sel-2', '--cohort', 'bad-batch']);
    const res = await okJson<{ revocation: { kind: string; selector: unknown }; matchedDevices: number }>([
      'revoke',
      '--cohort',
      'bad-batch',
      '--reason',
      'leaked batch',
    ]);
    assert.equal(res.revocation.kind, 'selector');
    assert.deepEqual(res.revocation.selector, { cohort: 'bad-batch' });
    assert.equal(res.matchedDevices, 2);

    const byToken = await okJson<{ revocation: { kind: string; tokenId: string } }>([
      'revoke',
      '--token-id',
      'jti-leaked',
      '--reason',
      'token in a log',
    ]);
    assert.deepEqual([byToken.revocation.kind, byToken.revocation.tokenId], ['token', 'jti-leaked']);
    const before = await okJson<{ revocation: { kind: string; issuedBefore: string } }>([
      'revoke',
      '--issued-before',
      '2026-01-01T00:00:00Z',
      '--reason',
      'signing key leaked',
    ]);
    assert.deepEqual(
      [before.revocation.kind, before.revocation.issuedBefore],
      ['all', '2026-01-01T00:00:00.000Z'],
    );

    assert.match(await fails(['revoke', '--reason', 'oops']), /name exactly one target/);
    assert.match(
      await fails(['revoke', 'rev-sel-1', '--cohort', 'x', '--reason', 'oops']),
      /name exactly one target/,
    );
    assert.match(await usage(['revoke', 'rev-sel-1']), /required option '--reason <text>'/);
  });
});

describe('breakwater config', () => {
  test('push by selector and to one device, get, drift', async () => {
    await ok(['devices', 'add', 'cfg-1', '--tag', 'cfg']);
    await ok(['devices', 'add', 'cfg-2', '--tag', 'cfg']);
    const pushed = await ok([
      'config',
      'push',
      '--tag',
      'cfg',
      '--set',
      '{"rate":5}',
      '--reason',
      'slow down',
    ]);
    assert.match(pushed, /^config version 1 pushed to 2 devices/);

    const file = join(dir, 'cfg.json');
    writeFileSync(file, '{"rate":10}');
    const one = await okJson<{ version: number; matchedDevices: number }>([
      'config',
      'push',
      'cfg-2',
      '--file',
      file,
    ]);
    assert.deepEqual([one.version, one.matchedDevices], [2, 1]);

    const got = await okJson<{ desired: { version: number; config: Record<string, unknown> } }>([
      'config',
      'get',
      'cfg-2',
    ]);
    assert.equal(got.desired.version, 2);
    assert.equal(got.desired.config.rate, 10);

    const drift = await okJson<{ summary: { matched: number; neverReported: number } }>([
      'config',
      'drift',
      '--tag',
      'cfg',
    ]);
    assert.deepEqual([drift.summary.matched, drift.summary.neverReported], [2, 2]);
    assert.match(await ok(['config', 'drift', '--tag', 'cfg']), /^cfg-1\s+never-reported\s+unknown\s+1\s/m);

    assert.match(await fails(['config', 'push', '--tag', 'cfg', '--set', '[1]']), /must be a JSON object/);
    assert.match(await fails(['config', 'push', '--set', '{}']), /name the target/);
  });
});

describe('breakwater campaign', () => {
  test('create, list, show, start, halt, resume, halt, rollback', async () => {
    for (const id of ['ota-1', 'ota-2', 'ota-3'])
      await ok(['devices', 'add', id, '--tag', 'ota', '--firmware', '1.0.0']);
    const created = await okJson<{ campaign: { id: string; state: string } }>([
      'campaign',
      'create',
      '--name',
      'fw 2.0',
      '--artifact-url',
      'https://fw.example/2.0.bin',
      '--artifact-version',
      '2.0.0',
      '--sha256',
      'ab'.repeat(32),
      '--waves',
      '34,100',
      '--soak',
      '10m',
      '--max-failure-ratio',
      '0.1',
      '--tag',
      'ota',
    ]);
    const id = created.campaign.id;
    assert.equal(created.campaign.state, 'draft');
    assert.match(
      await ok(['campaign', 'list']),
      new RegExp(`^${id}\\s+fw 2\\.0\\s+draft\\s+2\\.0\\.0\\s`, 'm'),
    );

    const started = await ok(['campaign', 'start', id]);
    assert.match(started, /^state:\s+running$/m);
    const halted = await ok(['campaign', 'halt', id, '--reason', 'drill']);
    assert.match(halted, new RegExp(`^campaign ${id} halted \\(was running\\)`));
    const shown = await okJson<{ campaign: { state: string; haltReason: string } }>(['campaign', 'show', id]);
    assert.deepEqual([shown.campaign.state, shown.campaign.haltReason], ['halted', 'drill']);

    assert.match(await ok(['campaign', 'resume', id]), /is running/);
    await ok(['campaign', 'halt', id]);
    const rolled = await cli(['campaign', 'rollback', id, '--no-start', '--json']);
    assert.equal(rolled.code, 0, rolled.stderr);
    assert.ok(Array.isArray((JSON.parse(rolled.stdout) as { campaigns: unknown[] }).campaigns));

    // The ota-halt kill switch: every running campaign in one call.
    const second = await okJson<{ campaign: { id: string } }>([
      'campaign',
      'create',
      '--name',
      'fw 2.1',
      '--artifact-url',
      'https://fw.example/2.1.bin',
      '--artifact-version',
      '2.1.0',
      '--sha256',
      'cd'.repeat(32),
      '--waves',
      '100',
      '--tag',
      'ota',
    ]);
    await ok(['campaign', 'start', second.campaign.id]);
    assert.match(await fails(['campaign', 'halt', '--all']), /--all needs --reason/);
    const all = await okJson<{ campaigns: Array<{ campaignId: string; state: string }> }>([
      'campaign',
      'halt',
      '--all',
      '--reason',
      'stop everything',
    ]);
    assert.deepEqual(
      all.campaigns.map((c) => [c.campaignId, c.state]),
      [[second.campaign.id, 'halted']],
    );

    assert.match(await fails(['campaign', 'start', 'cmp_nope']), /\(HTTP 404\) \[BW_ERR_API_NOT_FOUND\]$/);
    assert.match(await fails(['campaign', 'create', '--name', 'x', '--all']), /missing --artifact-url/);
  });
});
