/**
 * One source of truth: the Prometheus rules file and the Grafana dashboard come from the same
 * definitions as the in-process engine. Checks that both parse, that every expression reads a
 * metric the broker's registry really exposes, and (when promtool is installed) that Prometheus
 * accepts the file and fires the auth-failure alert on a synthetic storm.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { AdmissionMetrics, BrokerMetrics, GuardMetrics } from '@breakwater/broker';
import { parse, stringify } from 'yaml';
import { grafanaDashboard, prometheusRules, prometheusRulesYaml } from '../src/alerts/export.js';
import { builtinRules, resolveRules } from '../src/alerts/rules.js';

/** Every series name the broker's /metrics can show (histograms as _bucket/_sum/_count). */
async function exposedNames(): Promise<Set<string>> {
  const metrics = new BrokerMetrics();
  new GuardMetrics(metrics.registry);
  new AdmissionMetrics(metrics.registry);
  const names = new Set<string>();
  for (const m of await metrics.registry.getMetricsAsJSON()) {
    names.add(m.name);
    if (String(m.type) === 'histogram') for (const s of ['_bucket', '_sum', '_count']) names.add(m.name + s);
  }
  return names;
}

function metricNamesIn(expr: string): string[] {
  return [...expr.matchAll(/\b(?:breakwater|process|nodejs)_[a-z0-9_]+\b/g)].map((m) => m[0]);
}

const promtool = spawnSync('promtool', ['--version']).status === 0;

interface RuleFile {
  groups: Array<{
    name: string;
    rules: Array<{
      alert: string;
      expr: string;
      for: string;
      keep_firing_for?: string;
      labels: Record<string, string>;
      annotations: Record<string, string>;
    }>;
  }>;
}

