/**
 * Issue 15, the durable feed across a NATS server crash: a node whose NATS server dies (kill -9)
 * together with the consumer its feed reads with keeps receiving every QoS 1 message published on
 * another node. The node reconnects to another server; nats-server 2.9 never answers for the dead
 * consumer (no "not found", timeouts only), so the feed must notice and replace it by itself.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import mqtt, { type MqttClient } from 'mqtt';
import { connectTo, eventually, type Node, startTestCluster } from './helpers.js';

const KILLED = 1;

/** The publisher's connection; fails (instead of waiting) when it closes before CONNACK. */
function connectOrFail(url: string): Promise<MqttClient> {
  const c = mqtt.connect(url, {
    clientId: 'feed-pub',
    protocolVersion: 5,
    reconnectPeriod: 0,
    connectTimeout: 5000,
  });
  return new Promise((resolve, reject) => {
    c.once('connect', () => resolve(c));
    c.once('error', reject);
    c.once('close', () => reject(new Error('closed before CONNACK')));
  });
}

/**
 * A QoS 1 publish that fails when the connection closes or no PUBACK comes within 10 s (mqtt.js
 * would keep it for a reconnect that never comes: reconnectPeriod 0).
 */
function publishOrFail(client: MqttClient, topic: string, payload: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      client.off('close', onClose);
      client.end(true);
      reject(new Error('no PUBACK'));
    }, 10_000);
    const onClose = () => {
      clearTimeout(timer);
      reject(new Error('connection closed'));
    };
    client.once('close', onClose);
    client.publish(topic, payload, { qos: 1 }, (err) => {
      clearTimeout(timer);
      client.off('close', onClose);
      if (err) reject(err);
      else resolve();
    });
  });
}

test('a node whose NATS server dies with its feed consumer receives every acknowledged QoS 1 message', async (t) => {
  const tc = await startTestCluster(t, 1);
  if (tc === null) return t.skip('no NATS');
  const killedName = tc.nats.servers[KILLED]!.name;
  const consumerServer = async (n: Node) => {
    const name = n.cluster.feedConsumer;
    if (name === null) return null;
    return (await n.cluster.jsm.consumers.info(n.cluster.streamName, name)).cluster?.leader ?? null;
  };
  let sub: MqttClient | null = null;
  let pub: MqttClient | null = null;
  try {
    // The subscriber's node on server 1, with its feed consumer there too (placement is the
    // server's random pick: a few tries). Without that luck the test still covers a feed whose
    // consumer died on another server.
    let a = await tc.addNode(KILLED);
    for (let i = 0; i < 12 && (await consumerServer(a)) !== killedName; i++) {
      await tc.stopNode(a);
      a = await tc.addNode(KILLED);
    }
    t.diagnostic(`feed consumer on ${await consumerServer(a)}; killing ${killedName}`);
    const b = tc.nodes[0]!;
    sub = await connectTo(a.broker.url, { clientId: 'feed-sub', protocolVersion: 5 });
    await sub.subscribeAsync('feed/load', { qos: 1 });
    const got = new Set<string>();
    sub.on('message', (_t, p) => got.add(p.toString()));
    const acked: string[] = [];
    const publish = async (n: number) => {
      const deadline = Date.now() + 60_000;
      for (let i = acked.length, end = acked.length + n; i < end; ) {
        if (Date.now() > deadline) throw new Error(`publishing stuck at ${acked.length} acknowledged`);
        try {
          if (pub === null || !pub.connected) {
            pub?.end(true);
            pub = await connectOrFail(b.broker.url);
          }
          await publishOrFail(pub, 'feed/load', `m-${i}`);
          acked.push(`m-${i}`);
          i++;
        } catch {
          // The broker closes a connection whose PUBACK JetStream refused (a leader moving): resend.
          await new Promise((r) => setTimeout(r, 100));
        }
      }
    };
    await publish(30);
    await eventually(() => got.size === 30, 10_000, 'delivery before the crash');
    await tc.nats.kill(KILLED);
    await publish(100);
    const missing = () => acked.filter((p) => !got.has(p));
    await eventually(() => missing().length === 0, 20_000, 'every acknowledged message delivered').catch(
      (err: Error) => {
        throw new Error(`${err.message}: ${missing().length} of ${acked.length} missing`);
      },
    );
    assert.equal(sub.connected, true, 'the subscriber was not evicted');
  } finally {
    await Promise.all([sub, pub].map((c) => (c as MqttClient | null)?.endAsync(true)));
    await tc.nats.start(KILLED);
    await tc.close();
  }
});
