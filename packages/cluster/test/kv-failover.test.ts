/**
 * Issue 15, the KV watches across a NATS server crash: a node whose nats-server is killed (-9)
 * keeps hearing the other nodes' heartbeats (liveness: redirects name a live node), receives a
 * retained message set on another node, and gives up a client id claimed on another node (0x8E).
 * Before the watches moved onto supervised readers (kv-watcher.ts), such a node could stop
 * hearing heartbeats without an error.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import mqtt, { type MqttClient } from 'mqtt';
import { connectTo, eventually, type Node, startTestCluster } from './helpers.js';

/** Connects, retrying while the node cannot claim the client id yet (JetStream leaders moving). */
async function connectRetrying(url: string, opts: mqtt.IClientOptions): Promise<MqttClient> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      return await connectTo(url, opts);
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}

/** A retained QoS 1 publish, resent on a new connection until acknowledged. */
async function publishRetained(url: string, topic: string, payload: string): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const c = mqtt.connect(url, { clientId: 'kvf-pub', reconnectPeriod: 0, connectTimeout: 5000 });
    try {
      await new Promise<void>((resolve, reject) => {
        c.once('connect', () => resolve());
        c.once('error', reject);
        c.once('close', () => reject(new Error('closed before CONNACK')));
      });
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('no PUBACK')), 10_000);
        c.once('close', () => reject(new Error('connection closed')));
        c.publish(topic, payload, { qos: 1, retain: true }, (err) => {
          clearTimeout(timer);
          if (err) reject(err);
          else resolve();
        });
      });
      await c.endAsync();
      return;
    } catch (err) {
      c.end(true);
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}

test("a node whose nats-server is killed keeps following the other nodes' heartbeats, retained messages and takeovers", async (t) => {
  const tc = await startTestCluster(t, 3);
  if (tc === null) return t.skip('no NATS');
  const KILLED = 0;
  const killedName = tc.nats.servers[KILLED]!.name;
  const [b, c] = [tc.nodes[1]!, tc.nodes[2]!];
  const leaderOf = async (n: Node, bucket: string, consumer: string | null) => {
    if (consumer === null) return null;
    const info = await n.cluster.jsm.consumers.info(`KV_bw_${bucket}`, consumer).catch(() => null);
    return info?.cluster?.leader ?? null;
  };
  // Node a on server 0, with its heartbeat watch's consumer there too: the case where nats.js's
  // watch could go silent. Placement is the server's random pick: a few tries; without that luck
  // the test still covers a node whose connection moved.
  let a = tc.nodes[0]!;
  for (
    let i = 0;
    i < 12 && (await leaderOf(a, 'nodes', a.cluster.liveness.watchConsumer)) !== killedName;
    i++
  ) {
    await tc.stopNode(a);
    a = await tc.addNode(KILLED);
  }
  for (const n of tc.nodes) n.cluster.setAdvertise(n.broker.url);
  assert.equal(a.cluster.nc.info?.server_name, killedName, 'node a is on the server that dies');
  const killed = KILLED;
  let owned: MqttClient | null = null;
  let taker: MqttClient | null = null;
  try {
    await eventually(
      () => a.cluster.liveness.aliveNodes().length === 3 && a.cluster.otherNodeAddress() !== null,
      10_000,
      'node a sees the others',
    );
    owned = await connectTo(a.broker.url, { clientId: 'kvf-owned', protocolVersion: 5 });
    const disconnects: number[] = [];
    owned.on('disconnect', (p) => disconnects.push(p.reasonCode ?? 0));

    const where = await Promise.all([
      leaderOf(a, 'nodes', a.cluster.liveness.watchConsumer),
      leaderOf(a, 'retained', a.cluster.retained.watchConsumer),
      leaderOf(a, 'sessions', a.cluster.ownership.watchConsumer),
    ]);
    t.diagnostic(
      `node a's watches (nodes, retained, sessions) on ${where.join(', ')}; killing ${killedName}`,
    );
    await tc.nats.kill(killed);
    const killedAt = Date.now();

    // Heartbeats written after the kill reach node a through its watch (not only the direct reads
    // made before firing wills).
    await eventually(
      () =>
        a.cluster.liveness.heardAt(b.cluster.nodeId) > killedAt + 1000 &&
        a.cluster.liveness.heardAt(c.cluster.nodeId) > killedAt + 1000,
      30_000,
      "node a hears b's and c's heartbeats after the kill",
    );
    assert.equal(a.cluster.liveness.aliveNodes().length, 3);
    const lost = await a.cluster.metrics.natsDisconnects.get();
    assert.ok((lost.values[0]?.value ?? 0) >= 1, 'node a counted losing its NATS connection');
    const other = a.cluster.otherNodeAddress();
    assert.ok(other === b.broker.url || other === c.broker.url, `a live node to redirect to: ${other}`);

    // A retained message set on node b after the kill is in node a's index.
    await publishRetained(b.broker.url, 'kvf/retained', 'after-kill');
    await eventually(
      () => a.broker.broker.retained.get('kvf/retained')?.payload.toString() === 'after-kill',
      30_000,
      'the retained message reached node a',
    );

    // The client id claimed on node b: node a hands its connection 0x8E and lets go.
    taker = await connectRetrying(b.broker.url, { clientId: 'kvf-owned', protocolVersion: 5 });
    await eventually(
      () => !a.broker.broker.connectedClientIds().includes('kvf-owned'),
      30_000,
      'node a gave up the client id',
    );
    await eventually(() => disconnects.length > 0, 10_000, 'the old connection was told');
    assert.deepEqual(disconnects, [0x8e], 'the old connection was told: session taken over');
    assert.equal(a.cluster.ownership.ownedEpoch('kvf-owned'), 0);
    assert.ok(b.broker.broker.connectedClientIds().includes('kvf-owned'));
  } finally {
    await Promise.all([owned, taker].map((x) => x?.endAsync(true)));
    await tc.nats.start(killed);
    await tc.close();
  }
});
