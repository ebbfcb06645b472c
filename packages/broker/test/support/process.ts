import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';

/**
 * A child process (mosquitto_sub, a paho script, …) whose stdout is read line by line, so a test
 * can await "subscribed" or "message" lines as events instead of sleeping. Every process is
 * killed when `killAll()` runs (register it with `after`), and each has a hard timeout, so a
 * misbehaving broker can never hang the suite.
 */
export class LineProcess {
  readonly child: ChildProcess;
  readonly lines: string[] = [];
  stderr = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  #waiters: Array<{ match: (line: string) => boolean; resolve: (line: string) => void }> = [];
  #partial = '';

  constructor(command: string, args: readonly string[], hardTimeoutMs: number) {
    this.child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child.stdout?.setEncoding('utf8');
    this.child.stdout?.on('data', (chunk: string) => this.#onData(chunk));
    this.child.stderr?.setEncoding('utf8');
    this.child.stderr?.on('data', (chunk: string) => {
      this.stderr += chunk;
    });
    const child = this.child;
    const timer = setTimeout(() => child.kill('SIGKILL'), hardTimeoutMs);
    this.exited = (async () => {
      const [code, signal] = (await once(child, 'close')) as [number | null, NodeJS.Signals | null];
      clearTimeout(timer);
      if (this.#partial.length > 0) this.#onData('\n'); // a last line without a newline
      return { code, signal };
    })();
    all.add(this);
  }

  #onData(chunk: string): void {
    const parts = (this.#partial + chunk).split('\n');
    this.#partial = parts.pop() ?? '';
    for (const line of parts) {
      this.lines.push(line);
      const i = this.#waiters.findIndex((w) => w.match(line));
      if (i >= 0) this.#waiters.splice(i, 1)[0]?.resolve(line);
    }
  }

  /** The first stdout line (already seen or still to come) that matches; rejects on exit or timeout. */
  waitForLine(match: (line: string) => boolean, timeoutMs = 10_000): Promise<string> {
    const seen = this.lines.find(match);
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const waiter = {
        match,
        resolve: (line: string) => {
          clearTimeout(timer);
          resolve(line);
        },
      };
      const fail = (why: string) => {
        this.#waiters = this.#waiters.filter((w) => w !== waiter);
        reject(
          new Error(`${why}; stdout: ${JSON.stringify(this.lines)}; stderr: ${JSON.stringify(this.stderr)}`),
        );
      };
      const timer = setTimeout(() => fail(`no matching line within ${timeoutMs} ms`), timeoutMs);
      this.#waiters.push(waiter);
      this.exited.then(({ code, signal }) => {
        if (this.#waiters.includes(waiter)) {
          clearTimeout(timer);
          fail(`process exited (code ${code}, signal ${signal}) before a matching line`);
        }
      });
    });
  }

  kill(signal: NodeJS.Signals = 'SIGKILL'): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
  }
}

const all = new Set<LineProcess>();

/** Kill every process still running and wait for them to exit. */
export async function killAll(): Promise<void> {
  const running = [...all];
  all.clear();
  for (const p of running) p.kill();
  await Promise.all(running.map((p) => p.exited));
}

/** Run to completion; resolves with exit code and output (the process is killed at the timeout). */
export async function run(
  command: string,
  args: readonly string[],
  timeoutMs = 10_000,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const p = new LineProcess(command, args, timeoutMs);
  const { code } = await p.exited;
  all.delete(p);
  return { code, stdout: p.lines.join('\n'), stderr: p.stderr };
}
