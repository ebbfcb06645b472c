/**
 * Data-integration API (issue 16) over a real engine: a broker on a real socket, MQTT.js
 * publishers, a webhook sink pointing at a port nothing listens on (the sink is down). Rules,
 * sinks (pause/resume), the DLQ (inspect, replay, purge) and validation → the data-quality alert
 * and incident; 4xx answers name the field; changes are audited.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { type IntegrationConfig, MemoryStorage, validateConfig } from '@breakwater/broker';
import { Integration } from '@breakwater/integration';
import { startBroker } from '@breakwater/testkit';
import mqtt from 'mqtt';
import { Registry } from 'prom-client';
import { errorOf, sqliteDriver, startControlPlane } from './harness.js';

async function waitFor(cond: () => boolean | Promise<boolean>, what: string): Promise<void> {
  const end = Date.now() + 15_000;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

async function stack(t: TestContext) {
  const dir = mkdtempSync(join(tmpdir(), 'bw-control-integration-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const config = validateConfig(
    {
      dataDir: dir,
      integration: {
        sinks: {
          webhook: {
            hook: { url: 'http://127.0.0.1:1/ingest', retry: { initialMs: 50, maxMs: 200 }, timeoutMs: 500 },
          },
        },
        rules: [{ id: 'telemetry', filter: 'devices/+/telemetry', sinks: ['hook'] }],
        validation: [{ filter: 'devices/+/telemetry', schema: { type: 'object', required: ['temp'] } }],
      },
    },
    { baseDir: dir },
  ).integration as IntegrationConfig;
  const registry = new Registry();
  const integration = new Integration({ config, registry });
  const tb = await startBroker({ storage: integration.joinFlush(new MemoryStorage()) });
  integration.attach(tb.broker);
  const h = await startControlPlane(t, sqliteDriver, { integration, metrics: { registry } });
  await h.cp.start();
  t.after(async () => {
    await h.cp.close();
    await tb.close();
    await integration.close();
  });
  return { h, tb, integration };
}

describe('data-integration API', () => {
  it('lists sinks and rules, pauses and resumes a sink, manages API rules; 4xx names the field; audited', async (t) => {
    const { h } = await stack(t);
    const sinks = await h.call('GET', '/api/v1/sinks');
    assert.equal(sinks.statusCode, 200);
    assert.deepEqual(
      sinks.json().items.map((s: { name: string; type: string }) => [s.name, s.type]),
      [['hook', 'webhook']],
    );
    const noReason = await h.call('POST', '/api/v1/sinks/hook/pause', { body: {} });
    assert.equal(noReason.statusCode, 400);
    assert.equal(errorOf(noReason).field, 'reason');
    const paused = await h.call('POST', '/api/v1/sinks/hook/pause', {
      body: { reason: 'INC-9 warehouse maintenance' },
    });
    assert.equal(paused.statusCode, 200);
    assert.equal(paused.json().state, 'paused');
    assert.equal(paused.json().paused.reason, 'INC-9 warehouse maintenance');
    const unknown = await h.call('POST', '/api/v1/sinks/nope/pause', { body: { reason: 'x' } });
    assert.equal(unknown.statusCode, 404);
    const resumed = await h.call('POST', '/api/v1/sinks/hook/resume', { body: {} });
    assert.notEqual(resumed.json().state, 'paused');

    const badSink = await h.call('POST', '/api/v1/rules', {
      body: { id: 'r2', filter: 'a/#', sinks: ['hook', 'ghost'] },
    });
    assert.equal(badSink.statusCode, 400);
    assert.equal(errorOf(badSink).field, 'sinks[1]');
    const badFilter = await h.call('POST', '/api/v1/rules', {
      body: { id: 'r2', filter: 'a/#/b', sinks: ['hook'] },
    });
    assert.equal(badFilter.statusCode, 400);
    assert.equal(errorOf(badFilter).field, 'filter');
    const unknownKey = await h.call('POST', '/api/v1/rules', {
      body: { id: 'r2', filter: 'a/#', sinks: ['hook'], sink: 'x' },
    });
    assert.equal(unknownKey.statusCode, 400);
    assert.equal(errorOf(unknownKey).field, 'sink');
    const created = await h.call('POST', '/api/v1/rules', {
      body: {
        id: 'r2',
        filter: 'a/#',
        where: [{ path: 'level', op: 'gte', value: 3 }],
        sinks: ['hook'],
        reason: 'alarms to the warehouse',
      },
    });
    assert.equal(created.statusCode, 201);
    assert.equal(created.json().source, 'api');
    const fromFile = await h.call('DELETE', '/api/v1/rules/telemetry');
    assert.equal(fromFile.statusCode, 409);
    const list = await h.call('GET', '/api/v1/rules');
    assert.deepEqual(
      list.json().items.map((r: { id: string; source: string }) => [r.id, r.source]),
      [
        ['telemetry', 'config'],
        ['r2', 'api'],
      ],
    );
    assert.equal(
      (await h.call('DELETE', '/api/v1/rules/r2', { headers: { 'x-breakwater-reason': 'done' } })).statusCode,
      200,
    );
    const auditLog = await h.call('GET', '/api/v1/audit?limit=20');
    const actions = auditLog.json().items.map((e: { action: string }) => e.action);
    for (const a of [
      'integration.sink.pause',
      'integration.sink.resume',
      'integration.rule.create',
      'integration.rule.delete',
    ]) {
      assert.ok(actions.includes(a), `audited: ${a}`);
    }
  });

  it('reports the down sink, and raises the data-quality alert per cohort for invalid telemetry, sampled into the DLQ', async (t) => {
    const { h, tb, integration } = await stack(t);
    await h.call('POST', '/api/v1/devices', { body: { id: 'bad-1', cohort: 'canary' } });
    const good = await mqtt.connectAsync(tb.url, { clientId: 'good-1' });
    const bad = await mqtt.connectAsync(tb.url, { clientId: 'bad-1' });
    t.after(async () => {
      await good.endAsync();
      await bad.endAsync();
    });
    await good.publishAsync('devices/good-1/telemetry', '{"temp":20}', { qos: 1 });
    for (let i = 0; i < 3; i++) await bad.publishAsync('devices/bad-1/telemetry', '{"tmp":1}', { qos: 1 });
    await waitFor(() => integration.sink('hook').failedAttempts > 0, 'a failed delivery');
    const sink = (await h.call('GET', '/api/v1/sinks/hook')).json();
    assert.equal(sink.state, 'failing');
    assert.equal(sink.queued, 1, 'the valid message waits in the buffer');
    assert.equal(sink.lastError.code, 'BW_ERR_SINK_UNAVAILABLE');

    await waitFor(async () => (await h.call('GET', '/api/v1/alerts')).json().active.length > 0, 'the alert');
    const alert = (await h.call('GET', '/api/v1/alerts')).json().active[0];
    assert.equal(alert.ruleId, 'telemetry-validation-failures');
    assert.deepEqual(alert.labels, { cohort: 'canary' });
    await waitFor(
      async () => (await h.call('GET', '/api/v1/incidents')).json().items.length > 0,
      'the incident',
    );
    const incident = (await h.call('GET', '/api/v1/incidents')).json().items[0];
    assert.equal(incident.type, 'data-quality');

    const validation = (await h.call('GET', '/api/v1/telemetry/validation')).json();
    assert.equal(validation.total, 3);
    assert.deepEqual(
      validation.devices.map((d: { device: string; cohort: string; count: number }) => [
        d.device,
        d.cohort,
        d.count,
      ]),
      [['bad-1', 'canary', 3]],
    );
    assert.deepEqual(validation.cohorts, [{ cohort: 'canary', failures: 3 }]);

    const dlq = (await h.call('GET', '/api/v1/dlq?reason=invalid')).json();
    assert.equal(dlq.items.length, 1);
    assert.equal(dlq.items[0].publisher, 'bad-1');
    assert.equal(dlq.items[0].payload, '{"tmp":1}');
    assert.equal(dlq.items[0].error, "(root) must have required property 'temp'");
    const one = await h.call('GET', `/api/v1/dlq/${dlq.items[0].id}`);
    assert.equal(one.json().errorCode, 'BW_ERR_TELEMETRY_INVALID');
    const noSelection = await h.call('POST', '/api/v1/dlq/replay', { body: { reason: 'x' } });
    assert.equal(noSelection.statusCode, 400);
    assert.equal(errorOf(noSelection).field, 'ids');
    const missing = await h.call('POST', '/api/v1/dlq/replay', { body: { ids: [999999] } });
    assert.deepEqual(missing.json(), { replayed: 0, skipped: [{ id: 999999, why: 'no such dead letter' }] });
    const purged = await h.call('POST', '/api/v1/dlq/purge', {
      body: { dlqReason: 'invalid', reason: 'seen' },
    });
    assert.deepEqual(purged.json(), { deleted: 1 });
    assert.equal((await h.call('GET', '/api/v1/dlq')).json().total, 0);
  });
});
