/**
 * The auth-backend storm drill end to end, with the real executable: `breakwater up` with a
 * listener whose auth backend is down; devices retrying make the in-process alert engine fire,
 * which opens one incident with the "auth failing fleet-wide" runbook. The operator acknowledges
 * it, bypasses authn on the listener (the broker's break-glass log lands on the incident
 * timeline), restores, resolves, writes the postmortem and posts a status update.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { after, test } from 'node:test';
import mqtt from 'mqtt';
import { main } from '../src/index.js';
import { CliProcess } from './cli-process.js';

/** The CLI in-process (`main()`); `breakwater up` is the child process under test. */
async function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (c: Buffer) => (out += c.toString('utf8')));
  stderr.on('data', (c: Buffer) => (err += c.toString('utf8')));
  const code = await main(['node', 'breakwater', ...args], { stdout, stderr, env: {} });
  return { code, stdout: out, stderr: err };
}

/** CONNACK reason code of one MQTT 5 connect attempt (0 = admitted). */
async function connectCode(url: string, clientId: string): Promise<number> {
  const client = mqtt.connect(url, {
    protocolVersion: 5,
    clientId,
    username: clientId,
    password: 'pw',
    reconnectPeriod: 0,
    connectTimeout: 10_000,
  });
  try {
    return await new Promise<number>((resolve, reject) => {
      client.once('connect', () => resolve(0));
      client.once('error', (err: Error & { code?: number }) =>
        typeof err.code === 'number' ? resolve(err.code) : reject(err),
      );
    });
  } finally {
    await client.endAsync(true);
  }
}

test('auth storm → one incident with the auth runbook → ack, bypass, restore, resolve, postmortem, status', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'bw-cli-drill-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const dataDir = join(dir, 'data');
  const config = join(dir, 'breakwater.yaml');
  writeFileSync(
    config,
    JSON.stringify({
      listeners: [{ name: 'mqtt', type: 'tcp', host: '127.0.0.1', port: 0 }],
      http: { host: '127.0.0.1', port: 0 },
      storage: { driver: 'memory' },
      dataDir,
      log: { level: 'warn' },
      guard: {
        // Nothing listens on port 1: every auth call fails, as with a wrongly rotated credential.
        authenticators: { http: { down: { url: 'http://127.0.0.1:1/auth' } } },
        listeners: { mqtt: { authn: ['down'] } },
      },
    }),
  );
  const up = new CliProcess(['up', '--config', config]);
  after(() => up.stop());
  const [mqttUrl] = await up.waitForStdout(/mqtt:\/\/127\.0\.0\.1:\d+/);
  const [metricsUrl] = await up.waitForStdout(/http:\/\/127\.0\.0\.1:\d+\/metrics/);
  await up.waitForStdout(/control-plane admin API key/);
  const url = metricsUrl.replace(/\/metrics$/, '');
  const api = ['--url', url, '--api-key-file', join(dataDir, 'admin.key')];
  const admin = ['--url', url, '--token-file', join(dataDir, 'admin.token')];
  const cli = async (args: string[]) => {
    const res = await run(args);
    assert.equal(res.code, 0, `${args.join(' ')}\n${res.stderr}`);
    return res.stdout;
  };

  // The storm: devices keep retrying until an incident is open (generous deadline, no timing claim).
  let incidents: Array<{ id: number; ref: string; runbook: { slug: string }; durations: { ttdMs: number } }> =
    [];
  const stormStart = Date.now();
  const deadline = stormStart + 120_000;
  // The generic burst rules usually fire first; the auth rules follow (they need 5-10 s of
  // abnormal samples) and switch the incident to the specific runbook. Storm until they have.
  let openedAfterMs: number | null = null;
  const authRunbook = () => incidents.some((i) => i.runbook.slug === 'auth-failing-fleet-wide');
  for (let n = 0; !authRunbook(); n++) {
    assert.ok(
      Date.now() < deadline,
      `no incident with the auth runbook: ${JSON.stringify(incidents)}\nstdout:\n${up.stdout}\nstderr:\n${up.stderr}`,
    );
    await Promise.all(Array.from({ length: 10 }, (_, k) => connectCode(mqttUrl, `dev-${n}-${k}`)));
    if (n % 5 === 4) {
      incidents = (
        JSON.parse(await cli(['incident', 'list', '--state', 'open', '--json', ...api])) as {
          items: typeof incidents;
        }
      ).items;
      if (incidents.length > 0) openedAfterMs ??= Date.now() - stormStart;
    }
  }
  assert.equal(incidents.length, 1, 'the storm opens one incident, however many rules fire');
  const inc = incidents[0]!;
  t.diagnostic(
    `incident open ${openedAfterMs} ms, auth runbook ${Date.now() - stormStart} ms after the storm began (TTD ${inc.durations.ttdMs} ms)`,
  );
  assert.equal(typeof inc.durations.ttdMs, 'number');
  assert.equal(await connectCode(mqttUrl, 'dev-c'), 0x88, 'backend down: server unavailable');

  await cli(['incident', 'ack', inc.ref, '--commander', 'alice', ...api]);
  await cli([
    'listener',
    'bypass-authn',
    'mqtt',
    '--ttl',
    '30m',
    '--reason',
    `${inc.ref}: auth backend down`,
    ...admin,
  ]);
  assert.equal(await connectCode(mqttUrl, 'dev-c'), 0, 'admitted during the bypass');
  await cli(['incident', 'mitigate', inc.ref, '--note', 'devices reconnected under bypass', ...api]);
  await cli(['listener', 'restore-authn', 'mqtt', ...admin]);
  await cli([
    'status',
    'update',
    inc.ref,
    '--status',
    'monitoring',
    '--title',
    'Devices could not connect',
    '--message',
    'Devices are reconnecting.',
    ...api,
  ]);

  const show = JSON.parse(await cli(['incident', 'show', inc.ref, '--json', ...api])) as {
    alerts: Array<{ ruleId: string }>;
    timeline: Array<{ kind: string; source: string; text: string }>;
  };
  assert.ok(show.alerts.length >= 1);
  const actions = show.timeline
    .filter((e) => e.kind === 'action' && e.source === 'broker-audit')
    .map((e) => e.text);
  assert.equal(actions.length, 2, JSON.stringify(show.timeline, null, 2));
  assert.match(actions[0]!, /authn bypass on listener mqtt until .*: INC-\d+: auth backend down/);
  assert.match(actions[1]!, /authn restored on listener mqtt/);

  const status = await fetch(`${url}/status`);
  assert.equal(status.status, 200);
  assert.match(await status.text(), /<h3>Devices could not connect<\/h3>/);

  await cli(['incident', 'resolve', inc.ref, ...api]);
  const postmortem = await cli(['incident', 'postmortem', inc.ref, '--out', '-', ...api]);
  assert.match(
    postmortem,
    /## Timeline[\s\S]*authn bypass on listener mqtt[\s\S]*authn restored[\s\S]*## Detection/,
  );
  assert.match(postmortem, /Detected by alert \*\*/);
});
