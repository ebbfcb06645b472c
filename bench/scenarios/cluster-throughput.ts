/**
 * Issue 15: throughput of a 3-node Breakwater cluster (3 × `breakwater up --cluster` on 3 routed
 * nats-servers with JetStream, R3) against one Breakwater node, and NATS's own MQTT listener
 * side by side (nats-server with `mqtt {}`: the fastest single peer measured on this machine).
 *
 *   fan-in   100 publishers → 1 subscriber on `bench/+/data`, QoS 0. In the cluster the
 *            publishers are spread over the three nodes and the subscriber is on node 0, so two
 *            thirds of the traffic crosses NATS.
 *   qos1     50 QoS 1 publisher → own subscriber pairs; in the cluster each subscriber is on
 *            another node than its publisher (every message crosses NATS, PUBACK after the
 *            JetStream ack).
 *
 * Flood only: delivered msgs/s at the subscribers over a window after a warm-up, and the CPU used
 * by all broker-side processes (brokers + nats-servers). Everything shares this machine's cores
 * with the load generator: a 3-node cluster on 2 cores measures the cost of clustering, not its
 * scale-out.
 *
 *   npm run bench -- cluster [--brokers breakwater-1,breakwater-3,nats-mqtt] [--scenarios fan-in,qos1]
 *                            [--warmup 3] [--window 8]
 */
import { type ChildProcess, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort, readCpuMs } from '../brokers.js';
import { WorkerPool } from '../loadgen/pool.js';
import type { ClientSpec, Stats } from '../loadgen/protocol.js';
import { fmtNumber, fmtRatio, type MachineInfo, machineMarkdown, table } from '../report.js';
import {
  HOST,
  killAll,
  NATS_SERVER,
  spawnBreakwaterUp,
  startNatsServers,
  waitPort,
} from './cluster-processes.js';

/**
 * `breakwater-1-nats`: ONE node with `--cluster` on one nats-server, every client on it: what the
 * cluster seam costs a node by itself (every message also sent to NATS, nobody else to receive it).
 */
export const ClusterTargets = ['breakwater-1', 'breakwater-1-nats', 'breakwater-3', 'nats-mqtt'] as const;
export type ClusterTarget = (typeof ClusterTargets)[number];
export const ClusterScenarios = ['fan-in', 'qos1'] as const;
export type ClusterScenario = (typeof ClusterScenarios)[number];

export interface ClusterBenchOptions {
  targets: readonly ClusterTarget[];
  scenarios: readonly ClusterScenario[];
  warmupMs: number;
  windowMs: number;
  log: (line: string) => void;
}

interface Deployment {
  /** MQTT ports, one per broker node. */
  ports: number[];
  /** HTTP ports of the Breakwater nodes (metrics); empty for other targets. */
  httpPorts: number[];
  /** Every broker-side process (brokers and nats-servers). */
  pids: number[];
  describe: string;
  stop(): Promise<void>;
}

export interface ClusterFlood {
  target: ClusterTarget;
  scenario: ClusterScenario;
  ok: boolean;
  note: string | null;
  receivedPerSec: number | null;
  sentPerSec: number | null;
  /** CPU of all broker-side processes, % of one core. */
  brokerSideCpuPercent: number | null;
}

function startBreakwater(
  dir: string,
  name: string,
  port: number,
  httpPort: number,
  cluster: string[] | null,
): ChildProcess {
  return spawnBreakwaterUp(join(dir, `${name}.yaml`), {
    listeners: [{ name: 'mqtt', type: 'tcp', host: HOST, port }],
    // HTTP for /metrics only: after each flood the bench reads where messages were dropped.
    http: { enabled: true, host: HOST, port: httpPort },
    control: { enabled: false },
    dataDir: join(dir, name),
    log: { level: 'warn', format: 'json' },
    storage: { driver: 'memory' },
    ...(cluster ? { cluster: { servers: cluster, replicas: cluster.length } } : {}),
  });
}

