/**
 * Alerting over real sockets: webhook delivery with retries against a local HTTP server, the
 * metric-series and alerts API on a listening control plane fed by a real prom-client registry.
 */
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, it, type TestContext } from 'node:test';
import { AdmissionMetrics, BrokerMetrics, GuardMetrics } from '@breakwater/broker';
import type { AlertEvent } from '../src/alerts/types.js';
import { WebhookNotifier } from '../src/alerts/webhook.js';
import { sqliteDriver, startControlPlane } from './harness.js';

interface Received {
  headers: IncomingMessage['headers'];
  body: unknown;
}

/** A receiver answering the n-th request (1-based) with `status(n)`. */
async function receiver(t: TestContext, status: (n: number) => number) {
  const received: Received[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      received.push({ headers: req.headers, body: JSON.parse(Buffer.concat(chunks).toString('utf8')) });
      res.statusCode = status(received.length);
      res.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}/hook`, received };
}

function event(ruleId: string, severity: AlertEvent['severity'] = 'critical'): AlertEvent {
  return {
    ruleId,
    name: 'BreakwaterAuthFailureRatioHigh',
    state: 'firing',
    severity,
    incidentType: 'mass-disconnect',
    runbook: 'auth-failing-fleet-wide',
    labels: { listener: 'tcp' },
    value: 0.8,
    threshold: 0.2,
    startedAt: 1_767_268_800_000,
    at: 1_767_268_813_000,
    summary: 'auth failures at 80.0 %',
  };
}

describe('WebhookNotifier', () => {
  it('retries with backoff until the receiver answers 2xx, same delivery id on every try', async (t) => {
    const hook = await receiver(t, (n) => (n <= 2 ? 503 : 204));
    const delays: number[] = [];
    const notifier = new WebhookNotifier({
      url: hook.url,
      headers: { authorization: 'Bearer hook-secret' },
      baseDelayMs: 20,
      random: () => {
        delays.push(delays.length);
        return 1; // the top of the jitter range: 20 ms, then 40 ms
      },
    });
    const e = event('auth-failure-ratio');
    notifier.onAlert(e);
    await notifier.idle();
    assert.equal(hook.received.length, 3);
    assert.deepEqual(hook.received[2]!.body, e);
    const ids = new Set(hook.received.map((r) => r.headers['x-breakwater-delivery']));
    assert.equal(ids.size, 1, 'one delivery id across retries');
    assert.deepEqual(
      hook.received.map((r) => r.headers['x-breakwater-attempt']),
      ['1', '2', '3'],
    );
    assert.equal(hook.received[0]!.headers.authorization, 'Bearer hook-secret');
    assert.equal(hook.received[0]!.headers['content-type'], 'application/json');
    assert.equal(delays.length, 2, 'one backoff per retry');
    assert.deepEqual(notifier.stats, { delivered: 1, failed: 0, dropped: 0, attempts: 3, queued: 0 });
  });

  it('gives up at maxAttempts, does not retry a 4xx, and keeps order', async (t) => {
    const hook = await receiver(t, (n) => (n === 1 ? 400 : 500));
    const notifier = new WebhookNotifier({ url: hook.url, baseDelayMs: 1, maxAttempts: 3 });
    notifier.onAlert(event('first'));
    notifier.onAlert(event('second'));
    await notifier.idle();
    // first: 400 once (permanent); second: 500 three times.
    assert.deepEqual(
      hook.received.map((r) => (r.body as AlertEvent).ruleId),
      ['first', 'second', 'second', 'second'],
    );
    assert.equal(notifier.stats.failed, 2);
    assert.equal(notifier.stats.delivered, 0);
  });

  it('filters by severity and bounds its queue (oldest waiting dropped)', async (t) => {
    const hook = await receiver(t, () => 200);
    const notifier = new WebhookNotifier({ url: hook.url, queueSize: 2, minSeverity: 'warning' });
    notifier.onAlert(event('info-only', 'info'));
    for (const id of ['a', 'b', 'c', 'd']) notifier.onAlert(event(id));
    await notifier.idle();
    // 'a' went in flight at once; b, c, d waited in a queue of 2: b was dropped.
    assert.deepEqual(
      hook.received.map((r) => (r.body as AlertEvent).ruleId),
      ['a', 'c', 'd'],
    );
    assert.equal(notifier.stats.dropped, 1);
  });

  it('close() stops retrying a dead receiver', async () => {
    // Nothing listens on port 9 (discard) locally: connection refused on every try.
    const notifier = new WebhookNotifier({
      url: 'http://127.0.0.1:9/hook',
      baseDelayMs: 60_000,
      maxAttempts: 10,
    });
    notifier.onAlert(event('x'));
    notifier.onAlert(event('y'));
    await notifier.close();
    assert.equal(notifier.stats.failed, 1);
    assert.equal(notifier.stats.dropped, 1);
    assert.equal(notifier.stats.attempts, 1);
  });
});

describe('metric series and alerts API', () => {
  it('samples the broker registry per second and serves the history over HTTP', async (t) => {
    const metrics = new BrokerMetrics();
    const guard = new GuardMetrics(metrics.registry);
    new AdmissionMetrics(metrics.registry);
    const h = await startControlPlane(t, sqliteDriver, { metrics: { registry: metrics.registry } });
    const tick = async (attempts: number, success: number, failure: number) => {
      metrics.connectionAttempts.inc({ listener: 'tcp' }, attempts);
      guard.authTotal.inc({ listener: 'tcp', method: 'password', outcome: 'success' }, success);
      guard.authTotal.inc({ listener: 'tcp', method: 'password', outcome: 'failure' }, failure);
      metrics.connections.set({ listener: 'tcp' }, 1000);
      h.clock.advance(1000);
      await h.cp.alerts.tick();
    };
    await tick(0, 0, 0);
    const start = h.clock.now();
    await tick(50, 100, 1);
    await tick(100, 100, 1);

    await h.app.listen({ port: 0, host: '127.0.0.1' });
    const { port } = h.app.server.address() as AddressInfo;
    const get = (path: string, key: string | null = h.adminKey) =>
      fetch(`http://127.0.0.1:${port}${path}`, { headers: key ? { authorization: `Bearer ${key}` } : {} });

    const list = await get('/api/v1/metrics/series');
    assert.equal(list.status, 200);
    const listed = (await list.json()) as { names: string[]; series: Array<{ name: string; kind: string }> };
    assert.ok(listed.names.includes('breakwater_connection_attempts_total'));
    assert.ok(listed.names.includes('breakwater_auth_total'));
    assert.equal(listed.series.find((s) => s.name === 'breakwater_connections')?.kind, 'gauge');

    const res = await get(
      `/api/v1/metrics/series?name=breakwater_connection_attempts_total&since=${start - 1}`,
    );
    assert.equal(res.status, 200);
    const body = (await res.json()) as {
      kind: string;
      series: Array<{ labels: Record<string, string>; points: Array<[number, number]> }>;
    };
    assert.equal(body.kind, 'rate');
    assert.deepEqual(body.series, [
      {
        labels: { listener: 'tcp' },
        points: [
          [start + 1000, 50],
          [start + 2000, 100],
        ],
      },
    ]);

    const stepped = (await (
      await get(
        `/api/v1/metrics/series?name=breakwater_connection_attempts_total&since=${new Date(start - 60_000).toISOString()}&step=60`,
      )
    ).json()) as { step: number; series: Array<{ points: Array<[number, number]> }> };
    assert.equal(stepped.step, 60);
    assert.ok(stepped.series[0]!.points.length <= 2);

    const bad = await get('/api/v1/metrics/series?name=breakwater_connections&since=yesterday');
    assert.equal(bad.status, 400);
    assert.equal(((await bad.json()) as { error: { field: string } }).error.field, 'since');
    const badStep = await get('/api/v1/metrics/series?name=breakwater_connections&step=0');
    assert.equal(badStep.status, 400);
    const missing = await get('/api/v1/metrics/series?name=breakwater_nope');
    assert.equal(missing.status, 404);
    assert.equal((await get('/api/v1/metrics/series', null)).status, 401);
  });

  it('an auth storm in the registry fires auth-failure-ratio; /alerts and /alerts/rules show it', async (t) => {
    const metrics = new BrokerMetrics({ defaultMetrics: false });
    const guard = new GuardMetrics(metrics.registry);
    const h = await startControlPlane(t, sqliteDriver, { metrics: { registry: metrics.registry } });
    const events: AlertEvent[] = [];
    h.cp.alerts.engine.subscribe({ onAlert: (e) => void events.push(e) });
    const second = async (success: number, failure: number) => {
      guard.authTotal.inc({ listener: 'mqtt', method: 'postgres', outcome: 'success' }, success);
      guard.authTotal.inc({ listener: 'mqtt', method: 'postgres', outcome: 'failure' }, failure);
      h.clock.advance(1000);
      await h.cp.alerts.tick();
    };
    for (let i = 0; i < 90; i++) await second(50, 1);
    assert.equal(events.length, 0);
    const faultAt = h.clock.now() + 1000;
    for (let i = 0; i < 30 && events.length === 0; i++) await second(50, 500);
    assert.equal(events.length, 1);
    assert.equal(events[0]!.ruleId, 'auth-failure-ratio');
    assert.equal(events[0]!.startedAt, faultAt);
    assert.ok(events[0]!.at - faultAt <= 30_000);

    h.cp.alerts.engine.raise('ota-gate-failed', { labels: { campaign: 'fw-2.1' }, value: 0.4 });
    const alerts = await h.call('GET', '/api/v1/alerts');
    assert.equal(alerts.statusCode, 200);
    const a = alerts.json() as {
      active: Array<{ ruleId: string; state: string; startedAt: string; runbook: string }>;
      recent: Array<{ ruleId: string; state: string }>;
    };
    assert.deepEqual(a.active.map((x) => x.ruleId).sort(), ['auth-failure-ratio', 'ota-gate-failed']);
    const auth = a.active.find((x) => x.ruleId === 'auth-failure-ratio')!;
    assert.equal(auth.state, 'firing');
    assert.equal(auth.startedAt, new Date(faultAt).toISOString());
    assert.equal(auth.runbook, 'auth-failing-fleet-wide');
    assert.deepEqual(
      a.recent.map((x) => x.ruleId),
      ['ota-gate-failed', 'auth-failure-ratio'],
    );

    const rules = await h.call('GET', '/api/v1/alerts/rules');
    assert.equal(rules.statusCode, 200);
    const r = (rules.json() as { rules: Array<{ id: string; kind: string; promql: string | null }> }).rules;
    assert.equal(r.length, 12);
    assert.equal(r.find((x) => x.id === 'ota-gate-failed')!.kind, 'event');
    assert.match(r.find((x) => x.id === 'auth-failure-ratio')!.promql!, /breakwater_auth_total/);

    const openapi = await h.call('GET', '/api/openapi.json', { key: null });
    assert.equal(openapi.statusCode, 200);
    const paths = Object.keys((openapi.json() as { paths: Record<string, unknown> }).paths);
    for (const p of ['/api/v1/alerts', '/api/v1/alerts/rules', '/api/v1/metrics/series'])
      assert.ok(paths.includes(p), p);
  });

  it('config overrides reach the engine', async (t) => {
    const h = await startControlPlane(t, sqliteDriver, {
      alerts: { rules: { 'zombie-sockets': { threshold: 42, severity: 'critical' } } },
    });
    const res = await h.call('GET', '/api/v1/alerts/rules');
    const zombie = (
      res.json() as { rules: Array<{ id: string; threshold: number; severity: string }> }
    ).rules.find((x) => x.id === 'zombie-sockets')!;
    assert.equal(zombie.threshold, 42);
    assert.equal(zombie.severity, 'critical');
  });
});
