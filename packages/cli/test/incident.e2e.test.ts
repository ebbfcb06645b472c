/**
 * `breakwater incident …` and `breakwater status update` against an in-process control plane
 * listening on port 0 (real HTTP, SQLite storage).
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { describe, it } from 'node:test';
import { createControlPlane, SqliteControlStorage } from '@breakwater/control';
import Fastify from 'fastify';
import { main } from '../src/index.js';

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

describe('breakwater incident', () => {
  it('runs an incident from declaration to postmortem', async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'bw-cli-incident-'));
    const storage = SqliteControlStorage.open({ file: join(dir, 'control.db') });
    const cp = await createControlPlane({ storage, dataDir: dir });
    const app = Fastify({ logger: false });
    await app.register(cp.plugin);
    const url = await app.listen({ port: 0, host: '127.0.0.1' });
    t.after(async () => {
      await app.close();
      await cp.close();
      await storage.close();
      await rm(dir, { recursive: true, force: true });
    });
    const conn = ['--url', url, '--api-key', cp.initialAdminKey!];
    const ok = async (args: string[]) => {
      const res = await run([...args, ...conn]);
      assert.equal(res.code, 0, `${args.join(' ')}: ${res.stderr}`);
      return res.stdout;
    };

    assert.match(
      await ok([
        'incident',
        'create',
        '--type',
        'mass-disconnect',
        '--title',
        'Fleet drops in eu-west',
        '--severity',
        'critical',
      ]),
      /^declared INC-1 \(critical mass-disconnect\)/,
    );
    const now = Date.now();
    await cp.incidents.onAlert({
      ruleId: 'auth-failure-ratio',
      name: 'Auth failure ratio high',
      state: 'firing',
      severity: 'warning',
      incidentType: 'security',
      runbook: 'auth-failing-fleet-wide',
      labels: { listener: 'tcp' },
      value: 0.4,
      threshold: 0.2,
      startedAt: now - 20_000,
      at: now,
      summary: 'auth failures 40 %',
    });
    const list = await ok(['incident', 'list', '--state', 'open']);
    assert.match(list, /^ID\s+STATE\s+SEVERITY/);
    assert.match(list, /INC-2\s+detected\s+warning\s+security/);
    assert.match(list, /INC-1\s+detected\s+critical\s+mass-disconnect/);

    assert.match(
      await ok(['incident', 'ack', 'INC-1', '--commander', 'alice']),
      /^INC-1 acknowledged \(commander alice\): TTA /,
    );
    const again = await run(['incident', 'ack', '1', ...conn]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /HTTP 409.*\[BW_ERR_INCIDENT_TRANSITION\]/);

    await ok(['incident', 'note', '1', 'bypass-authn', 'on', 'tcp', 'for', '30m']);
    assert.match(
      await ok([
        'status',
        'update',
        'INC-1',
        '--status',
        'investigating',
        '--message',
        'Devices reconnect slowly.',
      ]),
      /published on \/status/,
    );
    const status = (await (await fetch(`${url}/status.json`)).json()) as {
      activeIncidents: Array<{ id: string; updates: Array<{ message: string }> }>;
    };
    assert.deepEqual(
      status.activeIncidents.map((i) => [i.id, i.updates[0]!.message]),
      [['INC-1', 'Devices reconnect slowly.']],
    );
    assert.match(await ok(['incident', 'mitigate', '1']), /INC-1 mitigated.*TTM/);
    assert.match(
      await ok(['incident', 'resolve', '1', '--note', 'fleet back']),
      /TTR .*breakwater incident postmortem INC-1/,
    );

    const show = await ok(['incident', 'show', '1']);
    assert.match(show, /state:\s+resolved/);
    assert.match(show, /runbook:\s+mass-disconnect \(Mass disconnect\)/);
    assert.match(show, /note\s+bootstrap admin\s+bypass-authn on tcp for 30m/);
    assert.match(show, /Resolved by bootstrap admin: fleet back/);

    assert.match(
      await ok(['incident', 'runbook', 'INC-2']),
      /^# Broker auth failing fleet-wide[\s\S]*## Contain/,
    );
    const file = join(dir, 'pm.md');
    assert.match(await ok(['incident', 'postmortem', '1', '--out', file]), /^wrote /);
    const md = readFileSync(file, 'utf8');
    assert.match(md, /^# Postmortem draft: INC-1 Fleet drops in eu-west/);
    assert.match(md, /## Timeline[\s\S]*bypass-authn on tcp for 30m[\s\S]*## Detection/);
    assert.match(md, /\| action \| type \(prevent \/ detect \/ mitigate\) \| owner \| due date \| ticket \|/);
    const overwrite = await run(['incident', 'postmortem', '1', '--out', file, ...conn]);
    assert.equal(overwrite.code, 1);
    assert.match(overwrite.stderr, /exists; pass --out/);
    assert.match(await ok(['incident', 'postmortem', '2', '--out', '-']), /^# Postmortem draft: INC-2/);
    assert.equal(existsSync(join(dir, 'postmortem-INC-2.md')), false);

    const summary = JSON.parse(await ok(['incident', 'summary', '--json'])) as {
      incidents: number;
      ttr: { count: number };
    };
    assert.equal(summary.incidents, 2);
    assert.equal(summary.ttr.count, 1);
    assert.match(
      await ok(['incident', 'message', '1', '--audience', 'customer']),
      /^Subject: This incident is resolved/,
    );

    const missing = await run(['incident', 'show', '99', ...conn]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /HTTP 404/);
    const badId = await run(['incident', 'show', 'abc', ...conn]);
    assert.notEqual(badId.code, 0);
    assert.match(badId.stderr, /must be an incident id/);
  });
});
