/**
 * The engine end to end over real MQTT: a broker (testkit, real TCP on port 0), MQTT.js clients,
 * a local webhook receiver. The sink is down, the broker and the integration restart, the sink
 * comes back: nothing acknowledged is lost; rejected data lands in the DLQ and replays; payload
 * conditions, validation, overflow and pause/resume do what they say.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { MemoryStorage } from '@breakwater/broker';
import { startBroker } from '@breakwater/testkit';
import mqtt from 'mqtt';
import { Registry } from 'prom-client';
import { Integration } from '../src/index.js';
import type { ValidationReport } from '../src/validation/validator.js';
import { type HookServer, integrationConfig, startHookServer, waitFor } from './helpers.js';

const SECRET = 'test-secret-0123456789';

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'bw-integration-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function startStack(integration: Integration) {
  const tb = await startBroker({ storage: integration.joinFlush(new MemoryStorage()) });
  integration.attach(tb.broker);
  const client = await mqtt.connectAsync(tb.url, { protocolVersion: 5, clientId: 'd1' });
  return {
    tb,
    client,
    async close() {
      await client.endAsync();
      await tb.close();
    },
  };
}

function hookConfig(hook: HookServer, extra: Record<string, unknown> = {}) {
  return {
    sinks: {
      webhook: {
        hook: {
          url: hook.url,
          secret: SECRET,
          batchSize: 50,
          retry: { initialMs: 20, maxMs: 100 },
          ...extra,
        },
      },
    },
  };
}

describe('integration engine', () => {
  it('keeps acknowledged QoS 1 messages through a sink outage and a restart, then drains by itself', async () => {
    const dir = tempDir();
    const hook = await startHookServer(SECRET);
    after(() => hook.close());
    hook.mode = 'down';
    const config = integrationConfig(dir, {
      ...hookConfig(hook),
      rules: [{ id: 'telemetry', filter: 'devices/+/telemetry', sinks: ['hook'] }],
    });
    let integration = new Integration({ config, registry: new Registry() });
    const stack = await startStack(integration);
    for (let seq = 0; seq < 30; seq++) {
      await stack.client.publishAsync('devices/d1/telemetry', JSON.stringify({ seq }), { qos: 1 });
      // The PUBACK came after the buffer commit: the message is already counted there.
      assert.equal(integration.sink('hook').queued, seq + 1);
    }
    await stack.client.publishAsync('devices/d1/status', 'not matched', { qos: 1 });
    await waitFor(
      () => integration.sink('hook').failedAttempts >= 2,
      'failed attempts against the down sink',
    );
    const failing = integration.sink('hook');
    assert.equal(failing.state, 'failing');
    assert.equal(failing.lastError?.code, 'BW_ERR_SINK_UNAVAILABLE');
    assert.match(failing.lastError?.message ?? '', /HTTP 503/);
    await stack.close();
    await integration.close();
    assert.equal(hook.received.length, 0);

    // Restart: the buffer file still holds all 30; the sink comes back; nobody does anything.
    integration = new Integration({ config, registry: new Registry() });
    after(() => integration.close());
    assert.equal(integration.sink('hook').queued, 30);
    hook.mode = 'up';
    await waitFor(() => integration.sink('hook').queued === 0, 'the backlog to drain');
    const seqs = hook.received.map((m) => (JSON.parse(m.payload) as { seq: number }).seq);
    assert.deepEqual(
      [...new Set(seqs)].sort((a, b) => a - b),
      Array.from({ length: 30 }, (_, i) => i),
    );
    assert.equal(hook.badSignatures, 0);
    assert.equal(new Set(hook.received.map((m) => m.id)).size, 30, 'every message has its own id');
    assert.ok(
      hook.received.every((m) => m.rule === 'telemetry' && m.publisher === 'd1' && m.encoding === 'utf8'),
    );
    assert.equal(integration.sink('hook').state, 'healthy');
  });

  it('dead-letters the message the sink rejects (not its batch), and replays it once fixed', async () => {
    const dir = tempDir();
    const hook = await startHookServer(SECRET);
    after(() => hook.close());
    hook.mode = 'reject';
    const config = integrationConfig(dir, {
      ...hookConfig(hook, { paused: true }),
      rules: [{ id: 'all', filter: 'devices/#', sinks: ['hook'] }],
    });
    const integration = new Integration({ config, registry: new Registry() });
    after(() => integration.close());
    const stack = await startStack(integration);
    after(() => stack.close());
    // Paused: one batch of 10 with one bad reading builds up, then goes at once.
    for (let i = 0; i < 10; i++) {
      await stack.client.publishAsync(`devices/d1/r`, i === 6 ? 'BAD' : `ok-${i}`, { qos: 1 });
    }
    assert.equal(integration.sink('hook').state, 'paused');
    integration.resumeSink('hook');
    await waitFor(() => integration.sink('hook').queued === 0, 'the batch to complete');
    assert.deepEqual(
      hook.received.map((m) => m.payload),
      ['ok-0', 'ok-1', 'ok-2', 'ok-3', 'ok-4', 'ok-5', 'ok-7', 'ok-8', 'ok-9'],
    );
    const dead = integration.deadLetters({ limit: 10 });
    assert.equal(dead.length, 1);
    assert.equal(dead[0]!.payload.toString(), 'BAD');
    assert.equal(dead[0]!.reason, 'rejected');
    assert.equal(dead[0]!.sink, 'hook');
    assert.equal(dead[0]!.errorCode, 'BW_ERR_SINK_REJECTED');
    assert.match(dead[0]!.error, /HTTP 400 bad reading/);

    hook.mode = 'up';
    const res = integration.replay({ sink: 'hook' });
    assert.deepEqual(res, { replayed: 1, skipped: [] });
    await waitFor(() => hook.received.length === 10, 'the replayed message');
    const replayed = hook.received[9]!;
    assert.equal(replayed.payload, 'BAD');
    assert.equal(replayed.id, dead[0]!.msgId, 'a replay keeps the message id');
    assert.equal(integration.deadLetterCount, 0);
  });

  it('hands a message to a rule only when its payload condition holds', async () => {
    const dir = tempDir();
    const hook = await startHookServer(SECRET);
    after(() => hook.close());
    const config = integrationConfig(dir, {
      ...hookConfig(hook),
      rules: [
        {
          id: 'hot',
          filter: 'devices/+/telemetry',
          where: [{ path: 'temp', op: 'gt', value: 30 }],
          sinks: ['hook'],
        },
      ],
    });
    const integration = new Integration({ config, registry: new Registry() });
    after(() => integration.close());
    const stack = await startStack(integration);
    after(() => stack.close());
    for (const temp of [20, 31, 29.5, 45]) {
      await stack.client.publishAsync('devices/d1/telemetry', JSON.stringify({ temp }), { qos: 1 });
    }
    await stack.client.publishAsync('devices/d1/telemetry', 'not json', { qos: 1 });
    await waitFor(() => hook.received.length === 2, 'the two hot readings');
    assert.deepEqual(
      hook.received.map((m) => JSON.parse(m.payload)),
      [{ temp: 31 }, { temp: 45 }],
    );
    assert.deepEqual(integration.rule('hot')?.stats, { matched: 2, filtered: 3, invalid: 0 });
  });

  it('validates telemetry: invalid messages are counted per device, sampled into the DLQ and reported', async () => {
    const dir = tempDir();
    const hook = await startHookServer(SECRET);
    after(() => hook.close());
    const config = integrationConfig(dir, {
      ...hookConfig(hook),
      rules: [{ id: 'telemetry', filter: 'devices/+/telemetry', sinks: ['hook'] }],
      validation: [
        {
          filter: 'devices/+/telemetry',
          schema: { type: 'object', required: ['seq', 'temp'], properties: { temp: { type: 'number' } } },
          sampleIntervalSec: 3600,
        },
      ],
    });
    const integration = new Integration({ config, registry: new Registry() });
    after(() => integration.close());
    const reports: ValidationReport[] = [];
    integration.onValidationReport((r) => reports.push(r));
    const stack = await startStack(integration);
    after(() => stack.close());
    const bad = await mqtt.connectAsync(stack.tb.url, { clientId: 'broken-7' });
    after(() => bad.endAsync());
    await stack.client.publishAsync('devices/d1/telemetry', JSON.stringify({ seq: 1, temp: 20 }), { qos: 1 });
    for (let i = 0; i < 5; i++) {
      await bad.publishAsync('devices/broken-7/telemetry', JSON.stringify({ seq: i, temp: 'NaN' }), {
        qos: 1,
      });
    }
    await bad.publishAsync('devices/broken-7/telemetry', '{"seq":9,"te', { qos: 1 });
    await waitFor(() => reports.length > 0, 'a validation report');
    await waitFor(() => hook.received.length === 1, 'the valid message');
    assert.equal(
      JSON.parse(hook.received[0]!.payload).seq,
      1,
      'invalid messages reach no sink (onInvalid: drop)',
    );
    const summary = integration.validationSummary(10);
    assert.equal(summary.total, 6);
    assert.equal(summary.devices.length, 1);
    assert.equal(summary.devices[0]!.device, 'broken-7');
    assert.equal(summary.devices[0]!.count, 6);
    assert.equal(summary.devices[0]!.lastError, 'payload is not JSON');
    const sampled = integration.deadLetters({ limit: 10, reason: 'invalid' });
    assert.equal(sampled.length, 1, 'one sample per device per interval');
    assert.equal(sampled[0]!.errorCode, 'BW_ERR_TELEMETRY_INVALID');
    assert.equal(sampled[0]!.error, '/temp must be number');
    assert.equal(sampled[0]!.publisher, 'broken-7');
    const reported = reports.flatMap((r) => r.devices);
    assert.ok(reported.every((d) => d.device === 'broken-7'));
    assert.equal(
      reported.reduce((n, d) => n + d.failures, 0),
      6,
    );
    assert.deepEqual(integration.rule('telemetry')?.stats, { matched: 1, filtered: 0, invalid: 6 });
  });

  it('applies the overflow policy when a sink buffer is full (drop-oldest keeps the newest)', async () => {
    const dir = tempDir();
    const hook = await startHookServer(SECRET);
    after(() => hook.close());
    const config = integrationConfig(dir, {
      ...hookConfig(hook, { paused: true, buffer: { maxMessages: 5, overflow: 'drop-oldest' } }),
      rules: [{ id: 'all', filter: 'devices/#', sinks: ['hook'] }],
    });
    const integration = new Integration({ config, registry: new Registry() });
    after(() => integration.close());
    const stack = await startStack(integration);
    after(() => stack.close());
    for (let i = 0; i < 8; i++) await stack.client.publishAsync('devices/d1/x', `m${i}`, { qos: 1 });
    const s = integration.sink('hook');
    assert.equal(s.queued, 5);
    assert.equal(s.dropped, 3);
    integration.resumeSink('hook');
    await waitFor(() => hook.received.length === 5, 'the buffered five');
    assert.deepEqual(
      hook.received.map((m) => m.payload),
      ['m3', 'm4', 'm5', 'm6', 'm7'],
    );
  });

  it('manages API rules: created, applied at once, refused with the field named, deleted', async () => {
    const dir = tempDir();
    const hook = await startHookServer(SECRET);
    after(() => hook.close());
    const config = integrationConfig(dir, {
      ...hookConfig(hook),
      rules: [{ id: 'from-file', filter: 'a/#', sinks: ['hook'] }],
    });
    const integration = new Integration({ config, registry: new Registry() });
    after(() => integration.close());
    const stack = await startStack(integration);
    after(() => stack.close());
    assert.throws(
      () =>
        integration.putRule(
          { id: 'x', filter: 'b/#', sinks: ['hook', 'nope'], enabled: true },
          { replace: false },
        ),
      (err: Error & { field?: string; code?: string }) =>
        err.code === 'BW_ERR_API_VALIDATION' &&
        err.field === 'sinks[1]' &&
        /no sink named "nope"/.test(err.message),
    );
    assert.throws(
      () =>
        integration.putRule(
          { id: 'from-file', filter: 'b/#', sinks: ['hook'], enabled: true },
          { replace: true },
        ),
      (err: Error & { code?: string }) => err.code === 'BW_ERR_API_CONFLICT',
    );
    const created = integration.putRule(
      { id: 'b-rule', filter: 'b/+', sinks: ['hook'], enabled: true },
      { replace: false },
    );
    assert.equal(created.source, 'api');
    await stack.client.publishAsync('b/1', 'via api rule', { qos: 1 });
    await waitFor(() => hook.received.length === 1, 'the API rule to deliver');
    assert.equal(hook.received[0]!.rule, 'b-rule');
    integration.deleteRule('b-rule');
    await stack.client.publishAsync('b/1', 'no rule now', { qos: 1 });
    await stack.client.publishAsync('a/1', 'file rule', { qos: 1 });
    await waitFor(() => hook.received.length === 2, 'the file rule to deliver');
    assert.equal(hook.received[1]!.payload, 'file rule');
    assert.deepEqual(
      integration.rules().map((r) => [r.id, r.source]),
      [['from-file', 'config']],
    );
  });
});
