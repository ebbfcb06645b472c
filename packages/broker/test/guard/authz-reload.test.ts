import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { after, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { validateConfig } from '../../src/config/load.js';
import { defaultRulesFile } from '../../src/guard/authz-rules-file.js';
import { Guard } from '../../src/guard/guard.js';
import { BrokerMetrics } from '../../src/metrics.js';
import { connect, tempDir } from './helpers.js';

// Issue 13 item 1: the rules file (hot reload, a bad file keeps the rules in force), the
// per-connection decision cache (cleared on every rule change) and the explanation.

const config = {
  authenticators: { anonymous: { anon: {} } },
  authz: { reloadDebounceMs: 20 },
  listeners: { mqtt: { authn: ['anon'] } },
};

/** Polls until `cond` holds; fails after `ms` (a wait for fs.watch, not a timing assertion). */
async function waitFor(cond: () => boolean, what: string, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

async function startGuard(initialRules?: string) {
  const tmp = tempDir('authz');
  const file = defaultRulesFile(tmp.dir);
  mkdirSync(dirname(file), { recursive: true });
  if (initialRules !== undefined) writeFileSync(file, initialRules);
  const metrics = new BrokerMetrics({ defaultMetrics: false });
  const guard = new Guard(config, { dataDir: tmp.dir, metrics });
  await guard.start();
  after(async () => {
    await guard.close();
    tmp.cleanup();
  });
  const admitted = await guard.authenticate(connect('dev-1', { username: 'alice' }));
  assert.equal(admitted.ok, true);
  const metric = async (name: string) => (await metrics.registry.getSingleMetricAsString(name)).trim();
  return { guard, file, metrics, metric };
}

describe('authorization rules file', () => {
  it('is read at start from <dataDir>/authz/authz.rules and checked before the listener rules', async () => {
    const { guard } = await startGuard('deny publish devices/%c/secret\n');
    assert.equal(guard.authorizePublish('dev-1', 'devices/dev-1/secret'), false);
    assert.equal(
      guard.authorizePublish('dev-1', 'devices/dev-1/temp'),
      true,
      'the default rules still apply',
    );
    const e = guard.explainAuthz({ clientId: 'dev-1', action: 'publish', topic: 'devices/dev-1/secret' });
    assert.equal(e.index, 0);
    assert.equal(e.rule?.text, 'deny publish devices/%c/secret');
    assert.match(e.rule!.origin, /authz\.rules line 1$/);
    const d = guard.explainAuthz({ clientId: 'dev-1', action: 'publish', topic: 'devices/dev-1/temp' });
    assert.equal(d.index, 1, 'rule 1: the first of the listener rules');
    assert.equal(d.rule?.origin, 'guard.listeners.mqtt.authz.rules[0]');
  });

  it('hot reload: a change applies to connected clients (their cached decisions are dropped)', async () => {
    const { guard, file, metric } = await startGuard('');
    assert.equal(guard.authorizePublish('dev-1', 'devices/dev-1/x'), true);
    assert.equal(guard.authorizePublish('dev-1', 'devices/dev-1/x'), true, 'cached');
    writeFileSync(file, '# contain the incident\ndeny all devices/# clientid=dev-*\n');
    await waitFor(() => guard.authzRules().rules.length === 1, 'the reload');
    assert.equal(guard.authorizePublish('dev-1', 'devices/dev-1/x'), false, 'the cached allow was dropped');
    assert.equal(guard.authorizeSubscribe('dev-1', 'devices/dev-1/#'), false);
    assert.match(await metric('breakwater_authz_live_rules'), /breakwater_authz_live_rules 1$/);
    assert.match(await metric('breakwater_authz_denied_total'), /action="publish"} 1/);
    assert.match(await metric('breakwater_authz_denied_total'), /action="subscribe"} 1/);
  });

  it('a bad file keeps the old rules; the error names the line (log, API view, metric)', async () => {
    const { guard, file, metric } = await startGuard('deny publish a/b\n');
    writeFileSync(file, 'deny publish a/b\nallow publsh c/d\n');
    await waitFor(() => guard.authzRules().error !== null, 'the failed reload');
    const view = guard.authzRules();
    assert.equal(view.error?.line, 2);
    assert.match(view.error!.message, /line 2: unknown action "publsh"/);
    assert.deepEqual(
      view.rules.map((r) => r.topic),
      ['a/b'],
      'the previous rules stay in force',
    );
    assert.equal(guard.authorizePublish('dev-1', 'a/b'), false);
    assert.match(await metric('breakwater_authz_rules_file_error'), /line="2"} 1/);
    assert.match(await metric('breakwater_authz_rules_reloads_total'), /outcome="error"} 1/);
    // Fixed: in force, error cleared.
    writeFileSync(file, 'deny publish a/b\nallow publish c/d\n');
    await waitFor(() => guard.authzRules().error === null, 'the good reload');
    assert.equal(guard.authzRules().rules.length, 2);
    assert.doesNotMatch(await metric('breakwater_authz_rules_file_error'), /} 1/);
  });

  it('replaceAuthzRules (the API) writes the file and applies at once; a bad rule is refused', async () => {
    const { guard, file } = await startGuard();
    assert.equal(guard.authorizePublish('dev-1', 'telemetry/dev-1'), false);
    guard.replaceAuthzRules([{ permission: 'allow', action: 'publish', topic: 'telemetry/%c' }], 'test');
    assert.equal(guard.authorizePublish('dev-1', 'telemetry/dev-1'), true);
    assert.equal(guard.authorizePublish('dev-1', 'telemetry/dev-2'), false);
    assert.match(readFileSync(file, 'utf8'), /^allow publish telemetry\/%c$/m);
    assert.throws(
      () => guard.replaceAuthzRules([{ topic: 'x', source: '1.2.3.4/99' }], 'test'),
      /rules\[0\]\.source/,
    );
    assert.equal(guard.authzRules().rules.length, 1, 'unchanged after the refusal');
  });

  it('explainAuthz: the default verdict, conditions on username, cert CN, listener and source', async () => {
    const { guard } = await startGuard(
      'allow subscribe ops/# username=ops source=10.0.0.0/8\nallow publish certs/%c cn=*.fleet\n',
    );
    const q = { clientId: 'c1', action: 'subscribe' as const, topic: 'ops/#' };
    assert.equal(guard.explainAuthz({ ...q, username: 'ops', source: '10.2.3.4' }).allowed, true);
    const no = guard.explainAuthz({ ...q, username: 'ops', source: '192.168.0.1' });
    assert.deepEqual([no.allowed, no.decidedBy, no.listener], [false, 'default', 'mqtt']);
    assert.equal(
      guard.explainAuthz({ clientId: 'c1', certCn: 'c1.fleet', action: 'publish', topic: 'certs/c1' }).index,
      1,
    );
    assert.throws(() => guard.explainAuthz({ ...q, listener: 'nope' }), /no guard\.listeners entry/);
  });

  it('a bad rules file at start stops the start, naming the file and the line (config check and Guard)', () => {
    const tmp = tempDir('authz-start');
    after(tmp.cleanup);
    const file = join(tmp.dir, 'live.rules');
    writeFileSync(file, 'allow all a\n\ndeny subscribe b/#/c\n');
    assert.throws(
      () => validateConfig({ dataDir: tmp.dir, guard: { ...config, authz: { rulesFile: file } } }),
      (e: unknown) =>
        e instanceof Error && /guard\.authz\.rulesFile: .*live\.rules line 3: topic/.test(e.message),
    );
    assert.throws(
      () => new Guard({ ...config, authz: { rulesFile: file } }, { dataDir: tmp.dir }),
      /guard\.authz\.rulesFile: .*live\.rules line 3: topic/,
    );
  });

  it("a will whose client is gone is checked against the only listener's rules (not the built-in defaults)", async () => {
    const tmp = tempDir('authz-will');
    after(tmp.cleanup);
    const guard = new Guard(
      {
        ...config,
        listeners: {
          mqtt: { authn: ['anon'], authz: { rules: [{ action: 'publish', topic: 'status/%c' }] } },
        },
      },
      { dataDir: tmp.dir },
    );
    after(() => guard.close());
    // No session for dev-9 (its connection ended): the fallback decides.
    assert.equal(guard.authorizePublish('dev-9', 'status/dev-9'), true);
    assert.equal(guard.authorizePublish('dev-9', 'status/dev-8'), false);
    assert.equal(guard.authorizePublish('dev-9', 'devices/dev-9/x'), false, 'not the built-in defaults');
  });
});
