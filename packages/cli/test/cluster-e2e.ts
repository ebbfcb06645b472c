/**
 * The cluster end-to-end tests' fixture (issue 15): three routed nats-servers (JetStream, R3) and
 * three `breakwater up --cluster` processes, a, b and c; c reaches NATS only through a fault proxy.
 * Each fault test file starts its own cluster, so a fault in one (a killed nats-server) cannot
 * leave the next file's cluster half-healed.
 */
import type { EventEmitter } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FaultProxy } from '@breakwater/gameday';
import { type NatsClusterHandle, startNatsCluster } from '@breakwater/testkit';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { CliProcess } from './cli-process.js';

export interface NodeProc {
  cli: CliProcess;
  mqttUrl: string;
  httpUrl: string;
  token: string;
}

export async function startNode(
  dir: string,
  name: string,
  servers: string[],
  discover: boolean,
): Promise<NodeProc> {
  const dataDir = join(dir, name);
  const configFile = join(dir, `${name}.yaml`);
  writeFileSync(
    configFile,
    JSON.stringify({
      listeners: [{ name: 'mqtt', type: 'tcp', host: '127.0.0.1', port: 0 }],
      http: { enabled: true, host: '127.0.0.1', port: 0 },
      control: { enabled: false },
      dataDir,
      log: { level: 'warn', format: 'json' },
      mqtt: { offlineQueueLimit: 100_000 },
      cluster: {
        servers,
        discoverServers: discover,
        replicas: 3,
        // Generous for a loaded 2-core machine running 3 nats-servers and 3 brokers.
        heartbeatMs: 500,
        deadAfterMs: 6000,
        isolateAfterMs: 2000,
        drainRatePerSec: 1000,
        requestTimeoutMs: 2000,
      },
    }),
  );
  const cli = new CliProcess(['up', '--config', configFile]);
  const [, mqttUrl] = await cli.waitForStdout(/mqtt\s+(mqtt:\/\/\S+)/);
  const [, httpUrl] = await cli.waitForStdout(/http\s+(http:\/\/\S+)\/metrics/);
  const [, token] = await cli.waitForStdout(/admin token .*: (\S+)/);
  return { cli, mqttUrl: mqttUrl!, httpUrl: httpUrl!, token: token! };
}

/**
 * Whether `n` serves as a cluster member again: ready (its heartbeat written), hearing all three
 * nodes' heartbeats (the redirects of the next tests name them), and accepting a clean MQTT
 * connection (its ownership claim goes through JetStream).
 */
async function serving(n: NodeProc, i: number): Promise<boolean> {
  try {
    if ((await readyz(n)) !== 200 || (await metric(n, 'breakwater_cluster_nodes_alive')) !== 3) return false;
    const c = await connect(n.mqttUrl, { clientId: `e2e-probe-${i}`, protocolVersion: 5 });
    await c.endAsync(true);
    return true;
  } catch {
    return false;
  }
}

export async function readyz(n: NodeProc): Promise<number> {
  return (await fetch(`${n.httpUrl}/readyz`)).status;
}

export async function metric(n: NodeProc, name: string): Promise<number> {
  const text = await (await fetch(`${n.httpUrl}/metrics`)).text();
  let sum = 0;
  for (const line of text.split('\n'))
    if (line.startsWith(`${name}{`) || line.startsWith(`${name} `)) sum += Number(line.split(' ').pop());
  return sum;
}

/** MqttClient is a typed emitter that `events.once` does not accept as such. */
export function ee(client: MqttClient): EventEmitter {
  return client as unknown as EventEmitter;
}

/** A QoS 1 publish that fails when the connection closes (mqtt.js would keep it for a reconnect). */
export function publishOrFail(client: MqttClient, topic: string, payload: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onClose = () => reject(new Error('connection closed'));
    client.once('close', onClose);
    client.publish(topic, payload, { qos: 1 }, (err) => {
      client.off('close', onClose);
      if (err) reject(err);
      else resolve();
    });
  });
}

