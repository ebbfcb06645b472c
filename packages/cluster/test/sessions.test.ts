/**
 * Issue 15: client-id ownership across nodes (exactly one owner, 0x8E to the loser) and
 * persistent sessions that resume on another node with every QoS 1 message published meanwhile.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, before, describe, test } from 'node:test';
import mqtt from 'mqtt';
import { collect, connectTo, ee, end, eventually, startTestCluster, type TestCluster } from './helpers.js';

describe('cluster: sessions', () => {
  let tc: TestCluster | null = null;

  before(async (t) => {
    tc = await startTestCluster(t as never);
  });
  after(async () => {
    await tc?.close();
  });

  test('100 racing connects with one client id across 3 nodes leave exactly one owner', async (t) => {
    if (tc === null) return t.skip('no NATS');
    const urls = tc.nodes.map((n) => n.broker.url);
    const clients = Array.from({ length: 100 }, (_, i) =>
      mqtt.connect(urls[i % 3]!, {
        clientId: 'racer',
        protocolVersion: 5,
        reconnectPeriod: 0,
        connectTimeout: 10_000,
      }),
    );
    const takenOver: number[] = [];
    for (const [i, c] of clients.entries()) {
      c.on('disconnect', (p) => {
        if (p.reasonCode === 0x8e) takenOver.push(i);
      });
    }
    // Every attempt ends: connected (and maybe taken over later) or closed.
    await Promise.all(clients.map((c) => Promise.race([once(ee(c), 'connect'), once(ee(c), 'close')])));
    const connectedOnNodes = () =>
      tc!.nodes.reduce(
        (n, node) => n + (node.broker.broker.connectedClientIds().includes('racer') ? 1 : 0),
        0,
      );
    await eventually(
      () => connectedOnNodes() === 1 && clients.filter((c) => c.connected).length === 1,
      10_000,
      'one owner',
    );
    const winner = clients.findIndex((c) => c.connected);
    // The owner in the KV is the node holding the live connection, with the newest epoch.
    const owner = tc.nodes.find((n) => n.broker.broker.connectedClientIds().includes('racer'))!;
    const rec = await owner.cluster.ownership.record('racer');
    assert.equal(rec?.rec.n, owner.cluster.nodeId);
    assert.equal(rec?.epoch, owner.cluster.ownership.ownedEpoch('racer'));
    assert.ok(takenOver.length > 0, 'losers were told 0x8E Session taken over');
    assert.ok(!takenOver.includes(winner));
    await Promise.all(clients.map((c) => c.endAsync(true)));
  });

  test('a persistent session offline while 1,000 QoS 1 messages are published resumes on another node with all of them', async (t) => {
    if (tc === null) return t.skip('no NATS');
    const [a, b, c] = tc.nodes.map((n) => n.broker.url);
    const opts = {
      clientId: 'roamer',
      clean: false,
      protocolVersion: 5 as const,
      properties: { sessionExpiryInterval: 600 },
    };
    const first = await connectTo(a!, opts);
    await first.subscribeAsync('fleet/+/telemetry', { qos: 1 });
    await first.endAsync();
    // The offline record (watermark) is written once the session is offline on node a.
    await eventually(
      async () => (await tc!.nodes[0]!.cluster.ownership.record('roamer'))?.rec.on === false,
      5000,
      'offline record',
    );
    const pub = await connectTo(c!, { clientId: 'pub-roamer' });
    for (let i = 0; i < 1000; i++)
      await pub.publishAsync(`fleet/d${i % 10}/telemetry`, String(i), { qos: 1 });
    const back = mqtt.connect(b!, { ...opts, reconnectPeriod: 0 });
    const got = new Set<string>();
    back.on('message', (_t, p) => got.add(p.toString()));
    const [connack] = (await once(ee(back), 'connect')) as [{ sessionPresent: boolean }];
    assert.equal(connack.sessionPresent, true, 'the session came along');
    await eventually(() => got.size === 1000, 20_000, `all 1,000 messages (have ${got.size})`);
    // Node a gave up its copy: the session lives on b only.
    await eventually(
      () =>
        tc!.nodes[0]!.broker.broker.sessionCount === 0 ||
        !tc!.nodes[0]!.broker.broker.connectedClientIds().includes('roamer'),
      5000,
      'a dropped its copy',
    );
    assert.equal(tc.nodes[0]!.cluster.ownership.ownedEpoch('roamer'), 0);
    // Live messages keep flowing to the new owner.
    const live = collect(back, 1);
    await pub.publishAsync('fleet/d1/telemetry', 'live', { qos: 1 });
    assert.equal((await live)[0]!.payload, 'live');
    await end(back, pub);
  });

  test('shared subscriptions across nodes: each message goes to one member cluster-wide', async (t) => {
    if (tc === null) return t.skip('no NATS');
    const urls = tc.nodes.map((n) => n.broker.url);
    const members = await Promise.all(
      urls.map((u, i) => connectTo(u, { clientId: `worker-${i}`, protocolVersion: 5 })),
    );
    for (const m of members) await m.subscribeAsync('$share/workers/jobs/+', { qos: 1 });
    const counts = members.map(() => 0);
    const seen: string[] = [];
    for (const [i, m] of members.entries()) {
      m.on('message', (_t, p) => {
        counts[i]!++;
        seen.push(p.toString());
      });
    }
    const pub = await connectTo(urls[0]!, { clientId: 'pub-jobs' });
    // The queue subscriptions are made on their own connection: wait until the servers have them.
    await Promise.all(tc.nodes.map((n) => n.cluster.settled()));
    for (let i = 0; i < 90; i++) await pub.publishAsync(`jobs/${i}`, String(i), { qos: 1 });
    await eventually(() => seen.length >= 90, 10_000, `90 jobs delivered (have ${seen.length})`);
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(seen.length, 90, 'no job delivered twice');
    assert.equal(new Set(seen).size, 90);
    assert.ok(counts.filter((n) => n > 0).length >= 2, `spread over members: ${counts}`);
    await end(pub, ...members);
  });
});
