/**
 * Issue 15, end to end: three `breakwater up --cluster` processes on three routed nats-servers
 * (JetStream, R3; the fixture is cluster-e2e.ts). Faults, in order, on one cluster:
 * 1. broker↔NATS cut by the fault proxy: readiness false, MQTT 5 clients redirected (0x9C +
 *    Server Reference), no double owner after healing;
 * 2. `breakwater node drain`-style drain over the admin API: readiness false first, 0x9C;
 * 3. kill -9 of a broker under QoS 1 load: zero acknowledged messages lost (the persistent
 *    subscriber resumes on another node), each will published exactly once.
 * The kill -9 of a nats-server is in cluster-nats-kill.e2e.test.ts, on a cluster of its own.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, before, describe, test } from 'node:test';
import type { FaultProxy } from '@breakwater/gameday';
import { type NatsClusterHandle, requireNatsServer } from '@breakwater/testkit';
import mqtt, { type MqttClient } from 'mqtt';
import {
  connect,
  type E2eCluster,
  ee,
  eventually,
  metric,
  type NodeProc,
  publishLoop,
  readyz,
  startE2eCluster,
} from './cluster-e2e.js';

describe('breakwater up --cluster: three processes survive node and NATS faults', () => {
  let cluster: E2eCluster | null = null;
  let nats: NatsClusterHandle | null = null;
  let proxy: FaultProxy | null = null;
  let nodes: NodeProc[] = [];
  let clients: MqttClient[] = [];

  before(async (t) => {
    if (!requireNatsServer(t as never)) return;
    cluster = await startE2eCluster();
    ({ nats, proxy, nodes, clients } = cluster);
  });

  after(async () => {
    await cluster?.stop();
  });

  test('broker↔NATS cut: readiness false, clients redirected, one owner after healing', async (t) => {
    if (nats === null) return t.skip('no nats-server');
    const [a, b, c] = nodes;
    assert.equal(await readyz(c!), 200);
    const device = await connect(c!.mqttUrl, { clientId: 'e2e-roamer', protocolVersion: 5 });
    clients.push(device);
    const disconnect = once(ee(device), 'disconnect') as Promise<
      [{ reasonCode: number; properties?: { serverReference?: string } }]
    >;
    proxy!.cut();
    await eventually(async () => (await readyz(c!)) === 503, 10_000, 'c not ready');
    const [packet] = await disconnect;
    assert.equal(packet.reasonCode, 0x9c, 'Use another server');
    const ref = packet.properties?.serverReference;
    assert.ok(ref !== undefined, 'with a Server Reference');
    const others = [a!, b!].map((n) => new URL(n.mqttUrl).host);
    assert.ok(others.includes(ref), `the reference ${ref} names a live node (${others})`);
    // The device follows the reference.
    const moved = await connect(`mqtt://${ref}`, { clientId: 'e2e-roamer', protocolVersion: 5 });
    clients.push(moved);
    let kicked = false;
    moved.on('disconnect', () => {
      kicked = true;
    });
    proxy!.restore();
    await eventually(async () => (await readyz(c!)) === 200, 20_000, 'c ready again');
    assert.equal(await metric(c!, 'breakwater_connections'), 0, 'c holds no connection');
    assert.equal(moved.connected, true);
    assert.equal(kicked, false, 'the moved device was not taken over by a stale owner');
    await moved.endAsync();
  });

  test('node drain: readiness false first, then 0x9C with a Server Reference', async (t) => {
    if (nats === null) return t.skip('no nats-server');
    // Drain c (it is healthy again): two v5 clients and one v3.1.1 client.
    const c = nodes[2]!;
    const v5 = await Promise.all(
      [0, 1].map((i) => connect(c.mqttUrl, { clientId: `e2e-drain-${i}`, protocolVersion: 5 })),
    );
    const v3 = await connect(c.mqttUrl, { clientId: 'e2e-drain-v3', protocolVersion: 4 });
    clients.push(...v5, v3);
    const reasons = v5.map(
      (cl) =>
        once(ee(cl), 'disconnect') as Promise<
          [{ reasonCode: number; properties?: { serverReference?: string } }]
        >,
    );
    const closed = once(ee(v3), 'close');
    const res = await fetch(`${c.httpUrl}/api/v1/node/drain`, {
      method: 'POST',
      headers: { authorization: `Bearer ${c.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ ratePerSec: 10 }),
    });
    assert.equal(res.status, 202, await res.text());
    assert.equal(await readyz(c), 503, 'readiness is false as soon as the drain is accepted');
    for (const r of reasons) {
      const [p] = await r;
      assert.equal(p.reasonCode, 0x9c);
      assert.ok(p.properties?.serverReference);
    }
    await closed;
    const status = (await (
      await fetch(`${c.httpUrl}/api/v1/node/drain`, { headers: { authorization: `Bearer ${c.token}` } })
    ).json()) as { evicted: number; remaining: number };
    assert.equal(status.remaining, 0);
    assert.ok(status.evicted >= 3);
  });

  test('kill -9 of a broker under QoS 1 load: zero acknowledged messages lost, each will once', async (t) => {
    if (nats === null) return t.skip('no nats-server');
    const [a, b] = nodes;
    const watcher = await connect(a!.mqttUrl, { clientId: 'e2e-will-watcher' });
    clients.push(watcher);
    await watcher.subscribeAsync('e2e/wills/#', { qos: 1 });
    const wills: string[] = [];
    watcher.on('message', (topic) => wills.push(topic));
    const devices = await Promise.all(
      [0, 1, 2].map((i) =>
        connect(b!.mqttUrl, {
          clientId: `e2e-will-${i}`,
          will: { topic: `e2e/wills/${i}`, payload: Buffer.from('x'), qos: 1, retain: false },
        }),
      ),
    );
    clients.push(...devices);
    // The persistent subscriber and the publisher both live on b, the node that dies.
    const subOpts = {
      clientId: 'e2e-sub-2',
      clean: false,
      protocolVersion: 5 as const,
      properties: { sessionExpiryInterval: 300 },
    };
    const sub = await connect(b!.mqttUrl, subOpts);
    clients.push(sub);
    await sub.subscribeAsync('load/2', { qos: 1 });
    const got = new Set<string>();
    sub.on('message', (_t, p) => got.add(p.toString()));
    // Publishes until b dies; its last unacknowledged message is not counted.
    const loop = publishLoop(b!.mqttUrl, 'e2e-pub-2', 'load/2', 'm');
    await eventually(() => loop.acked.length >= 200, 20_000, 'load running');
    b!.cli.child.kill('SIGKILL');
    await b!.cli.exited;
    await loop.stop();
    const acked = [...loop.acked];
    assert.ok(acked.length >= 200);
    // The subscriber comes back on another node and gets everything that was acknowledged.
    const back = mqtt.connect(a!.mqttUrl, { ...subOpts, reconnectPeriod: 0 });
    clients.push(back);
    back.on('message', (_t, p) => got.add(p.toString()));
    const [connack] = (await once(ee(back), 'connect')) as [{ sessionPresent: boolean }];
    assert.equal(connack.sessionPresent, true);
    await eventually(() => acked.every((p) => got.has(p)), 20_000, 'every acknowledged message delivered');
    // Each will of b's three devices: once, whichever survivor fired it.
    await eventually(() => wills.length >= 3, 15_000, `3 wills (have ${wills.length})`);
    await new Promise((r) => setTimeout(r, 1500));
    assert.deepEqual([...wills].sort(), ['e2e/wills/0', 'e2e/wills/1', 'e2e/wills/2']);
  });
});
