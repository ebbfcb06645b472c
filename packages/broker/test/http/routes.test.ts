import assert from 'node:assert/strict';
import { closeSync, openSync } from 'node:fs';
import { after, describe, test } from 'node:test';
import Fastify from 'fastify';
import { brokerHttpRoutes, type ReadinessState } from '../../src/http/routes.js';
import { BrokerMetrics } from '../../src/metrics.js';

async function app(readiness: () => ReadinessState = () => 'ready') {
  const metrics = new BrokerMetrics();
  const server = Fastify({ logger: false });
  await server.register(brokerHttpRoutes, { registry: metrics.registry, readiness });
  after(() => server.close());
  return { server, metrics };
}

describe('brokerHttpRoutes', () => {
  test('/metrics serves the Prometheus text format with broker and process metrics', async () => {
    const { server, metrics } = await app();
    metrics.connections.inc({ listener: 'mqtt' });
    metrics.connectionAttempts.inc({ listener: 'mqtt' }, 3);
    const res = await server.inject({ method: 'GET', url: '/metrics' });
    assert.equal(res.statusCode, 200);
    assert.equal(res.headers['content-type'], metrics.registry.contentType);
    assert.match(String(res.headers['content-type']), /^text\/plain; version=0\.0\.4/);
    assert.match(res.body, /^breakwater_connections\{listener="mqtt"\} 1$/m);
    assert.match(res.body, /^breakwater_connection_attempts_total\{listener="mqtt"\} 3$/m);
    assert.match(res.body, /^# TYPE breakwater_messages_received_total counter$/m);
    // Node's default metrics: FD usage is what the reboot-storm incident ran out of.
    assert.match(res.body, /^process_open_fds \d+$/m);
    assert.match(res.body, /^process_max_fds \d+$/m);
    assert.match(res.body, /^nodejs_eventloop_lag_seconds /m);
  });

  test('process_open_fds follows the FDs this process opens and closes', async (t) => {
    if (process.platform !== 'linux') return t.skip('Linux only');
    const { server } = await app();
    const read = async () => {
      const res = await server.inject({ method: 'GET', url: '/metrics' });
      return Number(/^process_open_fds (\d+)$/m.exec(res.body)?.[1]);
    };
    const before = await read();
    const fds = Array.from({ length: 30 }, () => openSync('/dev/null', 'r'));
    try {
      assert.equal(await read(), before + 30);
    } finally {
      for (const fd of fds) closeSync(fd);
    }
    assert.equal(await read(), before);
  });

  test('/healthz is 200 whatever the readiness', async () => {
    for (const state of ['starting', 'ready', 'draining'] as const) {
      const { server } = await app(() => state);
      const res = await server.inject({ method: 'GET', url: '/healthz' });
      assert.equal(res.statusCode, 200, state);
      assert.deepEqual(res.json(), { status: 'ok' });
    }
  });

  test('/readyz is 200 only when ready: 503 while starting and while draining', async () => {
    let state: ReadinessState = 'starting';
    const { server } = await app(() => state);
    const statuses: Array<[number, unknown]> = [];
    for (const next of ['starting', 'ready', 'draining'] as const) {
      state = next;
      const res = await server.inject({ method: 'GET', url: '/readyz' });
      statuses.push([res.statusCode, res.json()]);
    }
    assert.deepEqual(statuses, [
      [503, { status: 'starting' }],
      [200, { status: 'ready' }],
      [503, { status: 'draining' }],
    ]);
  });

  test('over a real socket too', async () => {
    const { server } = await app();
    const address = await server.listen({ port: 0, host: '127.0.0.1' });
    const res = await fetch(`${address}/metrics`);
    assert.equal(res.status, 200);
    assert.match(await res.text(), /breakwater_open_sockets/);
  });
});
