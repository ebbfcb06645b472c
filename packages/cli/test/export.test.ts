import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { describe, it } from 'node:test';
import { readConfigFile } from '@breakwater/broker';
import { main } from '../src/index.js';

async function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (c: Buffer) => (out += c.toString('utf8')));
  stderr.on('data', (c: Buffer) => (err += c.toString('utf8')));
  const code = await main(['node', 'breakwater', ...args], { stdout, stderr });
  return { code, stdout: out, stderr: err };
}

describe('breakwater export', () => {
  it('prometheus-rules --out writes a rules file with the config overrides applied', async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'bw-export-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    await writeFile(
      join(dir, 'breakwater.yaml'),
      'alerts:\n  rules:\n    auth-failure-ratio:\n      threshold: 0.3\n    message-rate-over-budget:\n      enabled: false\n',
    );
    const out = join(dir, 'rules.yml');
    const res = await run([
      'export',
      'prometheus-rules',
      '--config',
      join(dir, 'breakwater.yaml'),
      '--out',
      out,
    ]);
    assert.equal(res.code, 0, res.stderr);
    const file = readConfigFile(out) as {
      groups: Array<{ rules: Array<{ alert: string; expr: string; labels: Record<string, string> }> }>;
    };
    const rules = file.groups[0]!.rules;
    const auth = rules.find((r) => r.labels.breakwater_rule === 'auth-failure-ratio')!;
    assert.match(auth.expr, /> 0\.3 /);
    assert.equal(
      rules.find((r) => r.labels.breakwater_rule === 'message-rate-over-budget'),
      undefined,
    );
    assert.match(res.stderr, /wrote prometheus-rules/);
  });

  it('grafana-dashboard prints JSON to stdout', async () => {
    const res = await run(['export', 'grafana-dashboard']);
    assert.equal(res.code, 0, res.stderr);
    const dashboard = JSON.parse(res.stdout) as { title: string; panels: Array<{ targets: unknown[] }> };
    assert.equal(dashboard.title, 'Breakwater fleet health');
    assert.ok(dashboard.panels.length >= 10);
  });

  it('rejects an unknown target and a config with a misspelt rule id, naming it', async (t) => {
    const bad = await run(['export', 'nagios']);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /prometheus-rules, grafana-dashboard/);

    const dir = await mkdtemp(join(tmpdir(), 'bw-export-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    await writeFile(join(dir, 'c.yaml'), 'alerts:\n  rules:\n    auth-failures:\n      threshold: 0.3\n');
    const res = await run(['export', 'prometheus-rules', '--config', join(dir, 'c.yaml')]);
    assert.equal(res.code, 1);
    assert.match(res.stderr, /alerts\.rules\.auth-failures/);
    assert.match(res.stderr, /BW_ERR_CONFIG_INVALID/);
  });
});
