/**
 * Starts each broker under test as its own child process on a free loopback port, and stops it.
 * Mosquitto gets a private config file (the system Mosquitto on 1883 is never touched), Aedes and
 * the Breakwater fallback run from bench/peers/, Breakwater preferably through `breakwater up`.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { liveChildren } from './loadgen/pool.js';

export const BrokerNames = ['breakwater', 'mosquitto', 'aedes'] as const;
export type BrokerName = (typeof BrokerNames)[number];

/**
 * How Breakwater is launched: `cli` = packages/cli/bin/breakwater.js (needs the dist/ build),
 * `cli-source` = the same CLI main() from TypeScript source, `script` = the fallback in
 * bench/peers/breakwater-server.ts (broker core + MemoryStorage on net). `auto` tries the CLI
 * (built, else from source) and falls back to the script.
 */
export type BreakwaterLaunch = 'auto' | 'cli' | 'cli-source' | 'script';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const MOSQUITTO = '/usr/sbin/mosquitto';
const HOST = '127.0.0.1';
const CLK_TCK = 100; // getconf CLK_TCK on Linux x86-64/arm64

export interface RunningBroker {
  readonly name: BrokerName;
  readonly version: string;
  /** The command line that started it. */
  readonly launch: string;
  readonly host: string;
  readonly port: number;
  readonly pid: number;
  /** Resident set size of the broker process, KiB (VmRSS). */
  rssKiB(): number;
  /** CPU time the broker process has used, milliseconds (utime + stime). */
  cpuMs(): number;
  alive(): boolean;
  /**
   * Node.js brokers started with `gcOnSignal`: a full garbage collection in the broker, then its
   * memory report (bench/peers/gc-on-signal.mjs). Null for the others (Mosquitto has no
   * collector, and needs none).
   */
  collectGarbage(): Promise<NodeMemoryReport | null>;
  stop(): Promise<void>;
}

/** What bench/peers/gc-on-signal.mjs reports after a full GC. */
export interface NodeMemoryReport {
  rssKiB: number;
  /** Live bytes in the V8 heap. */
  heapUsed: number;
  /** Resident bytes of the V8 heap's pages (live, garbage and free). */
  heapResident: number;
  /** Resident bytes per V8 heap space (`new_space` is the young generation). */
  spaces?: Record<string, number>;
}

async function collectGarbage(child: ChildProcess, reportFile: string): Promise<NodeMemoryReport | null> {
  rmSync(reportFile, { force: true });
  if (!child.kill('SIGUSR2')) return null;
  for (let i = 0; i < 50; i++) {
    await new Promise((r) => setTimeout(r, 100));
    if (existsSync(reportFile)) {
      try {
        return JSON.parse(readFileSync(reportFile, 'utf8')) as NodeMemoryReport;
      } catch {
        // Being written: read again.
      }
    }
  }
  return null;
}

export async function freePort(): Promise<number> {
  const server = net.createServer();
  server.listen(0, HOST);
  await once(server, 'listening');
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

export function readRssKiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
  if (!m) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]);
}

export function readCpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLK_TCK;
}

function connectOnce(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: HOST, port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

async function waitListening(
  child: ChildProcess,
  port: number,
  timeoutMs: number,
  stderr: () => string,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(
        `exited (${child.exitCode ?? child.signalCode}) before listening: ${stderr().trim().slice(-500)}`,
      );
    }
    if (await connectOnce(port)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`not listening on ${port} after ${timeoutMs} ms: ${stderr().trim().slice(-500)}`);
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}

