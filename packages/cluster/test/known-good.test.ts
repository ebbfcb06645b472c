/**
 * Issue 15: the guard's known-good credentials are shared across nodes, so the survivors of a node
 * loss admit its devices from cache instead of sending the fleet to the auth backend cold.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { Guard, resolveGuardConfig } from '@breakwater/broker';
import { requireNatsServer, startBroker, startNatsCluster } from '@breakwater/testkit';
import { NatsCluster } from '../src/index.js';
import { connectTo, end, eventually, testClusterOptions } from './helpers.js';

test('a device confirmed by the backend on one node is admitted from cache on another', async (t) => {
  if (!requireNatsServer(t)) return;
  // The auth backend: counts its calls, allows everyone.
  let calls = 0;
  const backend = http.createServer((req, res) => {
    calls++;
    req.resume();
    req.on('end', () => res.end(JSON.stringify({ result: 'allow' })));
  });
  backend.listen(0, '127.0.0.1');
  await once(backend, 'listening');
  const url = `http://127.0.0.1:${(backend.address() as { port: number }).port}/auth`;
  const dir = mkdtempSync(join(tmpdir(), 'bw-known-good-'));
  const nats = await startNatsCluster(3);
  const stops: (() => Promise<unknown>)[] = [];
  after(async () => {
    for (const s of stops.reverse()) await s().catch(() => {});
    await nats.stop();
    backend.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const secret = 'ab'.repeat(32);
  const node = async (name: string, natsIndex: number) => {
    const dataDir = join(dir, name);
    mkdirSync(dataDir);
    // The nodes share the guard secret (deploy/README.md): cache keys then agree across nodes.
    writeFileSync(join(dataDir, 'guard.secret'), secret, { mode: 0o600 });
    const guard = new Guard(
      resolveGuardConfig({
        authenticators: { http: { backend: { url } } },
        listeners: { test: { authn: ['backend'] } },
      }),
      { dataDir },
    );
    await guard.start();
    const cluster = await NatsCluster.connect({ servers: [nats.urls[natsIndex]!], ...testClusterOptions });
    const broker = await startBroker({ cluster, hooks: guard });
    await cluster.start();
    const sync = await cluster.shareKnownGood(guard.knownGood!);
    stops.push(
      () => guard.close(),
      () => cluster.close(),
      () => broker.close(),
    );
    return { broker, sync };
  };
  const a = await node('a', 0);
  const b = await node('b', 1);
  const device = { clientId: 'kg-dev-1', username: 'kg-dev-1', password: 'secret-1' };
  const first = await connectTo(a.broker.url, device);
  assert.equal(calls, 1, 'node a asked the backend once');
  await end(first);
  await eventually(() => b.sync.applied >= 1, 10_000, 'node b got the confirmation');
  // Node a is gone; the device comes back on node b.
  const again = await connectTo(b.broker.url, device);
  assert.equal(calls, 1, 'node b admitted it from the shared known-good entry');
  await end(again);
  // A node that joins later is warmed with what the bucket already holds.
  const c = await node('c', 2);
  assert.ok(c.sync.applied >= 1, 'node c was warmed at start');
  const third = await connectTo(c.broker.url, device);
  assert.equal(calls, 1);
  // A different password is not a cache hit: the backend is asked.
  const wrong = await connectTo(c.broker.url, { ...device, password: 'other' });
  assert.equal(calls, 2);
  await end(third, wrong);
});
