import { type EventEmitter, once } from 'node:events';
import type { TestContext } from 'node:test';
import {
  type NatsClusterHandle,
  requireNatsServer,
  startBroker,
  startNatsCluster,
  type TestBroker,
} from '@breakwater/testkit';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { type ClusterOptions, NatsCluster } from '../src/index.js';

export interface Node {
  cluster: NatsCluster;
  broker: TestBroker;
}

export interface TestCluster {
  nats: NatsClusterHandle;
  nodes: Node[];
  /** Starts one more broker node (on NATS server `natsIndex`). */
  addNode(natsIndex: number, extra?: Partial<ClusterOptions>): Promise<Node>;
  stopNode(node: Node): Promise<void>;
  close(): Promise<void>;
}

/** Fast liveness for tests: a node is dead after 3 s of silence. */
export const testClusterOptions: Partial<ClusterOptions> = {
  replicas: 3,
  heartbeatMs: 300,
  deadAfterMs: 3000,
  isolateAfterMs: 1500,
  replaySlackMs: 1000,
};

/**
 * 3 nats-servers (routed, JetStream) and `brokers` in-process broker nodes, node i on server i
 * mod 3. Null (test skipped) when nats-server is not installed, except under CI=true.
 */
export async function startTestCluster(
  t: TestContext,
  brokers = 3,
  extra: Partial<ClusterOptions> = {},
): Promise<TestCluster | null> {
  if (!requireNatsServer(t)) return null;
  const nats = await startNatsCluster(3);
  const nodes: Node[] = [];
  const addNode = async (natsIndex: number, more: Partial<ClusterOptions> = {}) => {
    const cluster = await NatsCluster.connect({
      servers: [nats.urls[natsIndex % nats.urls.length]!],
      ...testClusterOptions,
      ...extra,
      ...more,
    });
    const broker = await startBroker({ cluster, limits: { offlineQueueLimit: 5000 } });
    await cluster.start();
    const node = { cluster, broker };
    nodes.push(node);
    return node;
  };
  const stopNode = async (node: Node) => {
    await node.broker.close();
    await node.cluster.close();
    nodes.splice(nodes.indexOf(node), 1);
  };
  try {
    for (let i = 0; i < brokers; i++) await addNode(i);
  } catch (err) {
    for (const n of nodes) await n.cluster.close().catch(() => {});
    await nats.stop();
    throw err;
  }
  return {
    nats,
    nodes,
    addNode,
    stopNode,
    async close() {
      for (const n of [...nodes]) await stopNode(n).catch(() => {});
      await nats.stop();
    },
  };
}

export async function connectTo(url: string, options: IClientOptions = {}): Promise<MqttClient> {
  const c = mqtt.connect(url, { reconnectPeriod: 0, connectTimeout: 5000, ...options });
  await once(ee(c), 'connect');
  return c;
}

/** Resolves with `n` messages received on `client` (rejects after `ms`). */
export function collect(
  client: MqttClient,
  n: number,
  ms = 10_000,
): Promise<{ topic: string; payload: string; retain: boolean }[]> {
  const got: { topic: string; payload: string; retain: boolean }[] = [];
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      client.off('message', on);
      reject(new Error(`got ${got.length} of ${n} messages: ${JSON.stringify(got.slice(0, 5))}`));
    }, ms);
    const on = (topic: string, payload: Buffer, packet: { retain: boolean }) => {
      got.push({ topic, payload: payload.toString(), retain: packet.retain });
      if (got.length >= n) {
        clearTimeout(timer);
        client.off('message', on);
        resolve(got);
      }
    };
    client.on('message', on);
  });
}

/** Polls `cond` every 50 ms until true (throws after `ms`): state that converges, not timing. */
export async function eventually(
  cond: () => boolean | Promise<boolean>,
  ms = 10_000,
  what = 'condition',
): Promise<void> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${what} not reached within ${ms} ms`);
}

export async function end(...clients: MqttClient[]): Promise<void> {
  await Promise.all(clients.map((c) => c.endAsync(true)));
}

/** MqttClient is a typed emitter that `events.once` does not accept as such. */
export function ee(client: MqttClient): EventEmitter {
  return client as unknown as EventEmitter;
}