describe('prometheus-rules export', () => {
  it('parses, has one alert per enabled metric rule, and reads only metrics the broker exposes', async () => {
    const exposed = await exposedNames();
    const rules = resolveRules();
    const file = parse(prometheusRulesYaml(rules)) as RuleFile;
    assert.equal(file.groups.length, 1);
    const alerts = file.groups[0]!.rules;
    const metricRules = rules.filter((r) => r.metric);
    assert.equal(alerts.length, metricRules.length);
    assert.ok(alerts.length >= 10);
    for (const alert of alerts) {
      const rule = metricRules.find((r) => r.name === alert.alert);
      assert.ok(rule, `${alert.alert} comes from a built-in rule`);
      assert.equal(alert.labels.breakwater_rule, rule.id);
      assert.equal(alert.labels.severity, rule.params.severity);
      assert.equal(alert.labels.incident_type, rule.incidentType);
      assert.equal(alert.annotations.runbook, rule.runbook);
      assert.match(alert.for, /^\d+[sm]$/);
      assert.match(alert.expr, new RegExp(`\\b${String(rule.params.threshold).replace('.', '\\.')}\\b`));
      const used = metricNamesIn(alert.expr);
      assert.ok(used.length > 0, `${alert.alert} reads a metric`);
      for (const name of used)
        assert.ok(exposed.has(name), `${alert.alert}: ${name} is exposed by the broker`);
    }
    for (const rule of metricRules) {
      for (const name of rule.metric!.metrics) assert.ok(exposed.has(name), `${rule.id}: ${name} exposed`);
    }
  });

  it('applies config overrides and leaves disabled rules out', () => {
    const rules = resolveRules({
      'auth-failure-ratio': { threshold: 0.35, forSec: 120 },
      'open-sockets-high': { enabled: false },
    });
    const alerts = prometheusRules(rules).groups[0]!.rules;
    const auth = alerts.find((a) => a.labels.breakwater_rule === 'auth-failure-ratio')!;
    assert.match(auth.expr, / > 0\.35 /);
    assert.equal(auth.for, '2m');
    assert.equal(
      alerts.find((a) => a.labels.breakwater_rule === 'open-sockets-high'),
      undefined,
    );
  });

  it('is accepted by promtool and fires on a synthetic auth storm', {
    skip: !promtool && 'promtool not installed',
  }, async () => {
    const dir = await mkdtemp(join(tmpdir(), 'bw-promtool-'));
    try {
      const rules = resolveRules();
      await writeFile(join(dir, 'rules.yml'), prometheusRulesYaml(rules));
      const check = spawnSync('promtool', ['check', 'rules', join(dir, 'rules.yml')], { encoding: 'utf8' });
      assert.equal(check.status, 0, check.stdout + check.stderr);

      const alert = prometheusRules(rules).groups[0]!.rules.find(
        (a) => a.labels.breakwater_rule === 'auth-failure-ratio',
      )!;
      // 15 s scrapes: 100 successes/s throughout; failures 1/s for 2 min, then 400/s.
      const test = {
        rule_files: ['rules.yml'],
        evaluation_interval: '15s',
        tests: [
          {
            interval: '15s',
            input_series: [
              {
                series: 'breakwater_auth_total{listener="tcp",method="postgres",outcome="success"}',
                values: '0+1500x40',
              },
              {
                series: 'breakwater_auth_total{listener="tcp",method="postgres",outcome="failure"}',
                values: '0+15x8 6120+6000x30',
              },
            ],
            alert_rule_test: [
              { eval_time: '2m', alertname: alert.alert, exp_alerts: [] },
              {
                eval_time: '4m',
                alertname: alert.alert,
                exp_alerts: [
                  { exp_labels: { ...alert.labels, listener: 'tcp' }, exp_annotations: alert.annotations },
                ],
              },
            ],
          },
        ],
      };
      await writeFile(join(dir, 'test.yml'), stringify(test));
      const run = spawnSync('promtool', ['test', 'rules', join(dir, 'test.yml')], { encoding: 'utf8' });
      assert.equal(run.status, 0, run.stdout + run.stderr);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('grafana-dashboard export', () => {
  it('is JSON with one panel per metric rule, plotting exposed metrics, threshold lines at the rule thresholds', async () => {
    const exposed = await exposedNames();
    const rules = resolveRules({ 'zombie-sockets': { threshold: 750 } });
    const dashboard = JSON.parse(JSON.stringify(grafanaDashboard(rules))) as {
      title: string;
      uid: string;
      panels: Array<{
        title: string;
        type: string;
        gridPos: { x: number; y: number; w: number; h: number };
        targets: Array<{ expr: string; refId: string }>;
        fieldConfig: { defaults: { thresholds: { steps: Array<{ value: number | null }> } } };
      }>;
    };
    assert.equal(dashboard.uid, 'breakwater-fleet-health');
    const metricRules = rules.filter((r) => r.metric);
    assert.equal(dashboard.panels.length, metricRules.length);
    const positions = new Set(dashboard.panels.map((p) => `${p.gridPos.x},${p.gridPos.y}`));
    assert.equal(positions.size, dashboard.panels.length, 'panels do not overlap');
    dashboard.panels.forEach((panel, i) => {
      assert.equal(panel.type, 'timeseries');
      assert.ok(panel.targets.length >= 1);
      for (const t of panel.targets) {
        for (const name of metricNamesIn(t.expr)) assert.ok(exposed.has(name), `${panel.title}: ${name}`);
      }
      assert.equal(panel.fieldConfig.defaults.thresholds.steps[1]!.value, metricRules[i]!.params.threshold);
    });
    const zombie = dashboard.panels[metricRules.findIndex((r) => r.id === 'zombie-sockets')]!;
    assert.equal(zombie.fieldConfig.defaults.thresholds.steps[1]!.value, 750);
  });

  it('every built-in rule links a runbook that exists in runbooks/ and an incident type', () => {
    const runbooks = new URL('../../../runbooks/', import.meta.url);
    for (const rule of Object.values(builtinRules)) {
      assert.match(rule.runbook, /^[a-z0-9-]+$/);
      assert.ok(existsSync(new URL(`${rule.runbook}.md`, runbooks)), `runbooks/${rule.runbook}.md exists`);
      assert.ok(
        ['bad-firmware-push', 'mass-disconnect', 'security', 'data-quality', 'capacity-cost'].includes(
          rule.incidentType,
        ),
      );
    }
  });
});
