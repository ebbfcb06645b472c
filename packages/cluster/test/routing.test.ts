/**
 * Issue 15: three broker nodes over three routed nats-servers act as one broker — live routing
 * (QoS 0/1, wildcards, `$` topics), retained messages, shared subscriptions and ownership.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { collect, connectTo, end, eventually, startTestCluster, type TestCluster } from './helpers.js';

describe('cluster: one logical broker over NATS', () => {
  let tc: TestCluster | null = null;

  before(async (t) => {
    tc = await startTestCluster(t as never);
  });
  after(async () => {
    await tc?.close();
  });

  test('QoS 0 and QoS 1 cross nodes, wildcard filters match, # does not match $ topics', async (t) => {
    if (tc === null) return t.skip('no NATS');
    const [a, b, c] = tc.nodes.map((n) => n.broker.url);
    const sub = await connectTo(b!, { clientId: 'sub-routing' });
    await sub.subscribeAsync({ 'r/+/temp': { qos: 1 }, 'r/x/#': { qos: 1 }, '#': { qos: 0 } });
    const sub2 = await connectTo(c!, { clientId: 'sub2-routing' });
    await sub2.subscribeAsync('r/exact/topic', { qos: 1 });
    const pub = await connectTo(a!, { clientId: 'pub-routing' });
    const got = collect(sub, 4);
    const got2 = collect(sub2, 1);
    await pub.publishAsync('r/x/temp', 'one', { qos: 1 }); // r/+/temp, r/x/# and # (3 filters)
    await pub.publishAsync('r/x', 'two', { qos: 0 }); // r/x/# matches its parent level, and #
    await pub.publishAsync('$SYS/x', 'never', { qos: 0 }); // # must not match a $ topic
    await pub.publishAsync('r/exact/topic', 'three', { qos: 1 }); // # on b, exact on c
    const msgs = await got;
    const payloads = msgs.map((m) => m.payload).sort();
    // QoS 1 comes through the durable feed and the node's own tree: one copy per session, at the
    // highest QoS of its matching filters. QoS 0 comes on each filter's NATS subscription: one
    // copy per matching filter (MQTT 5.0 §4.7.2 allows a copy per overlapping subscription).
    // The $SYS message published before 'three' never arrived.
    assert.deepEqual(payloads, ['one', 'three', 'two', 'two']);
    assert.deepEqual(
      (await got2).map((m) => m.payload),
      ['three'],
    );
    await end(sub, sub2, pub);
  });

  test('levels NATS cannot carry (dots, spaces, empty levels, UTF-8) round-trip', async (t) => {
    if (tc === null) return t.skip('no NATS');
    const [a, b] = tc.nodes.map((n) => n.broker.url);
    const sub = await connectTo(b!, { clientId: 'sub-odd' });
    await sub.subscribeAsync('odd/+/+/#', { qos: 1 });
    const pub = await connectTo(a!, { clientId: 'pub-odd' });
    const topics = ['odd/a.b/c d/ü', 'odd//*/>', 'odd/=x/~/'];
    const got = collect(sub, topics.length);
    for (const topic of topics) await pub.publishAsync(topic, topic, { qos: 1 });
    const msgs = await got;
    assert.deepEqual(msgs.map((m) => m.topic).sort(), [...topics].sort());
    for (const m of msgs) assert.equal(m.payload, m.topic);
    await end(sub, pub);
  });

  test('retained set and delete on one node are visible on the others', async (t) => {
    if (tc === null) return t.skip('no NATS');
    const [a, b, c] = tc.nodes.map((n) => n.broker.url);
    const pub = await connectTo(a!, { clientId: 'pub-retained' });
    await pub.publishAsync('ret/dev1/state', 'on', { qos: 1, retain: true });
    // PUBACK came after the KV write: another node's index has it once its watch delivers it.
    await eventually(() => tc!.nodes[1]!.broker.broker.retained.size > 0, 5000, 'retained replicated');
    const sub = await connectTo(b!, { clientId: 'sub-retained' });
    const got = collect(sub, 1);
    await sub.subscribeAsync('ret/+/state', { qos: 1 });
    const [m] = await got;
    assert.equal(m!.payload, 'on');
    assert.equal(m!.retain, true);
    // Delete (empty payload) on a third node.
    const del = await connectTo(c!, { clientId: 'del-retained' });
    await del.publishAsync('ret/dev1/state', '', { qos: 1, retain: true });
    await eventually(
      () => tc!.nodes.every((n) => n.broker.broker.retained.size === 0),
      5000,
      'retained deleted everywhere',
    );
    const late = await connectTo(a!, { clientId: 'late-retained' });
    let received = 0;
    late.on('message', () => received++);
    await late.subscribeAsync('ret/#', { qos: 1 });
    // A marker published after the SUBSCRIBE arrives after any retained message would have.
    const marker = collect(late, 1);
    await pub.publishAsync('ret/marker', 'm', { qos: 1 });
    await marker;
    assert.equal(received, 1, 'only the marker: the deleted retained message is not sent');
    await end(pub, sub, del, late);
  });

  test('QoS 0 over the shard connections: every topic arrives once, never echoed to its own node', async (t) => {
    if (tc === null) return t.skip('no NATS');
    const [a, b] = tc.nodes.map((n) => n.broker.url);
    const topics = Array.from({ length: 24 }, (_, i) => `echo/${i}`);
    const local = await connectTo(a!, { clientId: 'sub-echo-a' });
    const remote = await connectTo(b!, { clientId: 'sub-echo-b' });
    await local.subscribeAsync('echo/#', { qos: 0 });
    await remote.subscribeAsync('echo/#', { qos: 0 });
    await Promise.all(tc.nodes.map((n) => n.cluster.settled()));
    const localGot: string[] = [];
    local.on('message', (topic, payload) => localGot.push(`${topic} ${payload}`));
    const atB = collect(remote, topics.length);
    const pubA = await connectTo(a!, { clientId: 'pub-echo-a' });
    for (const topic of topics) pubA.publish(topic, 'one', { qos: 0 });
    assert.deepEqual((await atB).map((m) => m.topic).sort(), [...topics].sort());
    // Node b publishes on every topic after node a's messages reached it: an echo of a's own
    // messages (same shard, same connection) would reach node a before these.
    const pubB = await connectTo(b!, { clientId: 'pub-echo-b' });
    for (const topic of topics) pubB.publish(topic, 'two', { qos: 0 });
    await eventually(
      () => localGot.filter((m) => m.endsWith(' two')).length === topics.length,
      5000,
      'b reached a',
    );
    assert.equal(localGot.filter((m) => m.endsWith(' one')).length, topics.length, 'each once, no echo');
    await end(local, remote, pubA, pubB);
  });

  test('QoS 0 from another node beyond the turn budget is dropped and counted by message', async (t) => {
    if (tc === null) return t.skip('no NATS');
    const [a, b] = tc.nodes.map((n) => n.broker.url);
    const nodeB = tc.nodes[1]!.broker;
    const dropped = async () => {
      const m = await nodeB.metrics.registry.getSingleMetric('breakwater_messages_dropped_total')?.get();
      return m?.values.find((v) => v.labels.reason === 'cluster_overload')?.value ?? 0;
    };
    const before = await dropped();
    const sub = await connectTo(b!, { clientId: 'sub-overload' });
    await sub.subscribeAsync('over/+', { qos: 0 });
    await tc.nodes[1]!.cluster.settled();
    let received = 0;
    sub.on('message', () => received++);
    // Node b's budget for remote QoS 0 is spent (as in a turn that lasted too long).
    const broker = nodeB.broker as unknown as { admitRemote(): boolean };
    broker.admitRemote = () => false;
    try {
      const pub = await connectTo(a!, { clientId: 'pub-overload' });
      for (let i = 0; i < 25; i++) pub.publish(`over/${i % 2}`, `m${i}`, { qos: 0 });
      await eventually(async () => (await dropped()) - before === 25, 5000, '25 drops counted');
      assert.equal(received, 0);
      delete (broker as { admitRemote?: unknown }).admitRemote; // the prototype's again
      const got = collect(sub, 1);
      pub.publish('over/0', 'after', { qos: 0 });
      assert.equal((await got)[0]!.payload, 'after');
      await end(pub);
    } finally {
      delete (broker as { admitRemote?: unknown }).admitRemote;
    }
    await end(sub);
  });
});
