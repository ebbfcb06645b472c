/**
 * The coordinator's handle on the simulated fleet: forks device-worker.ts processes (each holds a
 * share of the devices, well under the 20,000 FDs a process may open), talks to them over IPC and
 * tears them down (close request, SIGKILL after a grace period). Children are registered in
 * loadgen's `liveChildren`, so bench/run.ts kills them whatever ends the run.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { liveChildren } from '../loadgen/pool.js';
import type { DeviceSpec, DeviceStats, DeviceTimeline, Envelope, FleetConfig, Request } from './protocol.js';

const WORKER = fileURLToPath(new URL('./device-worker.ts', import.meta.url));

class DeviceProcess {
  readonly child: ChildProcess;
  #seq = 0;
  readonly #pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();

  constructor() {
    // The coordinator runs under `--import tsx`; fork() passes the same execArgv to the child.
    this.child = fork(WORKER, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    liveChildren.add(this.child);
    this.child.on('message', (msg: Envelope<unknown>) => {
      const p = this.#pending.get(msg.seq);
      if (!p) return;
      this.#pending.delete(msg.seq);
      if (msg.ok) p.resolve(msg.value);
      else p.reject(new Error(msg.error));
    });
    this.child.on('exit', (code, signal) => {
      liveChildren.delete(this.child);
      for (const p of this.#pending.values())
        p.reject(new Error(`device process exited (${code ?? signal})`));
      this.#pending.clear();
    });
  }

  request<T>(req: Request, timeoutMs = 30_000): Promise<T> {
    const seq = ++this.#seq;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(seq);
        reject(new Error(`device process did not answer '${req.op}' within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#pending.set(seq, {
        resolve: (v) => {
          clearTimeout(timer);
          resolve(v as T);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      this.child.send({ seq, req });
    });
  }

  async close(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = once(this.child, 'exit');
    this.request({ op: 'close' }, 3000).catch(() => {});
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  }
}

export type FleetOptions = Omit<FleetConfig, 'localAddress'>;

/** Totals over all device processes. */
export interface FleetStats extends DeviceStats {}

export const EMPTY_STATS: FleetStats = {
  attempts: 0,
  connackOk: 0,
  refused: {},
  noConnack: 0,
  errors: {},
  connected: 0,
  serverDisconnects: 0,
  hinted: 0,
  authStopped: 0,
};

function sumRecords(records: readonly Record<string, number>[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of records) for (const [k, v] of Object.entries(r)) out[k] = (out[k] ?? 0) + v;
  return out;
}

export class Fleet {
  readonly #procs: DeviceProcess[];

  constructor(processes: number) {
    this.#procs = Array.from({ length: processes }, () => new DeviceProcess());
  }

  /** Process i connects from 127.0.0.(i + 1), with its own random seed. */
  async configure(options: FleetOptions): Promise<void> {
    await Promise.all(
      this.#procs.map((p, i) =>
        p.request({
          op: 'configure',
          config: { ...options, localAddress: `127.0.0.${i + 1}`, seed: options.seed * 1000 + i },
        }),
      ),
    );
  }

  /** Boots these devices now, dealt round-robin; first attempts spread over `spreadMs`. */
  async start(devices: readonly DeviceSpec[], spreadMs: number): Promise<void> {
    const n = this.#procs.length;
    await Promise.all(
      this.#procs.map((p, i) =>
        p.request<number>({ op: 'start', devices: devices.filter((_, k) => k % n === i), spreadMs }),
      ),
    );
  }

  async stats(): Promise<FleetStats> {
    const all = await Promise.all(this.#procs.map((p) => p.request<DeviceStats>({ op: 'stats' })));
    const sum = (f: (s: DeviceStats) => number) => all.reduce((a, s) => a + f(s), 0);
    return {
      attempts: sum((s) => s.attempts),
      connackOk: sum((s) => s.connackOk),
      refused: sumRecords(all.map((s) => s.refused)),
      noConnack: sum((s) => s.noConnack),
      errors: sumRecords(all.map((s) => s.errors)),
      connected: sum((s) => s.connected),
      serverDisconnects: sum((s) => s.serverDisconnects),
      hinted: sum((s) => s.hinted),
      authStopped: sum((s) => s.authStopped),
    };
  }

  async timelines(): Promise<DeviceTimeline[]> {
    const parts = await Promise.all(
      this.#procs.map((p) => p.request<DeviceTimeline[]>({ op: 'timelines' }, 60_000)),
    );
    return parts.flat();
  }

  async close(): Promise<void> {
    await Promise.all(this.#procs.map((p) => p.close()));
  }
}
