/**
 * Issue 15, end to end: a shared subscription whose member's broker process is killed (-9) while
 * QoS 1 messages flow. Three `breakwater up --cluster` processes (cluster-e2e.ts); the group has a
 * member on a (acks everything) and one on b that never acknowledges (a raw MQTT client), so b
 * holds messages in flight when it dies. Every message the publisher (on c) got a PUBACK for must
 * reach the member on a: JetStream redelivers what b's member held after the group consumer's ack
 * wait (5 s).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { type Packet, RawClient, requireNatsServer } from '@breakwater/testkit';
import type { MqttClient } from 'mqtt';
import {
  connect,
  type E2eCluster,
  eventually,
  metric,
  type NodeProc,
  publishLoop,
  publishOrFail,
  startE2eCluster,
} from './cluster-e2e.js';

describe('breakwater up --cluster: shared subscriptions survive a member node kill -9', () => {
  let cluster: E2eCluster | null = null;
  let nodes: NodeProc[] = [];
  let clients: MqttClient[] = [];

  before(async (t) => {
    if (!requireNatsServer(t as never)) return;
    cluster = await startE2eCluster();
    ({ nodes, clients } = cluster);
  });

  after(async () => {
    await cluster?.stop();
  });

  test('kill -9 of a member node: every acknowledged message reaches the surviving member', async (t) => {
    if (cluster === null) return t.skip('no nats-server');
    const [a, b, c] = nodes;
    const group = '$share/e2e/shjobs/#';
    const survivor = await connect(a!.mqttUrl, { clientId: 'e2e-sh-a', protocolVersion: 5 });
    clients.push(survivor);
    const onA = new Map<string, number>();
    survivor.on('message', (_t, p) => {
      const k = p.toString();
      onA.set(k, (onA.get(k) ?? 0) + 1);
    });
    await survivor.subscribeAsync(group, { qos: 1 });
    // The member on b takes messages and never acknowledges them (mqtt.js acks every message).
    const silent = await RawClient.connect(Number(new URL(b!.mqttUrl).port), { protocolVersion: 5 });
    await silent.connect({ clientId: 'e2e-sh-b', clean: true });
    silent.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: group, qos: 1 }] } as Packet);
    await silent.next('suback');
    const onB = () =>
      silent.received
        .filter((p) => p.cmd === 'publish')
        .map((p) => (p as { payload: Buffer }).payload.toString());

    // The group's consumer is made asynchronously after the SUBACK (deliver policy new): probe
    // until both members have had a message, so the load below is all in the group.
    const probe = await connect(c!.mqttUrl, { clientId: 'e2e-sh-probe', protocolVersion: 5 });
    clients.push(probe);
    let i = 0;
    await eventually(
      async () => {
        await publishOrFail(probe, 'shjobs/probe', `probe-${i++}`);
        return [...onA.keys()].some((k) => k.startsWith('probe-')) && onB().length > 0;
      },
      30_000,
      'both members in the group',
    );

    const loop = publishLoop(c!.mqttUrl, 'e2e-sh-pub', 'shjobs/load', 'm');
    await eventually(
      () => onB().filter((p) => p.startsWith('m-')).length >= 20 && loop.acked.length >= 100,
      30_000,
      'load flowing to both members',
    );
    b!.cli.child.kill('SIGKILL');
    await b!.cli.exited;
    // The load goes on a moment after the kill: the group now has one member.
    const atKill = loop.acked.length;
    await eventually(() => loop.acked.length >= atKill + 50, 20_000, 'load after the kill');
    await loop.stop();
    const acked = [...loop.acked];
    const heldByB = onB().filter((p) => p.startsWith('m-'));
    // Redelivery after the ack wait (5 s); bounded well below the stream's retention.
    const started = Date.now();
    await eventually(
      () => acked.every((p) => onA.has(p)),
      30_000,
      `every acknowledged message on a (missing ${acked.filter((p) => !onA.has(p)).length} of ${acked.length})`,
    );
    const tookMs = Date.now() - started;
    for (const p of heldByB)
      assert.ok(onA.has(p), `${p}, held unacknowledged by b's member, redelivered to a`);
    assert.ok((await metric(a!, 'breakwater_cluster_received_total{kind="shared_redelivered"}')) > 0);
    const dups = [...onA.values()].filter((n) => n > 1).length;
    t.diagnostic(
      `acked ${acked.length}, b's member held ${heldByB.length} unacked at the kill, all on a ${tookMs} ms after the load stopped; ${dups} duplicates on a`,
    );
  });
});
