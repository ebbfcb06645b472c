/**
 * Game day "node loss" (issue 15): a fleet on a 3-node cluster loses one node (kill -9) and must
 * come back on the survivors.
 *
 * 3 routed nats-servers (JetStream, R3), 3 × `breakwater up --cluster`, a simulated fleet
 * (packages/gameday Fleet, the device SDK's "fleet" reconnect policy, real time) of `devices`
 * spread over the three nodes; each device has the three addresses and tries the next one after a
 * failure, as a client with a server list (or a load balancer with health checks) does. The FD
 * limit is 20,000 per process, so the fleet (one socket per device) and each broker fit; the three
 * brokers share the fleet.
 *
 * Reported: time to 99 % connected at start, and after the kill (from the kill); connection
 * attempts per second (peak); the cluster's backend load — JetStream ownership claims per second
 * (peak, from the survivors' /metrics) and JetStream errors; where the fleet ended up.
 *
 *   npm run bench -- node-loss [--devices 12000]
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Fleet } from '@breakwater/gameday';
import { freePort } from '../brokers.js';
import { fmtNumber, type MachineInfo, machineMarkdown, table } from '../report.js';
import { HOST, killAll, spawnBreakwaterUp, startNatsServers, waitPort } from './cluster-processes.js';

/** The device firmware: the SDK's fleet policy (jittered backoff) or fixed 1-s retries. */
export const NodeLossFirmwares = ['fleet', 'naive'] as const;
export type NodeLossFirmware = (typeof NodeLossFirmwares)[number];

export interface NodeLossOptions {
  devices: number;
  firmware: NodeLossFirmware;
  log: (line: string) => void;
}

interface Sample {
  t: number;
  connected: number;
  attempts: number;
  /** Claims/s summed over live nodes (rate since the previous sample). */
  claimsPerSec: number;
  jetstreamErrors: number;
  perNode: number[];
}

export interface NodeLossResult {
  devices: number;
  firmware: NodeLossFirmware;
  startTo99S: number | null;
  killAtS: number;
  afterKillTo99S: number | null;
  droppedByKill: number;
  peakAttemptsPerSec: number;
  peakClaimsPerSec: number;
  jetstreamErrors: number;
  finalPerNode: number[];
  samples: Sample[];
}

async function metrics(httpPort: number): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  try {
    const text = await (
      await fetch(`http://${HOST}:${httpPort}/metrics`, { signal: AbortSignal.timeout(2000) })
    ).text();
    for (const line of text.split('\n')) {
      if (line.startsWith('#') || line === '') continue;
      const name = line.slice(0, line.search(/[{ ]/));
      out.set(name, (out.get(name) ?? 0) + Number(line.slice(line.lastIndexOf(' ') + 1)));
    }
  } catch {
    // a dead node: no metrics
  }
  return out;
}

