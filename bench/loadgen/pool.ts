/**
 * The coordinator's handle on the load-generator processes: forks them, sends requests over IPC,
 * and tears them down deterministically (close request, then SIGKILL after a grace period).
 */
import { type ChildProcess, fork } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { Histogram } from './histogram.js';
import type { ClientSpec, Envelope, LatencyReport, Request, SetupResult, Stats } from './protocol.js';

const WORKER = fileURLToPath(new URL('./worker.ts', import.meta.url));

/** Every live child of this process, so an abort can still kill them all. */
export const liveChildren = new Set<ChildProcess>();

class Worker {
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
        p.reject(new Error(`load generator exited (${code ?? signal})`));
      this.#pending.clear();
    });
  }

  request<T>(req: Request, timeoutMs = 60_000): Promise<T> {
    const seq = ++this.#seq;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(seq);
        reject(new Error(`load generator did not answer '${req.op}' within ${timeoutMs} ms`));
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

export interface SetupOptions {
  host: string;
  port: number;
  keepalive: number;
  payloadSize: number;
  concurrency: number;
  qos1Window: number;
  deadlineMs: number;
}

export class WorkerPool {
  readonly #workers: Worker[];

  constructor(count: number) {
    this.#workers = Array.from({ length: count }, () => new Worker());
  }

  get size(): number {
    return this.#workers.length;
  }

  /** `assignment[i]` are the clients worker i holds. */
  async setup(assignment: ClientSpec[][], options: SetupOptions): Promise<SetupResult> {
    const results = await Promise.all(
      this.#workers.map((w, i) =>
        w.request<SetupResult>(
          { op: 'setup', clients: assignment[i] ?? [], ...options },
          options.deadlineMs + 10_000,
        ),
      ),
    );
    return {
      connected: results.reduce((a, r) => a + r.connected, 0),
      failed: results.reduce((a, r) => a + r.failed, 0),
      firstError: results.find((r) => r.firstError !== null)?.firstError ?? null,
    };
  }

  async all(req: Request): Promise<void> {
    await Promise.all(this.#workers.map((w) => w.request(req)));
  }

  /** Per-worker fixed rates (messages/s); workers without publishers get 0. */
  async rate(perWorker: number[]): Promise<void> {
    await Promise.all(this.#workers.map((w, i) => w.request({ op: 'rate', perSecond: perWorker[i] ?? 0 })));
  }

  stats(): Promise<Stats[]> {
    return Promise.all(this.#workers.map((w) => w.request<Stats>({ op: 'stats' })));
  }

  async latency(): Promise<Histogram> {
    const h = new Histogram();
    const reports = await Promise.all(this.#workers.map((w) => w.request<LatencyReport>({ op: 'latency' })));
    for (const r of reports) h.addSparse(r.histogram);
    return h;
  }

  async close(): Promise<void> {
    await Promise.all(this.#workers.map((w) => w.close()));
  }
}
