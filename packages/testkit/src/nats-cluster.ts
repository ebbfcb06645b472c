/**
 * A routed cluster of real nats-servers with JetStream (issue 15 tests, game days, benchmarks):
 * each server on free ports with its own temporary store directory, torn down (and the
 * directories removed) by `stop()`. Servers can be killed (-9) and started again by index.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { isReachable } from './services.js';

export const NATS_SERVER_BIN = process.env.NATS_SERVER_BIN ?? '/usr/sbin/nats-server';

export interface NatsServerHandle {
  name: string;
  clientPort: number;
  clusterPort: number;
  url: string;
  storeDir: string;
  process: ChildProcess | null;
}

export interface NatsClusterHandle {
  servers: NatsServerHandle[];
  /** Every server's client URL. */
  urls: string[];
  kill(index: number, signal?: NodeJS.Signals): Promise<void>;
  start(index: number): Promise<void>;
  stop(): Promise<void>;
}

/** Whether nats-server is installed; skips `t` (or fails under CI=true) when it is not. */
export function requireNatsServer(t: TestContext): boolean {
  if (existsSync(NATS_SERVER_BIN)) return true;
  const msg = `nats-server is not installed at ${NATS_SERVER_BIN}`;
  if (process.env.CI === 'true') throw new Error(`${msg} (CI=true: apt-get install nats-server)`);
  t.skip(`${msg}; install it (apt-get install nats-server) to run this test`);
  return false;
}

export async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

/** Starts `size` nats-servers routed into one cluster with JetStream, and waits for their routes. */
export async function startNatsCluster(size = 3): Promise<NatsClusterHandle> {
  const servers: NatsServerHandle[] = [];
  for (let i = 0; i < size; i++) {
    const clientPort = await freePort();
    const clusterPort = await freePort();
    servers.push({
      name: `bw-test-${i}`,
      clientPort,
      clusterPort,
      url: `nats://127.0.0.1:${clientPort}`,
      storeDir: mkdtempSync(join(tmpdir(), 'bw-nats-')),
      process: null,
    });
  }
  const routes = servers.map((s) => `nats://127.0.0.1:${s.clusterPort}`).join(',');
  const startOne = async (s: NatsServerHandle) => {
    const args = ['-a', '127.0.0.1', '-p', String(s.clientPort), '-js', '-sd', s.storeDir, '-n', s.name];
    if (size > 1)
      args.push(
        '--cluster_name',
        'bw-test',
        '--cluster',
        `nats://127.0.0.1:${s.clusterPort}`,
        '--routes',
        routes,
      );
    s.process = spawn(NATS_SERVER_BIN, args, { stdio: 'ignore' });
    for (let i = 0; i < 100 && !(await isReachable('127.0.0.1', s.clientPort, 200)); i++) {
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  await Promise.all(servers.map(startOne));
  if (size > 1) await waitForJetStream(servers[0]!.clientPort);
  return {
    servers,
    urls: servers.map((s) => s.url),
    async kill(index, signal = 'SIGKILL') {
      const s = servers[index]!;
      const p = s.process;
      if (p === null || p.exitCode !== null) return;
      const exited = new Promise((r) => p.once('exit', r));
      p.kill(signal);
      await exited;
      s.process = null;
    },
    async start(index) {
      await startOne(servers[index]!);
    },
    async stop() {
      await Promise.all(
        servers.map(async (s) => {
          const p = s.process;
          if (p !== null && p.exitCode === null) {
            const exited = new Promise((r) => p.once('exit', r));
            p.kill('SIGKILL');
            await exited;
          }
          rmSync(s.storeDir, { recursive: true, force: true });
        }),
      );
    },
  };
}

/** A JetStream meta leader is elected a moment after the routes form: poll its monitoring-free way (a raw INFO + $JS.API.INFO request). */
async function waitForJetStream(port: number): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if (await jetStreamAnswers(port)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('JetStream did not elect a leader within 10 s');
}

function jetStreamAnswers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    let buf = '';
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(1000, () => done(false));
    s.on('error', () => done(false));
    s.on('data', (d) => {
      buf += d.toString();
      if (buf.startsWith('INFO') && !buf.includes('SUB _R')) {
        s.write(
          'CONNECT {"verbose":false,"headers":true,"no_responders":true}\r\nSUB _R.x 1\r\nPUB $JS.API.INFO _R.x 0\r\n\r\n',
        );
        buf += 'SUB _R';
      }
      const m = buf.indexOf('MSG _R.x');
      if (m !== -1) {
        const payloadStart = buf.indexOf('\r\n', m) + 2;
        const end = buf.indexOf('\r\n', payloadStart);
        if (end !== -1) done(!buf.slice(payloadStart, end).includes('"error"'));
      }
      if (buf.includes('HMSG _R.x')) done(false); // 503 no responders
    });
  });
}