export async function runNodeLoss(opts: NodeLossOptions): Promise<NodeLossResult> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-node-loss-'));
  const children: ChildProcess[] = [];
  let fleet: Fleet | null = null;
  try {
    // NATS: 3 routed servers with JetStream.
    const nats = await startNatsServers(dir, 3);
    children.push(...nats.children);
    // Brokers.
    const mqttPorts = await Promise.all([0, 1, 2].map(() => freePort()));
    const httpPorts = await Promise.all([0, 1, 2].map(() => freePort()));
    const brokers: ChildProcess[] = [];
    for (let i = 0; i < 3; i++) {
      const child = spawnBreakwaterUp(join(dir, `node-${i}.yaml`), {
        listeners: [{ name: 'mqtt', type: 'tcp', host: HOST, port: mqttPorts[i] }],
        http: { enabled: true, host: HOST, port: httpPorts[i] },
        control: { enabled: false },
        dataDir: join(dir, `node-${i}`),
        log: { level: 'warn', format: 'json' },
        admission: { global: { maxConnections: 18_000 } },
        cluster: { servers: [nats.urls[i]!], replicas: 3, advertise: `${HOST}:${mqttPorts[i]}` },
      });
      brokers.push(child);
      children.push(child);
    }
    await Promise.all(mqttPorts.map((p) => waitPort(p, 120_000)));
    opts.log(`3 nodes up; starting ${opts.devices} devices`);

    fleet = new Fleet({
      target: { host: HOST, port: mqttPorts[0]! },
      targets: mqttPorts.map((port) => ({ host: HOST, port })),
      devices: opts.devices,
      policy: opts.firmware,
      rampPerSec: 500,
      maxConnecting: 1000,
      keepaliveSec: 60,
      protocolVersion: 5,
    });
    const started = Date.now();
    const samples: Sample[] = [];
    let alive = [true, true, true];
    // Per node, so a dead node's counter leaving the sum is not read as a rate.
    const lastClaims = [0, 0, 0];
    let lastAt = started;
    const sample = async () => {
      const ms = await Promise.all(
        httpPorts.map((p, i) => (alive[i] ? metrics(p) : Promise.resolve(new Map<string, number>()))),
      );
      let newClaims = 0;
      for (const [i, m] of ms.entries()) {
        if (!alive[i]) continue;
        const c = m.get('breakwater_cluster_claims_total') ?? lastClaims[i]!;
        newClaims += c - lastClaims[i]!;
        lastClaims[i] = c;
      }
      const now = Date.now();
      const st = fleet!.stats();
      samples.push({
        t: (now - started) / 1000,
        connected: st.connected,
        attempts: st.attempts,
        claimsPerSec: Math.max(0, newClaims / ((now - lastAt) / 1000)),
        jetstreamErrors: ms.reduce(
          (s, m) => s + (m.get('breakwater_cluster_jetstream_errors_total') ?? 0),
          0,
        ),
        perNode: ms.map((m) => m.get('breakwater_connections') ?? 0),
      });
      lastAt = now;
    };
    const sampler = setInterval(() => void sample(), 1000);
    await fleet.start();
    const target99 = Math.ceil(opts.devices * 0.99);
    await fleet.waitFor((s) => s.connected >= target99, 300_000);
    const startTo99S = (Date.now() - started) / 1000;
    opts.log(`99 % connected after ${startTo99S.toFixed(1)} s`);
    await sleep(10_000); // steady state
    const beforeKill = fleet.stats().connected;
    const killAt = Date.now();
    // Node 2 dies: kill -9.
    alive = [true, true, false];
    brokers[2]!.kill('SIGKILL');
    await sleep(1000);
    const droppedByKill = beforeKill - fleet.stats().connected;
    opts.log(`node 2 killed; ${droppedByKill} devices dropped`);
    let afterKillTo99S: number | null = null;
    try {
      await fleet.waitFor((s) => s.connected >= target99, 600_000);
      afterKillTo99S = (Date.now() - killAt) / 1000;
      opts.log(`back to 99 % after ${afterKillTo99S.toFixed(1)} s`);
    } catch {
      opts.log('did not get back to 99 %');
    }
    await sleep(5000);
    await sample();
    clearInterval(sampler);
    let peakAttempts = 0;
    for (let i = 1; i < samples.length; i++) {
      const dt = samples[i]!.t - samples[i - 1]!.t;
      if (dt > 0)
        peakAttempts = Math.max(peakAttempts, (samples[i]!.attempts - samples[i - 1]!.attempts) / dt);
    }
    const afterKill = samples.filter((s) => s.t >= (killAt - started) / 1000 + 1);
    return {
      devices: opts.devices,
      firmware: opts.firmware,
      startTo99S,
      killAtS: (killAt - started) / 1000,
      afterKillTo99S,
      droppedByKill,
      peakAttemptsPerSec: peakAttempts,
      peakClaimsPerSec: Math.max(0, ...afterKill.map((s) => s.claimsPerSec)),
      jetstreamErrors: samples.at(-1)?.jetstreamErrors ?? 0,
      finalPerNode: samples.at(-1)?.perNode ?? [],
      samples,
    };
  } finally {
    await fleet?.stop().catch(() => {});
    await killAll(children);
    rmSync(dir, { recursive: true, force: true });
  }
}

const FIRMWARE_TEXT: Record<NodeLossFirmware, string> = {
  fleet: "the device SDK's fleet reconnect policy (first retry 5-15 s, then 30-120 s)",
  naive: 'fixed 1-s retries (firmware nobody can change)',
};

export function nodeLossMarkdown(machine: MachineInfo, results: NodeLossResult[], git: string): string {
  const lines = [
    '# Game day: node loss (issue 15)',
    '',
    machineMarkdown(machine),
    `- git ${git}`,
    '- 3 routed nats-servers 2.9.10 (JetStream, R3) and 3 × `breakwater up --cluster` (from source, tsx, default protections) on this machine; a simulated fleet (packages/gameday `Fleet`, real time) in one process, each device with the three node addresses, moving to the next after a failure; nothing pre-seeded. One run per firmware, each on a fresh cluster.',
    '- At steady state node 2 is killed (SIGKILL). No auth backend: the backend under load is JetStream (one ownership claim, a KV write, per CONNECT).',
    '',
    table(
      [
        'firmware',
        'devices',
        'start → 99 % (s)',
        'dropped by the kill',
        'kill → 99 % again (s)',
        'peak attempts/s',
        'peak claims/s after the kill',
        'JetStream errors',
        'final connections per node',
      ],
      results.map((r) => [
        FIRMWARE_TEXT[r.firmware ?? 'fleet'],
        fmtNumber(r.devices),
        r.startTo99S === null ? 'n/a' : r.startTo99S.toFixed(1),
        fmtNumber(r.droppedByKill),
        r.afterKillTo99S === null ? 'not reached' : r.afterKillTo99S.toFixed(1),
        fmtNumber(r.peakAttemptsPerSec),
        fmtNumber(r.peakClaimsPerSec),
        fmtNumber(r.jetstreamErrors),
        r.finalPerNode.map((n) => fmtNumber(n)).join(' / '),
      ]),
    ),
    '',
  ];
  for (const r of results) {
    const every = Math.max(1, Math.round(r.samples.length / 40));
    lines.push(
      `## Timeline, ${r.firmware ?? 'fleet'} firmware (every few seconds; node 2 killed at ${r.killAtS.toFixed(0)} s)`,
      '',
      table(
        ['t (s)', 'connected', 'attempts (total)', 'claims/s', 'per node'],
        r.samples
          .filter((_, i) => i % every === 0)
          .map((s) => [
            s.t.toFixed(0),
            fmtNumber(s.connected),
            fmtNumber(s.attempts),
            fmtNumber(s.claimsPerSec),
            s.perNode.map((n) => fmtNumber(n)).join(' / '),
          ]),
      ),
      '',
    );
  }
  return lines.join('\n');
}