export function connect(url: string, options: IClientOptions = {}): Promise<MqttClient> {
  const c = mqtt.connect(url, { reconnectPeriod: 0, connectTimeout: 10_000, ...options });
  return new Promise((resolve, reject) => {
    c.once('connect', () => resolve(c));
    c.once('error', reject);
    c.once('close', () => reject(new Error('closed before CONNACK')));
  });
}

export async function eventually(
  cond: () => boolean | Promise<boolean>,
  ms: number,
  what: string,
): Promise<void> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what} not reached within ${ms} ms`);
}

/**
 * A device publishing QoS 1 messages one after another (each waits for its PUBACK) until stopped,
 * the way the device SDK does: when the connection fails, it reconnects (to the same URL, after
 * 200 ms) and resends the message that was not acknowledged. `acked` holds every payload a broker
 * acknowledged; `stalls` the longest time without an acknowledgement.
 */
export function publishLoop(url: string, clientId: string, topic: string, prefix: string) {
  const acked: string[] = [];
  let stop = false;
  let longestGapMs = 0;
  let client: MqttClient | null = null;
  const done = (async () => {
    let last = Date.now();
    for (let i = 0; !stop; ) {
      try {
        if (client === null || !client.connected) {
          client?.end(true);
          client = await connect(url, { clientId, protocolVersion: 5 });
        }
        await publishOrFail(client, topic, `${prefix}-${i}`);
        acked.push(`${prefix}-${i}`);
        i++;
        const now = Date.now();
        longestGapMs = Math.max(longestGapMs, now - last);
        last = now;
      } catch {
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  })();
  return {
    acked,
    get longestGapMs() {
      return longestGapMs;
    },
    async stop() {
      stop = true;
      // The loop may be inside a connect that resolves later: whatever client it holds when it
      // ends is closed then too, or its socket and timers keep the test process alive.
      void done.then(() => (client as MqttClient | null)?.end(true));
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([done, new Promise((r) => (timer = setTimeout(r, 3000)))]);
      clearTimeout(timer);
      (client as MqttClient | null)?.end(true);
    },
  };
}

export interface E2eCluster {
  nats: NatsClusterHandle;
  proxy: FaultProxy;
  nodes: NodeProc[];
  /** Clients to end when the file is done. */
  clients: MqttClient[];
  stop(): Promise<void>;
}

export async function startE2eCluster(): Promise<E2eCluster> {
  const nats = await startNatsCluster(3);
  const dir = mkdtempSync(join(tmpdir(), 'bw-cluster-e2e-'));
  // Node c reaches NATS only through the fault proxy, pinned to it (no discovered servers).
  const proxy = new FaultProxy({ target: { host: '127.0.0.1', port: nats.servers[2]!.clientPort } });
  const { port } = await proxy.start();
  const nodes = await Promise.all([
    startNode(dir, 'a', [nats.urls[0]!, nats.urls[1]!], true),
    startNode(dir, 'b', [nats.urls[1]!, nats.urls[0]!], true),
    startNode(dir, 'c', [`nats://127.0.0.1:${port}`], false),
  ]);
  // The fault tests name nodes in redirects and race claims through JetStream: start them only
  // once every node hears all three heartbeats and accepts a connection (seconds after start-up on
  // a loaded machine; without this wait the first test saw a node that knew no other).
  await eventually(
    async () => (await Promise.all(nodes.map((n, i) => serving(n, i)))).every(Boolean),
    60_000,
    'every node serving as a cluster member',
  );
  const clients: MqttClient[] = [];
  return {
    nats,
    proxy,
    nodes,
    clients,
    async stop() {
      if (process.env.BW_E2E_LOGS) {
        for (const [i, n] of nodes.entries())
          writeFileSync(`${process.env.BW_E2E_LOGS}-${i}.log`, `${n.cli.stdout}\n${n.cli.stderr}`);
      }
      await Promise.all(clients.map((c) => c.endAsync(true).catch(() => {})));
      await Promise.all(nodes.map((n) => n.cli.stop()));
      await proxy.close();
      await nats.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
