/**
 * Issue 15: when a node dies, the wills of its clients are published exactly once by the
 * survivors (heartbeats + an exclusive marker per will), and the clients reconnect elsewhere.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { connectTo, end, eventually, startTestCluster, type TestCluster } from './helpers.js';

describe('cluster: wills of a dead node', () => {
  let tc: TestCluster | null = null;

  before(async (t) => {
    tc = await startTestCluster(t as never);
  });
  after(async () => {
    await tc?.close();
  });

  test('each will of a node that vanished is published once, by one survivor', async (t) => {
    if (tc === null) return t.skip('no NATS');
    const [a, , c] = tc.nodes;
    const watcher = await connectTo(a!.broker.url, { clientId: 'will-watcher' });
    await watcher.subscribeAsync('wills/#', { qos: 1 });
    const got: string[] = [];
    watcher.on('message', (topic) => got.push(topic));
    const devices = [];
    for (let i = 0; i < 5; i++) {
      devices.push(
        await connectTo(c!.broker.url, {
          clientId: `will-dev-${i}`,
          will: { topic: `wills/dev-${i}`, payload: Buffer.from('gone'), qos: 1, retain: false },
        }),
      );
    }
    // A client that says goodbye properly leaves no will behind.
    const polite = await connectTo(c!.broker.url, {
      clientId: 'will-polite',
      will: { topic: 'wills/polite', payload: Buffer.from('gone'), qos: 1, retain: false },
    });
    await polite.endAsync();
    await c!.cluster.flush();
    // Node c dies: its NATS connection drops without withdrawing anything, its sockets die with it.
    await c!.cluster.nc.close();
    for (const d of devices) d.stream.destroy();
    await c!.broker.close();
    await eventually(() => got.length >= 5, 15_000, `5 wills (have ${got.length})`);
    // Both survivors raced for every will; give a late duplicate the time to show up.
    await new Promise((r) => setTimeout(r, 1500));
    assert.deepEqual([...got].sort(), [
      'wills/dev-0',
      'wills/dev-1',
      'wills/dev-2',
      'wills/dev-3',
      'wills/dev-4',
    ]);
    let fired = 0;
    for (const n of tc.nodes)
      if (n !== c) fired += (await n.cluster.metrics.willsFired.get()).values[0]?.value ?? 0;
    assert.equal(fired, 5, 'five wills fired in total across the survivors');
    await end(watcher, ...devices);
    await c!.cluster.close().catch(() => {});
    tc.nodes.splice(tc.nodes.indexOf(c!), 1);
  });
});
