/**
 * Authorization rules over the API (issue 13): GET/PUT /api/v1/authz/rules and POST
 * /api/v1/authz/check, in-process (fastify.inject) against a real Guard (its rules file in a temp
 * dir). A bad request is a 400 naming the field; a change is in the audit log and in force at once.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { Broker, BrokerMetrics, Guard, MemoryStorage } from '@breakwater/broker';
import { brokerFleet } from '../src/fleet-broker.js';
import { errorOf, sqliteDriver, startControlPlane } from './harness.js';

async function start(t: TestContext, withGuard = true) {
  const dir = mkdtempSync(join(tmpdir(), 'bw-authz-api-'));
  const guard = withGuard
    ? new Guard(
        { authenticators: { anonymous: { anon: {} } }, listeners: { mqtt: { authn: ['anon'] } } },
        { dataDir: dir },
      )
    : null;
  const broker = new Broker({
    storage: new MemoryStorage(),
    metrics: new BrokerMetrics({ defaultMetrics: false }),
    ...(guard ? { hooks: guard } : {}),
  });
  t.after(async () => {
    await broker.close();
    await guard?.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const h = await startControlPlane(t, sqliteDriver, { fleet: brokerFleet(broker, guard) });
  return { h, guard, dir };
}

async function keyFor(h: Awaited<ReturnType<typeof start>>['h'], role: string): Promise<string> {
  const res = await h.call('POST', '/api/v1/keys', { body: { name: role, role } });
  return (res.json() as { key: string }).key;
}

describe('/api/v1/authz', () => {
  it('PUT replaces the live rules (written to the rules file, in force at once, audit logged); GET shows them', async (t) => {
    const { h, guard, dir } = await start(t);
    const put = await h.call('PUT', '/api/v1/authz/rules', {
      body: {
        rules: [
          { permission: 'deny', action: 'subscribe', topic: '#', username: 'guest' },
          { topic: 'telemetry/%c', action: 'publish', source: '10.0.0.0/8' },
        ],
        reason: 'INC-7 contain guests',
      },
    });
    assert.equal(put.statusCode, 200, put.body);
    const view = put.json() as { rules: Array<{ line: number; permission: string }>; file: string };
    assert.equal(view.file, join(dir, 'authz', 'authz.rules'));
    assert.deepEqual(
      view.rules.map((r) => r.permission),
      ['deny', 'allow'],
      'permission defaults to allow',
    );
    assert.match(readFileSync(view.file, 'utf8'), /^deny subscribe # username=guest$/m);
    assert.match(readFileSync(view.file, 'utf8'), /^allow publish telemetry\/%c source=10\.0\.0\.0\/8$/m);
    await guard!.authenticate({
      clientId: 'dev-1',
      username: 'guest',
      protocolVersion: 5,
      keepalive: 60,
      clean: true,
      info: { listener: 'mqtt', transport: 'tcp', remoteAddress: '10.0.0.9' },
    });
    assert.equal(guard!.authorizeSubscribe('dev-1', 'devices/dev-1/#'), false, 'the new deny is in force');
    assert.equal(guard!.authorizePublish('dev-1', 'telemetry/dev-1'), true, 'the new allow is in force');

    const get = await h.call('GET', '/api/v1/authz/rules');
    assert.equal(get.statusCode, 200);
    assert.equal((get.json() as { rules: unknown[] }).rules.length, 2);

    const audit = (await h.call('GET', '/api/v1/audit?action=authz.rules.replace')).json() as {
      items: Array<{ reason: string; details: { before: number; after: number } }>;
    };
    assert.equal(audit.items.length, 1);
    assert.equal(audit.items[0]!.reason, 'INC-7 contain guests');
    assert.deepEqual(audit.items[0]!.details.after, 2);
  });

  it('a bad request is a 400 naming the field; the rules in force do not change', async (t) => {
    const { h } = await start(t);
    const cases: Array<[unknown, string]> = [
      [{ rules: [{ topic: 'a', permission: 'maybe' }] }, 'rules[0].permission'],
      [{ rules: [{ topic: 'a' }, { action: 'publish' }] }, 'rules[1].topic'],
      [{ rules: [{ topic: 'a', user: 'x' }] }, 'rules[0].user'],
      [{ rules: [{ topic: 'a' }, { topic: 'b', source: '10.0.0.0/99' }] }, 'rules[1].source'],
      [{ rules: [{ topic: 'a/#/b' }] }, 'rules[0].topic'],
      [{}, 'rules'],
    ];
    for (const [body, field] of cases) {
      const res = await h.call('PUT', '/api/v1/authz/rules', { body });
      assert.equal(res.statusCode, 400, JSON.stringify(body));
      assert.equal(errorOf(res).code, 'BW_ERR_API_VALIDATION');
      assert.equal(errorOf(res).field, field, JSON.stringify(body));
      assert.match(errorOf(res).message, new RegExp(field.replace(/[[\].]/g, '\\$&')));
    }
    const get = (await h.call('GET', '/api/v1/authz/rules')).json() as { rules: unknown[] };
    assert.equal(get.rules.length, 0);
  });

  it('POST /check explains: rule index and text, or the default verdict', async (t) => {
    const { h } = await start(t);
    await h.call('PUT', '/api/v1/authz/rules', {
      body: { rules: [{ permission: 'deny', action: 'publish', topic: 'devices/%c/ota/#' }] },
    });
    const denied = await h.call('POST', '/api/v1/authz/check', {
      body: { clientId: 'dev-1', action: 'publish', topic: 'devices/dev-1/ota/x' },
    });
    assert.equal(denied.statusCode, 200, denied.body);
    const d = denied.json() as { rule: { text: string; origin: string } };
    assert.deepEqual(
      { ...d, rule: { text: d.rule.text } },
      {
        allowed: false,
        verdict: 'deny',
        listener: 'mqtt',
        decidedBy: 'rule',
        index: 0,
        rule: { text: 'deny publish devices/%c/ota/#' },
      },
    );
    assert.match(d.rule.origin, /authz\.rules line 2$/, 'line 1 is the header the API writes');
    const own = (
      await h.call('POST', '/api/v1/authz/check', {
        body: { clientId: 'dev-1', action: 'subscribe', topic: 'devices/dev-1/#' },
      })
    ).json() as { verdict: string; index: number; rule: { origin: string } };
    assert.deepEqual(
      [own.verdict, own.index, own.rule.origin],
      ['allow', 1, 'guard.listeners.mqtt.authz.rules[0]'],
    );
    const other = (
      await h.call('POST', '/api/v1/authz/check', {
        body: { clientId: 'dev-1', action: 'subscribe', topic: 'devices/dev-2/#' },
      })
    ).json() as { verdict: string; decidedBy: string };
    assert.deepEqual([other.verdict, other.decidedBy], ['deny', 'default']);
    const bad = await h.call('POST', '/api/v1/authz/check', {
      body: { clientId: 'dev-1', action: 'read', topic: 'x' },
    });
    assert.equal(bad.statusCode, 400);
    assert.equal(errorOf(bad).field, 'action');
    const unknown = await h.call('POST', '/api/v1/authz/check', {
      body: { clientId: 'dev-1', action: 'publish', topic: 'x', listener: 'nope' },
    });
    assert.equal(unknown.statusCode, 400);
    assert.equal(errorOf(unknown).field, 'listener');
  });

  it('roles: a viewer reads and checks, only an admin replaces; without a guard: 409', async (t) => {
    const { h } = await start(t);
    const viewer = await keyFor(h, 'viewer');
    const operator = await keyFor(h, 'operator');
    assert.equal((await h.call('GET', '/api/v1/authz/rules', { key: viewer })).statusCode, 200);
    for (const key of [viewer, operator]) {
      const res = await h.call('PUT', '/api/v1/authz/rules', { key, body: { rules: [] } });
      assert.equal(res.statusCode, 403);
    }
    const { h: bare } = await start(t, false);
    const res = await bare.call('GET', '/api/v1/authz/rules');
    assert.equal(res.statusCode, 409);
    assert.equal(errorOf(res).code, 'BW_ERR_API_CONFLICT');
  });
});
