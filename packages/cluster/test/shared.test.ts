/**
 * Issue 15: shared subscriptions across nodes. QoS 1/2 messages go through one durable JetStream
 * consumer per (group, filter) pulled by every member node and acked when the member completed
 * the flow: one member gets each message while all live, and a message a member could not
 * complete goes to another member. (The kill -9 of a member's broker process is in
 * packages/cli/test/cluster-shared.e2e.test.ts.)
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, before, describe, test } from 'node:test';
import { type Packet, RawClient } from '@breakwater/testkit';
import mqtt, { type MqttClient } from 'mqtt';
import {
  collect,
  connectTo,
  ee,
  end,
  eventually,
  type Node,
  startTestCluster,
  type TestCluster,
} from './helpers.js';

/** Counts every copy of every payload `client` receives. */
function tally(client: MqttClient, into: Map<string, number>): void {
  client.on('message', (_t, p) => {
    const k = p.toString();
    into.set(k, (into.get(k) ?? 0) + 1);
  });
}

/** Shared-subscription deliveries `node` handed back to JetStream for `reason`. */
async function handedBack(node: Node, reason: string): Promise<number> {
  const m = await node.cluster.metrics.sharedHandedBack.get();
  return m.values.find((v) => v.labels.reason === reason)?.value ?? 0;
}

async function jetstreamErrors(node: Node, op: string): Promise<number> {
  const m = await node.cluster.metrics.jetstreamErrors.get();
  return m.values.find((v) => v.labels.op === op)?.value ?? 0;
}

/** MQTT 5 options of a persistent session (Clean Start 0, 300 s expiry): a member that goes away. */
function persistentMember(clientId: string) {
  return {
    clientId,
    clean: false,
    protocolVersion: 5 as const,
    properties: { sessionExpiryInterval: 300 },
  };
}

/** The member subscribes to `filter` with QoS 1 on `url`, then disconnects; its session stays. */
async function subscribeAndLeave(
  url: string,
  opts: ReturnType<typeof persistentMember>,
  filter: string,
): Promise<void> {
  const client = await connectTo(url, opts);
  await client.subscribeAsync(filter, { qos: 1 });
  await client.endAsync();
}

/**
 * The member comes back on `url`, tallying what arrives from before its CONNACK (anything queued
 * in its session follows at once); asserts that the session resumed.
 */
async function resume(
  url: string,
  opts: ReturnType<typeof persistentMember>,
  where: string,
): Promise<{ client: MqttClient; got: Map<string, number> }> {
  const client = mqtt.connect(url, { ...opts, reconnectPeriod: 0 });
  const got = new Map<string, number>();
  tally(client, got);
  const [connack] = (await once(ee(client), 'connect')) as [{ sessionPresent: boolean }];
  assert.equal(connack.sessionPresent, true, `the session resumed on ${where}`);
  return { client, got };
}

function total(m: Map<string, number>): number {
  let n = 0;
  for (const v of m.values()) n += v;
  return n;
}

