/**
 * A broker in a child process that a game day can restart or crash: the "broker restart" fault.
 *
 * Why a child process: the simulator holds one end of every device connection and the broker the
 * other; one process cannot hold both ends of 15,000 connections under a 20,000-FD limit.
 *
 * The caller gives the command (this package cannot depend on the CLI, which depends on it):
 *
 *   new BrokerProcess({
 *     command: process.execPath,
 *     args: ['/path/to/breakwater.js', 'up', '--mqtt-port', '{port}', '--http-port', '0', '--data-dir', dir],
 *   })
 *
 * `{port}` in the arguments is replaced by the MQTT port: a free one picked at the first start
 * and kept across restarts, so devices come back to the same address.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import net from 'node:net';

export interface BrokerProcessOptions {
  command: string;
  args: string[];
  /** MQTT port; 0 or omitted = a free port chosen at the first start, kept across restarts. */
  port?: number;
  host?: string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** How long start() waits for the port to accept connections (default 30 s). */
  startTimeoutMs?: number;
  /** SIGTERM grace before SIGKILL on stop (default 10 s). */
  stopGraceMs?: number;
}

async function freePort(host: string): Promise<number> {
  const server = net.createServer();
  server.listen(0, host);
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

function accepts(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

export class BrokerProcess {
  readonly options: BrokerProcessOptions;
  readonly host: string;
  #port: number;
  #child: ChildProcess | null = null;
  #stderr = '';
  #starts = 0;

  constructor(options: BrokerProcessOptions) {
    this.options = options;
    this.host = options.host ?? '127.0.0.1';
    this.#port = options.port ?? 0;
  }

  get port(): number {
    return this.#port;
  }

  get pid(): number | null {
    return this.#child?.pid ?? null;
  }

  /** How many times the broker was started (1 after start(), 2 after one restart, …). */
  get starts(): number {
    return this.#starts;
  }

  /** The last 4 KB the broker wrote to stderr (for error messages). */
  get stderr(): string {
    return this.#stderr;
  }

  running(): boolean {
    const c = this.#child;
    return c !== null && c.exitCode === null && c.signalCode === null;
  }

  /** Starts the broker and resolves once its MQTT port accepts connections. */
  async start(): Promise<{ host: string; port: number }> {
    if (this.running()) throw new Error('broker process already running');
    if (this.#port === 0) this.#port = await freePort(this.host);
    const args = this.options.args.map((a) => a.replaceAll('{port}', String(this.#port)));
    const child = spawn(this.options.command, args, {
      cwd: this.options.cwd,
      env: this.options.env ?? process.env,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    this.#child = child;
    this.#starts++;
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (d: string) => {
      this.#stderr = (this.#stderr + d).slice(-4096);
    });
    const deadline = Date.now() + (this.options.startTimeoutMs ?? 30_000);
    while (Date.now() < deadline) {
      if (child.exitCode !== null || child.signalCode !== null) {
        throw new Error(
          `broker exited (${child.exitCode ?? child.signalCode}) before listening: ${this.#stderr.trim().slice(-500)}`,
        );
      }
      if (await accepts(this.host, this.#port)) return { host: this.host, port: this.#port };
      await new Promise((r) => setTimeout(r, 100));
    }
    await this.kill();
    throw new Error(`broker not listening on ${this.#port}: ${this.#stderr.trim().slice(-500)}`);
  }

  /** Graceful stop: SIGTERM, SIGKILL after the grace period. */
  async stop(): Promise<void> {
    await this.#end('SIGTERM');
  }

  /** A crash: SIGKILL, no shutdown work (no DISCONNECTs sent, nothing flushed). */
  async kill(): Promise<void> {
    await this.#end('SIGKILL');
  }

  /**
   * The broker-restart fault: stop (graceful, or `crash: true` for SIGKILL), stay down `downMs`,
   * start again on the same port. Resolves when it accepts connections again.
   */
  async restart(downMs = 0, options: { crash?: boolean } = {}): Promise<void> {
    await (options.crash ? this.kill() : this.stop());
    if (downMs > 0) await new Promise((r) => setTimeout(r, downMs));
    await this.start();
  }

  async #end(signal: NodeJS.Signals): Promise<void> {
    const child = this.#child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, 'exit');
    child.kill(signal);
    const timer = setTimeout(() => child.kill('SIGKILL'), this.options.stopGraceMs ?? 10_000);
    await exited;
    clearTimeout(timer);
  }
}
