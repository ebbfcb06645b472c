/** deploy/ (issue 15): the example node configs validate, and the rule files load in promtool. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { resolveUpConfig } from '../src/up-config.js';

const deploy = fileURLToPath(new URL('../../../deploy/', import.meta.url));
const promtool = spawnSync('promtool', ['--version']).status === 0;

describe('deploy/', () => {
  test('the three node configs validate and form one cluster', () => {
    const configs = ['a', 'b', 'c'].map(
      (n) => resolveUpConfig({ config: `${deploy}cluster/node-${n}.yaml` }).config,
    );
    for (const c of configs) {
      assert.equal(c.cluster.servers.length, 3);
      assert.equal(c.cluster.replicas, 3);
      assert.ok(c.admission.global.maxConnections < 20_000, 'below the unit LimitNOFILE');
    }
    assert.equal(new Set(configs.map((c) => c.cluster.advertise)).size, 3, 'each node advertises itself');
    assert.equal(new Set(configs.map((c) => c.dataDir)).size, 3);
  });

  test('the systemd unit sets the FD limit the configs are sized for', () => {
    const unit = readFileSync(`${deploy}systemd/breakwater@.service`, 'utf8');
    assert.match(unit, /^LimitNOFILE=20000$/m);
    assert.match(unit, /^ExecStart=\/usr\/bin\/breakwater up --config \/etc\/breakwater\/%i\.yaml$/m);
  });

  test('the dashboards are JSON with panels', () => {
    for (const f of ['breakwater-cluster.json', 'breakwater-fleet-health.json']) {
      const d = JSON.parse(readFileSync(`${deploy}grafana/dashboards/${f}`, 'utf8')) as { panels: unknown[] };
      assert.ok(d.panels.length > 0, f);
    }
  });

  test('promtool accepts the rule files', (t) => {
    if (!promtool) {
      if (process.env.CI === 'true') throw new Error('promtool is not installed (CI=true)');
      return t.skip('promtool is not installed');
    }
    const r = spawnSync('promtool', [
      'check',
      'rules',
      `${deploy}prometheus/rules/breakwater-cluster.rules.yml`,
      `${deploy}prometheus/rules/breakwater-fleet.rules.yml`,
    ]);
    assert.equal(r.status, 0, r.stderr.toString() + r.stdout.toString());
  });
});
