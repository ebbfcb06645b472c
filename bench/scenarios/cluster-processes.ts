/**
 * The child processes of the cluster benches (cluster-throughput, node-loss): routed nats-servers
 * with JetStream and `breakwater up` from source, each tracked in the load generator's
 * `liveChildren` so an interrupted bench leaves nothing running.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { freePort } from '../brokers.js';
import { liveChildren } from '../loadgen/pool.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const NATS_SERVER = process.env.NATS_SERVER_BIN ?? '/usr/sbin/nats-server';
export const HOST = '127.0.0.1';

export function track(child: ChildProcess): ChildProcess {
  liveChildren.add(child);
  child.once('exit', () => liveChildren.delete(child));
  return child;
}

/**
 * Stops every child still running and waits for each to exit: SIGKILL, or with
 * `BENCH_BROKER_NODE_FLAGS` set (e.g. `--cpu-prof`, whose profile is written at a normal exit)
 * one after the other, last started first, with SIGTERM and SIGKILL after 15 s.
 */
export async function killAll(children: ChildProcess[]): Promise<void> {
  const stop = async (c: ChildProcess, signal: NodeJS.Signals) => {
    if (c.exitCode !== null || c.signalCode !== null) return;
    const exited = new Promise((r) => c.once('exit', r));
    c.kill(signal);
    const t = signal === 'SIGKILL' ? null : setTimeout(() => c.kill('SIGKILL'), 60_000);
    await exited;
    if (t !== null) clearTimeout(t);
  };
  if (BROKER_NODE_FLAGS.length === 0) {
    await Promise.all(children.map((c) => stop(c, 'SIGKILL')));
    return;
  }
  // Gently, last started first: the brokers leave while their NATS servers still answer.
  for (const c of [...children].reverse()) await stop(c, 'SIGTERM');
}

/** Extra Node flags for the broker processes (profiling: `--cpu-prof --cpu-prof-dir=…`). */
const BROKER_NODE_FLAGS = (process.env.BENCH_BROKER_NODE_FLAGS ?? '').split(' ').filter(Boolean);

export function waitPort(port: number, ms: number): Promise<void> {
  const until = Date.now() + ms;
  return new Promise((resolve, reject) => {
    const attempt = () => {
      const s = net.connect({ host: HOST, port });
      s.once('connect', () => {
        s.destroy();
        resolve();
      });
      s.once('error', () => {
        if (Date.now() > until) reject(new Error(`port ${port} did not open within ${ms} ms`));
        else setTimeout(attempt, 100);
      });
    };
    attempt();
  });
}

/**
 * `n` nats-servers with JetStream under `dir`, routed into one cluster when n > 1, optionally
 * with an MQTT listener (the nats-mqtt peer). Resolves once every client port is open and the
 * routes had time to form and JetStream to elect its meta leader.
 */
export async function startNatsServers(
  dir: string,
  n: number,
  mqttPort?: number,
): Promise<{ urls: string[]; children: ChildProcess[] }> {
  const ports = await Promise.all(Array.from({ length: n }, () => freePort()));
  const routePorts = await Promise.all(Array.from({ length: n }, () => freePort()));
  const children: ChildProcess[] = [];
  for (let i = 0; i < n; i++) {
    const conf = join(dir, `nats-${i}.conf`);
    const lines = [
      `server_name: bench-${i}`,
      `listen: ${HOST}:${ports[i]}`,
      `jetstream { store_dir: "${join(dir, `js-${i}`)}" }`,
    ];
    if (n > 1) {
      const routes = routePorts.map((p) => `nats-route://${HOST}:${p}`).join(', ');
      lines.push(`cluster { name: bench, listen: ${HOST}:${routePorts[i]}, routes: [${routes}] }`);
    }
    if (mqttPort !== undefined) lines.push(`mqtt { listen: ${HOST}:${mqttPort} }`);
    writeFileSync(conf, `${lines.join('\n')}\n`);
    children.push(track(spawn(NATS_SERVER, ['-c', conf], { stdio: 'ignore' })));
  }
  await Promise.all(ports.map((p) => waitPort(p, 15_000)));
  if (n > 1) await sleep(3000);
  return { urls: ports.map((p) => `nats://${HOST}:${p}`), children };
}

/** `breakwater up --config <file>` from source, with `config` written to `file` as JSON. */
export function spawnBreakwaterUp(file: string, config: object): ChildProcess {
  writeFileSync(file, JSON.stringify(config));
  const cli = join(ROOT, 'packages/cli/bin/breakwater.js');
  return track(
    spawn(
      process.execPath,
      [...BROKER_NODE_FLAGS, '--conditions=source', '--import', 'tsx', cli, 'up', '--config', file],
      {
        stdio: 'ignore',
        cwd: ROOT,
      },
    ),
  );
}
