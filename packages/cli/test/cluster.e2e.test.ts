/**
 * Issue 15, end to end: three `breakwater up --cluster` processes on three routed nats-servers
 * (JetStream, R3). Faults, in order, on one cluster:
 * 1. kill -9 of a nats-server under QoS 1 load: a stall, no broker crash, nothing acked is lost;
 * 2. broker↔NATS cut by the fault proxy: readiness false, MQTT 5 clients redirected (0x9C +
 *    Server Reference), no double owner after healing;
 * 3. `breakwater node drain`-style drain over the admin API: readiness false first, 0x9C;
 * 4. kill -9 of a broker under QoS 1 load: zero acknowledged messages lost (the persistent
 *    subscriber resumes on another node), each will published exactly once.
 */
import assert from 'node:assert/strict';
import { type EventEmitter, once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { FaultProxy } from '@breakwater/gameday';
import { type NatsClusterHandle, requireNatsServer, startNatsCluster } from '@breakwater/testkit';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { CliProcess } from './cli-process.js';

interface NodeProc {
  cli: CliProcess;
  mqttUrl: string;
  httpUrl: string;
  token: string;
}

async function startNode(dir: string, name: string, servers: string[], discover: boolean): Promise<NodeProc> {
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

async function readyz(n: NodeProc): Promise<number> {
  return (await fetch(`${n.httpUrl}/readyz`)).status;
}

async function metric(n: NodeProc, name: string): Promise<number> {
  const text = await (await fetch(`${n.httpUrl}/metrics`)).text();
  let sum = 0;
  for (const line of text.split('\n'))
    if (line.startsWith(`${name}{`) || line.startsWith(`${name} `)) sum += Number(line.split(' ').pop());
  return sum;
}

/** MqttClient is a typed emitter that `events.once` does not accept as such. */
function ee(client: MqttClient): EventEmitter {
  return client as unknown as EventEmitter;
}

/** A QoS 1 publish that fails when the connection closes (mqtt.js would keep it for a reconnect). */
function publishOrFail(client: MqttClient, topic: string, payload: string): Promise<void> {
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

function connect(url: string, options: IClientOptions = {}): Promise<MqttClient> {
  const c = mqtt.connect(url, { reconnectPeriod: 0, connectTimeout: 10_000, ...options });
  return new Promise((resolve, reject) => {
    c.once('connect', () => resolve(c));
    c.once('error', reject);
    c.once('close', () => reject(new Error('closed before CONNACK')));
  });
}

async function eventually(cond: () => boolean | Promise<boolean>, ms: number, what: string): Promise<void> {
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
function publishLoop(url: string, clientId: string, topic: string, prefix: string) {
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
      await Promise.race([done, new Promise((r) => setTimeout(r, 3000))]);
      (client as MqttClient | null)?.end(true);
    },
  };
}

describe('breakwater up --cluster: three processes survive node and NATS faults', () => {
  let nats: NatsClusterHandle | null = null;
  let proxy: FaultProxy | null = null;
  const nodes: NodeProc[] = [];
  const clients: MqttClient[] = [];
  let dir = '';

  before(async (t) => {
    if (!requireNatsServer(t as never)) return;
    nats = await startNatsCluster(3);
    dir = mkdtempSync(join(tmpdir(), 'bw-cluster-e2e-'));
    // Node c reaches NATS only through the fault proxy, pinned to it (no discovered servers).
    proxy = new FaultProxy({ target: { host: '127.0.0.1', port: nats.servers[2]!.clientPort } });
    const { port } = await proxy.start();
    nodes.push(
      ...(await Promise.all([
        startNode(dir, 'a', [nats.urls[0]!, nats.urls[1]!], true),
        startNode(dir, 'b', [nats.urls[1]!, nats.urls[0]!], true),
        startNode(dir, 'c', [`nats://127.0.0.1:${port}`], false),
      ])),
    );
  });

  after(async () => {
    if (process.env.BW_E2E_LOGS) {
      for (const [i, n] of nodes.entries())
        writeFileSync(`${process.env.BW_E2E_LOGS}-${i}.log`, `${n.cli.stdout}\n${n.cli.stderr}`);
    }
    await Promise.all(clients.map((c) => c.endAsync(true).catch(() => {})));
    await Promise.all(nodes.map((n) => n.cli.stop()));
    await proxy?.close();
    await nats?.stop();
    if (dir !== '') rmSync(dir, { recursive: true, force: true });
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
      // The next tests expect three NATS servers, whatever happened here, and a cluster that
      // serves again: right after the restart JetStream may refuse writes for a while.
      await nats.start(1);
      const restartedAt = Date.now();
      await sub.endAsync(true);
      await eventually(
        async () => (await Promise.all(nodes.map((n, i) => serving(n, i)))).every(Boolean),
        60_000,
        'every node serving again after the NATS server restart',
      ).then(
        () => t.diagnostic(`all nodes serving ${Date.now() - restartedAt} ms after the server restart`),
        (err: Error) => t.diagnostic(err.message),
      );
    }
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