describe('cluster: shared subscriptions through group consumers', () => {
  let tc: TestCluster | null = null;

  before(async (t) => {
    tc = await startTestCluster(t as never);
  });
  after(async () => {
    await tc?.close();
  });

  test('QoS 1 published on c reaches exactly one member (on a or b) while both live', async (t) => {
    if (tc === null) return t.skip('no NATS');
    const [a, b, c] = tc.nodes.map((n) => n.broker.url);
    const ma = await connectTo(a!, { clientId: 'sh-a', protocolVersion: 5 });
    const mb = await connectTo(b!, { clientId: 'sh-b', protocolVersion: 5 });
    await ma.subscribeAsync('$share/g1/sh/#', { qos: 1 });
    await mb.subscribeAsync('$share/g1/sh/#', { qos: 1 });
    const gotA = new Map<string, number>();
    const gotB = new Map<string, number>();
    tally(ma, gotA);
    tally(mb, gotB);
    await Promise.all(tc.nodes.map((n) => n.cluster.settled()));
    const pub = await connectTo(c!, { clientId: 'sh-pub', protocolVersion: 5 });
    const n = 200;
    // `sh/#` matches its parent level too (the second consumer of the group: `…sh`).
    await pub.publishAsync('sh', 'parent', { qos: 1 });
    for (let i = 0; i < n; i++) await pub.publishAsync(`sh/${i % 7}`, `m${i}`, { qos: 1 });
    await pub.publishAsync('sh/0', 'q0', { qos: 0 });
    const want = n + 2;
    await eventually(
      () => total(gotA) + total(gotB) >= want,
      20_000,
      `${want} messages delivered (have ${total(gotA) + total(gotB)})`,
    );
    // Acks reach JetStream within the sweep; anything redelivered would show up by now.
    await eventually(
      () => tc!.nodes.every((node) => node.cluster.sharedUnsettled === 0),
      10_000,
      'every handoff settled',
    );
    await new Promise((r) => setTimeout(r, 500));
    const all = new Map<string, number>(gotA);
    for (const [k, v] of gotB) all.set(k, (all.get(k) ?? 0) + v);
    assert.equal(all.size, want, 'every message arrived');
    const dup = [...all].filter(([, v]) => v !== 1);
    assert.deepEqual(
      dup,
      [],
      'no message delivered twice (nor through both the queue group and the consumer)',
    );
    t.diagnostic(`member a got ${total(gotA)}, member b got ${total(gotB)}`);
    // JetStream pushes to a queue group of the member nodes: both take a share.
    assert.ok(total(gotA) > 0 && total(gotB) > 0, `spread over both members: ${total(gotA)}/${total(gotB)}`);
    await end(ma, mb, pub);
  });

  test('a member that ends its session without acking: its messages go to the other member', async (t) => {
    if (tc === null) return t.skip('no NATS');
    const [a, b, c] = tc.nodes.map((n) => n.broker.url);
    // The member on b takes messages and never acknowledges them (a raw client: mqtt.js acks
    // every message it emits); clean session, so they end with its connection.
    const silent = await RawClient.connect(Number(new URL(b!).port), { protocolVersion: 5 });
    await silent.connect({ clientId: 'sh2-b', clean: true });
    silent.send({
      cmd: 'subscribe',
      messageId: 1,
      subscriptions: [{ topic: '$share/g2/jobs2/+', qos: 1 }],
    } as Packet);
    await silent.next('suback');
    const silentGot = () => silent.received.filter((p) => p.cmd === 'publish').length;
    await Promise.all(tc.nodes.map((n) => n.cluster.settled()));
    const pub = await connectTo(c!, { clientId: 'sh2-pub', protocolVersion: 5 });
    const n = 30;
    for (let i = 0; i < n; i++) await pub.publishAsync(`jobs2/${i}`, `j${i}`, { qos: 1 });
    await eventually(() => silentGot() === n, 10_000, `the silent member got ${n} (${silentGot()})`);
    // Held while its session lives: not redelivered (the node keeps them in progress).
    const worker = await connectTo(a!, { clientId: 'sh2-a', protocolVersion: 5 });
    const gotWorker = new Map<string, number>();
    tally(worker, gotWorker);
    await worker.subscribeAsync('$share/g2/jobs2/+', { qos: 1 });
    await tc.nodes[0]!.cluster.settled();
    // Past the consumer's ack wait (5 s): the node keeps what its member holds in progress.
    await new Promise((r) => setTimeout(r, 6500));
    assert.equal(gotWorker.size, 0, 'held by the silent member: not redelivered while it lives');
    silent.socket.destroy(); // the clean session ends with its connection: its messages are nak'ed
    await eventually(
      () => gotWorker.size === n,
      15_000,
      `every message redelivered to the other member (have ${gotWorker.size})`,
    );
    for (let i = 0; i < n; i++) assert.ok(gotWorker.has(`j${i}`), `j${i}`);
    await end(worker, pub);
  });

  test('a persistent member whose client is away takes nothing: the member online gets the whole share', async (t) => {
    if (tc === null) return t.skip('no NATS');
    const [a, b, c] = tc.nodes.map((n) => n.broker.url);
    const awayOpts = persistentMember('sh4-b');
    await subscribeAndLeave(b!, awayOpts, '$share/g4/off/+');
    const worker = await connectTo(a!, { clientId: 'sh4-a', protocolVersion: 5 });
    const gotWorker = new Map<string, number>();
    tally(worker, gotWorker);
    await worker.subscribeAsync('$share/g4/off/+', { qos: 1 });
    await Promise.all(tc.nodes.map((n) => n.cluster.settled()));
    const pub = await connectTo(c!, { clientId: 'sh4-pub', protocolVersion: 5 });
    const n = 40;
    for (let i = 0; i < n; i++) await pub.publishAsync(`off/${i}`, `o${i}`, { qos: 1 });
    // What JetStream offers node b (no member online there) goes back, and on to the worker.
    await eventually(() => gotWorker.size === n, 15_000, `the worker got all ${n} (${gotWorker.size})`);
    await eventually(
      () => tc!.nodes.every((node) => node.cluster.sharedUnsettled === 0),
      10_000,
      'every handoff settled',
    );
    const { client: back, got: gotBack } = await resume(b!, awayOpts, 'b, where it was held');
    await pub.publishAsync('off/last', 'last', { qos: 1 }); // after it in the group's order
    await eventually(
      () => gotWorker.has('last') || gotBack.has('last'),
      10_000,
      'the last message delivered',
    );
    for (let i = 0; i < n; i++) assert.ok(!gotBack.has(`o${i}`), `o${i} not queued for the away member`);
    assert.deepEqual(
      [...gotWorker].filter(([, v]) => v !== 1),
      [],
      'no duplicates',
    );
    await end(worker, back, pub);
  });

  test('the only member away: what is published meanwhile reaches it when it resumes on another node', async (t) => {
    if (tc === null) return t.skip('no NATS');
    const [a, b, c] = tc.nodes.map((n) => n.broker.url);
    const opts = persistentMember('sh9');
    await subscribeAndLeave(b!, opts, '$share/g9/away/+');
    await Promise.all(tc.nodes.map((n) => n.cluster.settled()));
    const pub = await connectTo(c!, { clientId: 'sh9-pub', protocolVersion: 5 });
    const before = await handedBack(tc.nodes[1]!, 'none_online');
    const n = 20;
    for (let i = 0; i < n; i++) await pub.publishAsync(`away/${i}`, `w${i}`, { qos: 1 });
    // Node b, the only one listening to the group, was offered them and handed back what it got
    // (no member online there; it then stops listening for a while) before the resume.
    await eventually(
      async () => (await handedBack(tc!.nodes[1]!, 'none_online')) > before,
      10_000,
      'node b handed the messages back',
    );
    const { client: back, got } = await resume(a!, opts, 'a');
    await eventually(() => got.size === n, 15_000, `all ${n} delivered on a (${got.size})`);
    await end(back, pub);
  });

  test('the only member away and its node gone: what is published meanwhile reaches it on another node', async (t) => {
    if (tc === null) return t.skip('no NATS');
    const d = await tc.addNode(1);
    const opts = persistentMember('sh11');
    try {
      await subscribeAndLeave(d.broker.url, opts, '$share/g11/gone2/+');
      await d.cluster.settled();
      const pub = await connectTo(tc.nodes[2]!.broker.url, { clientId: 'sh11-pub', protocolVersion: 5 });
      const before = await handedBack(d, 'none_online');
      const n = 20;
      for (let i = 0; i < n; i++) await pub.publishAsync(`gone2/${i}`, `z${i}`, { qos: 1 });
      await eventually(
        async () => (await handedBack(d, 'none_online')) > before,
        10_000,
        'node d was offered them',
      );
      await tc.stopNode(d); // with its memory storage: what it had queued would be gone
      const { client: back, got } = await resume(tc.nodes[0]!.broker.url, opts, 'a');
      await eventually(() => got.size === n, 15_000, `all ${n} delivered on a (${got.size})`);
      await end(back, pub);
    } finally {
      if (tc.nodes.includes(d)) await tc.stopNode(d);
    }
  });

  test('a member whose client goes away: its unacknowledged QoS 1 messages go to the other member', async (t) => {
    if (tc === null) return t.skip('no NATS');
    const [a, b, c] = tc.nodes.map((n) => n.broker.url);
    // Persistent, never acknowledges (raw client), then its connection drops: the session stays.
    const silent = await RawClient.connect(Number(new URL(b!).port), { protocolVersion: 5 });
    await silent.connect({ clientId: 'sh10-b', clean: false, properties: { sessionExpiryInterval: 300 } });
    silent.send({
      cmd: 'subscribe',
      messageId: 1,
      subscriptions: [{ topic: '$share/g10/held/+', qos: 1 }],
    } as Packet);
    await silent.next('suback');
    await Promise.all(tc.nodes.map((n) => n.cluster.settled()));
    const pub = await connectTo(c!, { clientId: 'sh10-pub', protocolVersion: 5 });
    const n = 10;
    for (let i = 0; i < n; i++) await pub.publishAsync(`held/${i}`, `h${i}`, { qos: 1 });
    const silentGot = () => silent.received.filter((p) => p.cmd === 'publish').length;
    await eventually(() => silentGot() === n, 10_000, `the silent member got ${n} (${silentGot()})`);
    const worker = await connectTo(a!, { clientId: 'sh10-a', protocolVersion: 5 });
    const gotWorker = new Map<string, number>();
    tally(worker, gotWorker);
    await worker.subscribeAsync('$share/g10/held/+', { qos: 1 });
    await tc.nodes[0]!.cluster.settled();
    const before = await handedBack(tc.nodes[1]!, 'taken_back');
    silent.socket.destroy();
    await eventually(() => gotWorker.size === n, 15_000, `the worker got all ${n} (${gotWorker.size})`);
    assert.equal(await handedBack(tc.nodes[1]!, 'taken_back'), before + n, 'taken back from the session');
    await end(worker, pub);
  });

  test('the group consumer is a shared durable that JetStream removes when no node listens', async (t) => {
    if (tc === null) return t.skip('no NATS');
    const jsm = tc.nodes[0]!.cluster.jsm;
    const names: string[] = [];
    for await (const ci of jsm.consumers.list(tc.nodes[0]!.cluster.streamName)) {
      if (ci.name.startsWith('bws_')) {
        names.push(ci.name);
        assert.equal(ci.config.ack_policy, 'explicit');
        assert.ok((ci.config.inactive_threshold ?? 0) > 0, 'inactive_threshold set');
        assert.ok((ci.config.max_ack_pending ?? 0) > 0, 'max_ack_pending bounded');
      }
    }
    // g1: `sh` and `sh.>`; g2: `jobs2.*`; g4: `off.*`; g9: `away.*`; g10: `held.*`; g11:
    // `gone2.*`. One each, whatever the number of member nodes.
    assert.equal(names.length, 7, `group consumers: ${names}`);
  });

  test("QoS 1 published on another node right after the first member's SUBACK reaches the group (20 groups)", async (t) => {
    if (tc === null) return t.skip('no NATS');
    const [a, , c] = tc.nodes.map((n) => n.broker.url);
    const pub = await connectTo(c!, { clientId: 'sh5-pub', protocolVersion: 5 });
    for (let i = 0; i < 20; i++) {
      // A new group each time: this member is its first, anywhere in the cluster.
      const member = await connectTo(a!, { clientId: `sh5-m${i}`, protocolVersion: 5 });
      const granted = await member.subscribeAsync(`$share/g5x${i}/first/${i}`, { qos: 1 });
      assert.equal(granted[0]?.qos, 1, 'granted QoS 1');
      const got = collect(member, 1, 10_000);
      await pub.publishAsync(`first/${i}`, `f${i}`, { qos: 1 });
      const [m] = await got;
      assert.equal(m?.payload, `f${i}`, `iteration ${i}`);
      await end(member);
    }
    await end(pub);
  });

  test('the SUBACK that waits for a new group consumer is not overtaken by the next SUBACK', async (t) => {
    if (tc === null) return t.skip('no NATS');
    const b = tc.nodes[1]!.broker.url;
    const raw = await RawClient.connect(Number(new URL(b).port), { protocolVersion: 5 });
    await raw.connect({ clientId: 'sh6-b', clean: true });
    // Pipelined: the first waits for its group consumer, the second needs nothing.
    raw.send({
      cmd: 'subscribe',
      messageId: 1,
      subscriptions: [{ topic: '$share/g6/order/+', qos: 1 }],
    } as Packet);
    raw.send({ cmd: 'subscribe', messageId: 2, subscriptions: [{ topic: 'order/plain', qos: 1 }] } as Packet);
    const first = (await raw.next('suback')) as Packet & { messageId: number; granted: number[] };
    const second = (await raw.next('suback')) as Packet & { messageId: number; granted: number[] };
    assert.deepEqual([first.messageId, second.messageId], [1, 2], 'SUBACKs in SUBSCRIBE order');
    assert.deepEqual(first.granted, [1]);
    assert.deepEqual(second.granted, [1]);
    await raw.end();
  });

  test('the cluster.shared* options: the consumer is created with them, and a node holds at most sharedInFlightPerNode', async (t) => {
    if (tc === null) return t.skip('no NATS');
    const d = await tc.addNode(0, {
      sharedAckWaitMs: 7000,
      sharedMaxAckPending: 300,
      sharedInactiveMs: 30_000,
      sharedInFlightPerNode: 2,
    });
    try {
      // The member on d never acknowledges: what d hands it stays unsettled there.
      const silent = await RawClient.connect(Number(new URL(d.broker.url).port), { protocolVersion: 5 });
      await silent.connect({ clientId: 'sh8-d', clean: true });
      silent.send({
        cmd: 'subscribe',
        messageId: 1,
        subscriptions: [{ topic: '$share/g8/cap/+', qos: 1 }],
      } as Packet);
      await silent.next('suback');
      const infos = [];
      for await (const ci of d.cluster.jsm.consumers.list(d.cluster.streamName)) {
        if (ci.name.startsWith('bws_') && ci.config.filter_subject?.includes('.cap.')) infos.push(ci);
      }
      assert.equal(infos.length, 1, 'the group consumer, created by d');
      assert.equal(infos[0]!.config.ack_wait, 7000 * 1e6);
      assert.equal(infos[0]!.config.max_ack_pending, 300);
      assert.equal(infos[0]!.config.inactive_threshold, 30_000 * 1e6);
      const worker = await connectTo(tc.nodes[0]!.broker.url, { clientId: 'sh8-a', protocolVersion: 5 });
      const gotWorker = new Map<string, number>();
      tally(worker, gotWorker);
      await worker.subscribeAsync('$share/g8/cap/+', { qos: 1 });
      await Promise.all(tc.nodes.map((n) => n.cluster.settled()));
      const pub = await connectTo(tc.nodes[2]!.broker.url, { clientId: 'sh8-pub', protocolVersion: 5 });
      const n = 20;
      for (let i = 0; i < n; i++) await pub.publishAsync(`cap/${i}`, `c${i}`, { qos: 1 });
      const silentGot = () => silent.received.filter((p) => p.cmd === 'publish').length;
      await eventually(
        () => silentGot() + gotWorker.size >= n,
        15_000,
        `${n} delivered (silent ${silentGot()}, worker ${gotWorker.size})`,
      );
      assert.ok(silentGot() <= 2, `d held at most 2 (its member got ${silentGot()})`);
      silent.socket.destroy(); // its clean session ends: what it held goes to the worker
      await eventually(() => gotWorker.size === n, 15_000, `the worker got all ${n} (${gotWorker.size})`);
      await end(worker, pub);
    } finally {
      await tc.stopNode(d);
    }
  });

  // Last: it deletes the message stream.
  test('a group consumer that cannot be made: SUBACK 0x80, the subscription not installed, the next SUBACK after it', async (t) => {
    if (tc === null) return t.skip('no NATS');
    const node = tc.nodes[1]!;
    await node.cluster.jsm.streams.delete(node.cluster.streamName);
    const subscriptions = async () => (await node.broker.metrics.subscriptions.get()).values[0]?.value ?? 0;
    const before = await subscriptions();
    const failuresBefore = await jetstreamErrors(node, 'shared_subscribe');
    const raw = await RawClient.connect(Number(new URL(node.broker.url).port), { protocolVersion: 5 });
    await raw.connect({ clientId: 'sh7-b', clean: true });
    raw.send({
      cmd: 'subscribe',
      messageId: 1,
      subscriptions: [
        { topic: '$share/g7/gone/+', qos: 1 },
        { topic: 'gone/#/bad', qos: 1 },
        { topic: '$share/g7b/gone/+', qos: 2 },
      ],
    } as Packet);
    raw.send({ cmd: 'subscribe', messageId: 2, subscriptions: [{ topic: 'gone/plain', qos: 1 }] } as Packet);
    const first = (await raw.next('suback', 15_000)) as Packet & { messageId: number; granted: number[] };
    const second = (await raw.next('suback')) as Packet & { messageId: number; granted: number[] };
    assert.deepEqual([first.messageId, second.messageId], [1, 2], 'SUBACKs in SUBSCRIBE order');
    assert.deepEqual(first.granted, [0x80, 0x8f, 0x80], 'Unspecified error; the invalid filter 0x8F');
    assert.deepEqual(second.granted, [1]);
    assert.equal(await subscriptions(), before + 1, 'only the plain subscription was installed');
    assert.equal(
      await jetstreamErrors(node, 'shared_subscribe'),
      failuresBefore + 2,
      'counted, once per group',
    );
    await raw.end();
  });
});
