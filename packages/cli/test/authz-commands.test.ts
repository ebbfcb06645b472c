/**
 * `breakwater authz check|rules|set` (issue 13) in-process (`main()` with captured output)
 * against a real control plane on a real socket (port 0), with a broker and a real Guard.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { Broker, BrokerMetrics, Guard, MemoryStorage } from '@breakwater/broker';
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

let dir: string;
let url: string;
let apiKey: string;
let cp: ControlPlane;
let app: FastifyInstance;
let broker: Broker;
let guard: Guard;
let storage: SqliteControlStorage;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'bw-cli-authz-'));
  const logger = pino({ level: 'silent' });
  guard = new Guard(
    {
      authenticators: { anonymous: { anon: {} } },
      authz: { rules: [{ permission: 'deny', action: 'subscribe', topic: '#', username: 'guest' }] },
      listeners: { mqtt: { authn: ['anon'] } },
    },
    { dataDir: dir, logger },
  );
  broker = new Broker({
    storage: new MemoryStorage(),
    metrics: new BrokerMetrics({ defaultMetrics: false }),
    logger,
    hooks: guard,
  });
  await broker.start();
  storage = SqliteControlStorage.open({ file: join(dir, 'control.db') });
  cp = await createControlPlane({ storage, dataDir: dir, logger, fleet: brokerFleet(broker, guard) });
  apiKey = cp.initialAdminKey!;
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
  await guard.close();
  await storage.close();
  rmSync(dir, { recursive: true, force: true });
});

async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const stdout = new OutputSink();
  const stderr = new OutputSink();
  const code = await main(['node', 'breakwater', ...args], {
    stdout,
    stderr,
    env: { BREAKWATER_URL: url, BREAKWATER_API_KEY: apiKey },
    stdin: Readable.from(['']),
  });
  return { code, stdout: stdout.text, stderr: stderr.text };
}

describe('breakwater authz', () => {
  test('check explains the verdict: the config rule, a listener rule, the default', async () => {
    const guest = await cli([
      'authz',
      'check',
      '--client-id',
      'dev-1',
      '--username',
      'guest',
      '--topic',
      'devices/dev-1/#',
      '--action',
      'subscribe',
    ]);
    assert.equal(guest.stderr, '');
    assert.equal(guest.code, 0);
    assert.equal(
      guest.stdout,
      'verdict: deny\nlistener: mqtt\nrule: #0 (guard.authz.rules[0])\n  deny subscribe # username=guest\n',
    );
    const own = await cli([
      'authz',
      'check',
      '--client-id',
      'dev-1',
      '--topic',
      'devices/dev-1/t',
      '--action',
      'publish',
    ]);
    assert.match(own.stdout, /^verdict: allow$/m);
    assert.match(own.stdout, /^rule: #1 \(guard\.listeners\.mqtt\.authz\.rules\[0\]\)$/m);
    assert.match(own.stdout, /^ {2}allow all devices\/\{clientId\}\/#$/m);
    const other = await cli([
      'authz',
      'check',
      '--client-id',
      'dev-1',
      '--topic',
      'x/y',
      '--action',
      'publish',
      '--json',
    ]);
    const json = JSON.parse(other.stdout) as { verdict: string; decidedBy: string; index: number | null };
    assert.deepEqual([json.verdict, json.decidedBy, json.index], ['deny', 'default', null]);
    const bad = await cli(['authz', 'check', '--client-id', 'a', '--topic', 't', '--action', 'read']);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /must be publish or subscribe/);
  });

  test('set replaces the live rules from a file; rules lists them; a bad file names the line', async () => {
    const file = join(dir, 'new.rules');
    writeFileSync(file, '# incident INC-9\ndeny publish devices/%c/ota/# source=10.0.0.0/8\n');
    const set = await cli(['authz', 'set', '--file', file, '--reason', 'INC-9']);
    assert.equal(set.stderr, '');
    assert.match(set.stdout, /^1 live rule\(s\) in force, written to .*authz\.rules$/m);
    assert.match(
      readFileSync(join(dir, 'authz', 'authz.rules'), 'utf8'),
      /^deny publish devices\/%c\/ota\/# source=10\.0\.0\.0\/8$/m,
    );
    const check = await cli([
      'authz',
      'check',
      '--client-id',
      'dev-1',
      '--source',
      '10.1.1.1',
      '--topic',
      'devices/dev-1/ota/status',
      '--action',
      'publish',
    ]);
    assert.match(check.stdout, /^verdict: deny$/m);
    assert.match(
      check.stdout,
      /^rule: #0 \(rules file .*authz\.rules line 2\)$/m,
      'line 2: after the header',
    );
    const rules = await cli(['authz', 'rules']);
    assert.match(rules.stdout, /^#0 {2}line 2: deny publish devices\/%c\/ota\/# source=10\.0\.0\.0\/8$/m);
    assert.match(rules.stdout, /^#1 {2}deny subscribe # username=guest$/m);

    writeFileSync(file, 'deny publish a\nallow all b source=10.0.0.0/77\n');
    const bad = await cli(['authz', 'set', '--file', file]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /new\.rules line 2: source: .*prefix length/);
    assert.match(bad.stderr, /\[BW_ERR_AUTHZ_RULE\]/);
    assert.equal(guard.authzRules().rules.length, 1, 'unchanged');
  });
});