async function launch(
  name: BrokerName,
  version: string,
  command: string,
  args: string[],
  port: number,
  cleanup: () => void,
  memoryReport: string | null = null,
): Promise<RunningBroker> {
  const env = memoryReport === null ? process.env : { ...process.env, BENCH_MEMORY_REPORT: memoryReport };
  const child = spawn(command, args, { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'], env });
  liveChildren.add(child);
  child.once('exit', () => liveChildren.delete(child));
  let stderr = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (d: string) => {
    stderr = (stderr + d).slice(-4000);
  });
  try {
    // 60 s: starting the CLI from TypeScript source on a loaded 2-core host took over 20 s.
    await waitListening(child, port, 60_000, () => stderr);
  } catch (err) {
    await stopChild(child);
    throw new Error(`${name}: ${(err as Error).message}`);
  }
  const pid = child.pid as number;
  return {
    name,
    version,
    launch: [command, ...args].join(' ').replace(ROOT, ''),
    host: HOST,
    port,
    pid,
    rssKiB: () => readRssKiB(pid),
    cpuMs: () => readCpuMs(pid),
    alive: () => child.exitCode === null && child.signalCode === null,
    collectGarbage: () =>
      memoryReport === null ? Promise.resolve(null) : collectGarbage(child, memoryReport),
    async stop() {
      await stopChild(child);
      cleanup();
    },
  };
}

function mosquittoVersion(): string {
  try {
    execFileSync(MOSQUITTO, ['-h'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    // `mosquitto -h` prints its usage and exits 3.
    const out = `${(err as { stdout?: string }).stdout ?? ''}`;
    const m = /mosquitto version (\S+)/.exec(out);
    if (m) return m[1] as string;
  }
  return 'unknown';
}

function packageVersion(dir: string): string {
  return (JSON.parse(readFileSync(join(ROOT, dir, 'package.json'), 'utf8')) as { version: string }).version;
}

function breakwaterVersion(): string {
  let sha = 'unknown';
  try {
    sha = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim();
  } catch {}
  return `${packageVersion('packages/broker')} (git ${sha})`;
}

const NODE_TSX = ['--conditions=source', '--import', 'tsx'];

function newestMtime(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestMtime(p) : statSync(p).mtimeMs);
  }
  return newest;
}

/**
 * True when every package's dist/ is at least as new as its src/: a stale build would benchmark
 * old code, so `auto` then runs the CLI from source instead.
 */
function distIsFresh(packages: readonly string[]): boolean {
  for (const pkg of packages) {
    const dist = join(ROOT, pkg, 'dist/index.js');
    if (!existsSync(dist)) return false;
    if (statSync(dist).mtimeMs < newestMtime(join(ROOT, pkg, 'src'))) return false;
  }
  return true;
}

export interface StartOptions {
  /**
   * A Breakwater config file's content (YAML), passed to `breakwater up --config` (the CLI
   * launchers only; the script fallback has no admission or guard to configure).
   */
  readonly breakwaterConfig?: string;
  /** Breakwater's HTTP port (/metrics); default 0 (any free port, not reported). */
  readonly httpPort?: number;
  /**
   * Node.js brokers: start with --expose-gc and bench/peers/gc-on-signal.mjs preloaded, so that
   * `collectGarbage()` works (the idle-memory bench).
   */
  readonly gcOnSignal?: boolean;
}

/**
 * Benchmarks that measure raw connection handling turn Breakwater's admission protections off
 * (handshake caps, overload refusal, flapping, tarpit), so the row shows the connection path alone;
 * `breakwater-default` runs the defaults (since issue 11 no fixed rate: refusals only under load).
 */
export const ADMISSION_OFF_CONFIG = [
  'admission:',
  '  global: { rate: 0, maxHandshakes: 0, maxConnections: 0 }',
  '  listenerDefaults: { rate: 0, maxHandshakes: 0, maxConnections: 0 }',
  '  slowStart: { enabled: false }',
  '  overload: { enabled: false }',
  '  tarpit: { enabled: false }',
  '  flapping:',
  '    clientId: { maxShortSessions: 0 }',
  '',
].join('\n');

export async function startBroker(
  name: BrokerName,
  breakwater: BreakwaterLaunch = 'auto',
  options: StartOptions = {},
): Promise<RunningBroker> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), `bench-${name}-`));
  const gc = options.gcOnSignal === true ? join(dir, 'memory-report.json') : null;
  const gcFlags = gc
    ? ['--expose-gc', '--import', pathToFileURL(join(ROOT, 'bench/peers/gc-on-signal.mjs')).href]
    : [];
  const cleanup = () => rmSync(dir, { recursive: true, force: true });
  switch (name) {
    case 'mosquitto': {
      const conf = join(dir, 'mosquitto.conf');
      writeFileSync(
        conf,
        [
          `listener ${port} ${HOST}`,
          'allow_anonymous true',
          // Queue deep enough that a flood measures throughput rather than Mosquitto's drop policy.
          'max_queued_messages 1000000',
          'max_connections -1',
          'persistence false',
          // Nagle's algorithm off, as the Node brokers have it (latency at fixed load).
          'set_tcp_nodelay true',
          'log_dest stderr',
          'log_type error',
          // Running as root, Mosquitto would switch to the mosquitto user; stay as we are.
          ...(process.getuid?.() === 0 ? ['user root'] : []),
          '',
        ].join('\n'),
      );
      return launch(name, mosquittoVersion(), MOSQUITTO, ['-c', conf], port, cleanup);
    }
    case 'aedes':
      return launch(
        name,
        packageVersion('node_modules/aedes'),
        process.execPath,
        [...gcFlags, ...NODE_TSX, join(ROOT, 'bench/peers/aedes-server.ts'), String(port)],
        port,
        cleanup,
        gc,
      );
    case 'breakwater': {
      const version = breakwaterVersion();
      const http = String(options.httpPort ?? 0);
      const upArgs = ['up', '--mqtt-port', String(port), '--ws-port', '0', '--http-port', http];
      upArgs.push('--data-dir', join(dir, 'data'), '--log-level', 'warn');
      if (options.breakwaterConfig !== undefined) {
        const file = join(dir, 'breakwater.yaml');
        writeFileSync(file, options.breakwaterConfig);
        upArgs.push('--config', file);
      }
      const candidates: [BreakwaterLaunch, string[]][] = [];
      const cliBuilt = distIsFresh(['packages/cli', 'packages/broker']);
      if (breakwater === 'cli' || (breakwater === 'auto' && cliBuilt)) {
        candidates.push(['cli', [...gcFlags, join(ROOT, 'packages/cli/bin/breakwater.js'), ...upArgs]]);
      }
      if (breakwater === 'cli-source' || (breakwater === 'auto' && !cliBuilt)) {
        candidates.push([
          'cli-source',
          [...gcFlags, ...NODE_TSX, join(ROOT, 'bench/peers/breakwater-cli.ts'), ...upArgs],
        ]);
      }
      if (breakwater === 'script' || breakwater === 'auto') {
        candidates.push([
          'script',
          [...gcFlags, ...NODE_TSX, join(ROOT, 'bench/peers/breakwater-server.ts'), String(port)],
        ]);
      }
      // Extra Node.js flags for Breakwater alone (a profiler, V8 heap sizing), as for cluster nodes.
      const nodeArgs = (process.env.BENCH_BROKER_NODE_FLAGS ?? '').split(/\s+/).filter(Boolean);
      let lastError: Error | null = null;
      for (const [mode, args] of candidates) {
        try {
          return await launch(name, version, process.execPath, [...nodeArgs, ...args], port, cleanup, gc);
        } catch (err) {
          lastError = err as Error;
          process.stderr.write(`bench: breakwater via ${mode} did not start (${lastError.message})\n`);
        }
      }
      throw lastError ?? new Error('breakwater: no launcher');
    }
  }
}
