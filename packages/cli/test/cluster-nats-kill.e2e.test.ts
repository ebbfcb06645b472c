/**
 * Issue 15, end to end: kill -9 of a nats-server under QoS 1 load, on its own cluster (three
 * routed nats-servers with JetStream R3, three `breakwater up --cluster` processes; the fixture is
 * cluster-e2e.ts): a stall, no broker crash, nothing acknowledged lost. Its own file because the
 * killed server's aftermath must not decide the other fault tests (cluster.e2e.test.ts).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { type NatsClusterHandle, requireNatsServer } from '@breakwater/testkit';
import type { MqttClient } from 'mqtt';
import {
  connect,
  type E2eCluster,
  eventually,
  type NodeProc,
  publishLoop,
  startE2eCluster,
} from './cluster-e2e.js';

describe('breakwater up --cluster: a nats-server killed under QoS 1 load', () => {
  let cluster: E2eCluster | null = null;
  let nats: NatsClusterHandle | null = null;
  let nodes: NodeProc[] = [];
  let clients: MqttClient[] = [];

  before(async (t) => {
    if (!requireNatsServer(t as never)) return;
    cluster = await startE2eCluster();
    ({ nats, nodes, clients } = cluster);
  });

  after(async () => {
    await cluster?.stop();
  });

  test('kill -9 of a nats-server under QoS 1 load: a stall, no crash, nothing acknowledged lost', async (t) => {
    if (nats === null) return t.skip('no nats-server');
    const [a, b] = nodes;
    const sub = await connect(a!.mqttUrl, { clientId: 'e2e-sub-1', protocolVersion: 5 });
    clients.push(sub);
    await sub.subscribeAsync('load/1', { qos: 1 });
    const got = new Set<string>();
    sub.on('message', (_t, p) => got.add(p.toString()));
    const loop = publishLoop(b!.mqttUrl, 'e2e-pub-1', 'load/1', 'n');
    try {
      await eventually(() => loop.acked.length >= 50, 20_000, 'load running');
      // One of the servers a and b were given dies (which one each uses is the client's pick);
      // each reconnects to another one. JetStream (R3) keeps quorum.
      await nats.kill(1);
      const before = loop.acked.length;
      await eventually(() => loop.acked.length >= before + 100, 30_000, 'publishing resumed after the stall');
      await loop.stop();
      assert.equal(b!.cli.child.exitCode, null, 'broker b is still running');
      // The number is for the report, not an assertion: the stall while JetStream moved leaders.
      t.diagnostic(`longest time without a PUBACK: ${loop.longestGapMs} ms (${loop.acked.length} acked)`);
      const missing = () => loop.acked.filter((p) => !got.has(p));
      await eventually(() => missing().length === 0, 15_000, 'every acknowledged message delivered').catch(
        (err: Error) => {
          const m = missing();
          throw new Error(`${err.message}: ${m.length} of ${loop.acked.length} missing (${m.slice(0, 5)}…)`);
        },
      );
    } finally {
      await loop.stop();
      await sub.endAsync(true);
    }
  });
});