async function deploy(target: ClusterTarget): Promise<Deployment> {
  const dir = mkdtempSync(join(tmpdir(), `bench-${target}-`));
  const children: ChildProcess[] = [];
  const stop = async () => {
    await killAll(children);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    if (target === 'nats-mqtt') {
      const mqttPort = await freePort();
      const nats = await startNatsServers(dir, 1, mqttPort);
      children.push(...nats.children);
      await waitPort(mqttPort, 15_000);
      const version = execFileSync(NATS_SERVER, ['--version'], { encoding: 'utf8' }).trim();
      return {
        ports: [mqttPort],
        httpPorts: [],
        pids: children.map((c) => c.pid!),
        describe: `${version} with an MQTT listener (JetStream on)`,
        stop,
      };
    }
    if (target === 'breakwater-1') {
      const port = await freePort();
      const httpPort = await freePort();
      children.push(startBreakwater(dir, 'single', port, httpPort, null));
      await waitPort(port, 60_000);
      return {
        ports: [port],
        httpPorts: [httpPort],
        pids: children.map((c) => c.pid!),
        describe: '`breakwater up` (memory storage), one process',
        stop,
      };
    }
    const n = target === 'breakwater-3' ? 3 : 1;
    const nats = await startNatsServers(dir, n);
    children.push(...nats.children);
    const ports = await Promise.all(nats.urls.map(() => freePort()));
    const httpPorts = await Promise.all(nats.urls.map(() => freePort()));
    for (const [i, p] of ports.entries())
      children.push(startBreakwater(dir, `node-${i}`, p, httpPorts[i]!, [nats.urls[i]!]));
    await Promise.all(ports.map((p) => waitPort(p, 90_000)));
    return {
      ports,
      httpPorts,
      pids: children.map((c) => c.pid!),
      describe:
        n === 3
          ? '3 × `breakwater up --cluster` on 3 routed nats-servers (JetStream, R3)'
          : '1 × `breakwater up --cluster` on 1 nats-server (JetStream, R1), every client on it',
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

function assignment(sc: ClusterScenario, ports: number[]): ClientSpec[][] {
  const node = (i: number) => ports[i % ports.length]!;
  if (sc === 'fan-in') {
    const pubs: ClientSpec[] = Array.from({ length: 100 }, (_, i) => ({
      id: `cfi-pub-${i}`,
      publish: { topic: `bench/${i}/data`, qos: 0 },
      port: node(i),
    }));
    return [pubs, [{ id: 'cfi-sub', subscribe: { filter: 'bench/+/data', qos: 0 }, port: node(0) }]];
  }
  const pubs: ClientSpec[] = [];
  const subs: ClientSpec[] = [];
  for (let i = 0; i < 50; i++) {
    pubs.push({ id: `cq1-pub-${i}`, publish: { topic: `bench/pair/${i}`, qos: 1 }, port: node(i) });
    subs.push({ id: `cq1-sub-${i}`, subscribe: { filter: `bench/pair/${i}`, qos: 1 }, port: node(i + 1) });
  }
  return [pubs, subs];
}

/**
 * Where the broker dropped messages during the run, per node ("node 0: slow_consumer 1,234"), from
 * `breakwater_messages_dropped_total`, and how often a node lost its NATS connection; null when
 * nothing was dropped or lost, or there is no HTTP port.
 */
async function droppedByNode(httpPorts: number[]): Promise<string | null> {
  const parts: string[] = [];
  for (const [i, port] of httpPorts.entries()) {
    try {
      // A node may still be working off what the publishers' sockets buffered: give it time.
      const res = await fetch(`http://${HOST}:${port}/metrics`, { signal: AbortSignal.timeout(60_000) });
      const text = await res.text();
      const drops = [...text.matchAll(/^breakwater_messages_dropped_total\{reason="([^"]+)"\} (\d+)/gm)]
        .filter((m) => Number(m[2]) > 0)
        .map((m) => `${m[1]} ${fmtNumber(Number(m[2]))}`);
      if (drops.length > 0) parts.push(`node ${i} dropped: ${drops.join(', ')}`);
      // NATS closing a node as a slow consumer loses what it held for the node: dropped, uncounted.
      const lost = /^breakwater_cluster_nats_disconnects_total (\d+)/m.exec(text);
      if (lost !== null && Number(lost[1]) > 0) parts.push(`node ${i} NATS disconnects: ${lost[1]}`);
    } catch (err) {
      parts.push(`node ${i}: metrics unreadable (${(err as Error).message})`);
    }
  }
  return parts.length > 0 ? parts.join('; ') : null;
}

function rate(a: Stats[], b: Stats[], f: (s: Stats) => number): number {
  let total = 0;
  for (let i = 0; i < a.length; i++) {
    const dt = (b[i]!.atMs - a[i]!.atMs) / 1000;
    if (dt > 0) total += (f(b[i]!) - f(a[i]!)) / dt;
  }
  return total;
}

async function flood(
  target: ClusterTarget,
  sc: ClusterScenario,
  opts: ClusterBenchOptions,
  describe: Map<ClusterTarget, string>,
): Promise<ClusterFlood> {
  let d: Deployment | null = null;
  let pool: WorkerPool | null = null;
  try {
    d = await deploy(target);
    describe.set(target, d.describe);
    const a = assignment(sc, d.ports);
    pool = new WorkerPool(a.length);
    const setup = await pool.setup(a, {
      host: HOST,
      port: d.ports[0]!,
      keepalive: 600,
      payloadSize: 64,
      concurrency: 50,
      qos1Window: 64,
      deadlineMs: 30_000,
    });
    if (setup.failed > 0) throw new Error(`${setup.failed} clients failed (${setup.firstError})`);
    await sleep(1000); // subscriptions reach every node
    await pool.all({ op: 'flood' });
    await sleep(opts.warmupMs);
    const pids = d.pids;
    const cpu0 = pids.reduce((s, p) => s + readCpuMs(p), 0);
    const t0 = performance.now();
    const s0 = await pool.stats();
    await sleep(opts.windowMs);
    const s1 = await pool.stats();
    const cpu1 = pids.reduce((s, p) => s + readCpuMs(p), 0);
    const wall = performance.now() - t0;
    await pool.all({ op: 'halt' });
    const dropped = await droppedByNode(d.httpPorts);
    return {
      target,
      scenario: sc,
      ok: true,
      note: dropped,
      receivedPerSec: rate(s0, s1, (s) => s.received),
      sentPerSec: rate(s0, s1, (s) => s.sent),
      brokerSideCpuPercent: ((cpu1 - cpu0) / wall) * 100,
    };
  } catch (err) {
    return {
      target,
      scenario: sc,
      ok: false,
      note: (err as Error).message,
      receivedPerSec: null,
      sentPerSec: null,
      brokerSideCpuPercent: null,
    };
  } finally {
    await pool?.close();
    await d?.stop();
  }
}

export async function runClusterThroughput(
  opts: ClusterBenchOptions,
): Promise<{ results: ClusterFlood[]; describe: Record<string, string> }> {
  const results: ClusterFlood[] = [];
  const describe = new Map<ClusterTarget, string>();
  for (const sc of opts.scenarios) {
    for (const target of opts.targets) {
      opts.log(`cluster ${sc}: ${target}`);
      const r = await flood(target, sc, opts, describe);
      opts.log(`  ${r.ok ? `${fmtNumber(r.receivedPerSec)} msgs/s received` : `failed: ${r.note}`}`);
      results.push(r);
    }
  }
  return { results, describe: Object.fromEntries(describe) };
}

export function clusterMarkdown(
  machine: MachineInfo,
  run: { results: ClusterFlood[]; describe: Record<string, string> },
  opts: Pick<ClusterBenchOptions, 'warmupMs' | 'windowMs'>,
  git: string,
): string {
  const out = [
    '# Cluster throughput (issue 15): 3 nodes vs 1, and NATS MQTT',
    '',
    machineMarkdown(machine),
    `- git ${git}`,
    ...Object.entries(run.describe).map(([t, d]) => `- ${t}: ${d}`),
    '',
    `Load generator: raw sockets, MQTT 3.1.1, 64-byte payloads, in separate processes on the same host. Flood: ${opts.warmupMs / 1000} s warm-up, then received msgs/s over ${opts.windowMs / 1000} s. "broker-side CPU" adds up every broker and nats-server process (% of one core). In the cluster, fan-in publishers are spread over the three nodes with the subscriber on node 0; QoS 1 subscribers sit on another node than their publisher. Ratios are against the single Breakwater node and against NATS's MQTT listener.`,
    '',
  ];
  for (const sc of ClusterScenarios) {
    const rows = run.results.filter((r) => r.scenario === sc);
    if (rows.length === 0) continue;
    const one = rows.find((r) => r.target === 'breakwater-1')?.receivedPerSec;
    const nats = rows.find((r) => r.target === 'nats-mqtt')?.receivedPerSec;
    out.push(
      `## ${sc === 'fan-in' ? 'fan-in: 100 publishers → 1 subscriber, QoS 0' : '50 QoS 1 pairs, QoS 1 both ways'}`,
      '',
    );
    out.push(
      table(
        [
          'target',
          'received msgs/s',
          'sent msgs/s',
          'broker-side CPU %',
          'vs breakwater-1',
          'vs nats-mqtt',
          'notes',
        ],
        rows.map((r) => [
          r.target,
          fmtNumber(r.receivedPerSec),
          fmtNumber(r.sentPerSec),
          fmtNumber(r.brokerSideCpuPercent),
          r.target === 'breakwater-1' ? '' : fmtRatio(r.receivedPerSec, one),
          r.target === 'nats-mqtt' ? '' : fmtRatio(r.receivedPerSec, nats),
          r.note ?? '',
        ]),
      ),
      '',
    );
  }
  return out.join('\n');
}
