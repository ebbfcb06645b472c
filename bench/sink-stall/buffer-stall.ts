/**
 * Focused reproduction of the sink-outage stall: drives the integration's BufferStore the way the
 * engine does while its sink is down (one append transaction per event-loop turn at RATE msg/s, the
 * sink worker's read of the head batch on every retry, the once-a-second gauges) and records the
 * event-loop delay, each SQLite call's duration and the -wal file size.
 *
 *   node --conditions=source --import tsx bench/sink-stall/buffer-stall.ts [seconds] [rate] [dir]
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { BufferStore, type Enqueue } from '../../packages/integration/src/buffer/store.js';

const seconds = Number(process.argv[2] ?? 60);
const rate = Number(process.argv[3] ?? 2000);
const dir = mkdtempSync(join(process.argv[4] ?? tmpdir(), 'bw-stall-'));
const file = join(dir, 'integration.db');
const store = new BufferStore({ file, maxDeadLetters: 1000 });
store.setLimits('telemetry', { maxMessages: 5_000_000, maxBytes: 10 * 2 ** 30, overflow: 'drop-oldest' });

const h = monitorEventLoopDelay({ resolution: 10 });
h.enable();
const ops = new Map<string, number[]>();
function timed<T>(name: string, f: () => T): T {
  const t0 = performance.now();
  try {
    return f();
  } finally {
    const ms = performance.now() - t0;
    let a = ops.get(name);
    if (a === undefined) {
      a = [];
      ops.set(name, a);
    }
    a.push(ms);
  }
}
const walSize = (): number => {
  try {
    return statSync(`${file}-wal`).size;
  } catch {
    return 0;
  }
};

let maxWal = 0;
let appended = 0;
const start = performance.now();
let last = start;
// One append per "turn": every 5 ms, the messages that arrived since.
const tick = setInterval(() => {
  // The engine defers its appends during a checkpointer's quiet window (when the store has one).
  if ((store as { appendsHeld?: boolean }).appendsHeld === true) return;
  const now = performance.now();
  const n = Math.round(((now - last) / 1000) * rate);
  last = now;
  const entries: Enqueue[] = [];
  for (let i = 0; i < n; i++) {
    const id = store.nextMsgId();
    entries.push({
      sink: 'telemetry',
      msgId: id,
      rule: 'telemetry',
      topic: `devices/d${id % 10000}/telemetry`,
      payload: Buffer.from(JSON.stringify({ id: `d${id % 10000}`, seq: id, temp: 20 + (id % 7), hum: 40 })),
      publisher: `d${id % 10000}`,
      receivedAt: Date.now(),
    });
  }
  timed('append', () => store.append(entries, []));
  appended += n;
}, 5);
// The failing sink worker: reads the head batch on each retry (backoff capped at 1 s here).
const retry = setInterval(() => timed('read(500)', () => store.read('telemetry', 0, 500)), 1000);
let sec = 0;
const gauges = setInterval(() => {
  timed('oldest', () => store.oldest('telemetry'));
  const w = walSize();
  maxWal = Math.max(maxWal, w);
  sec++;
  const ap = ops.get('append') ?? [];
  const slow = ap.filter((x) => x > 100).length;
  console.log(
    `t=${sec}s queued=${store.depth('telemetry').messages} wal=${(w / 2 ** 20).toFixed(1)}MiB ` +
      `loopMax=${(h.max / 1e6).toFixed(0)}ms appendMax=${Math.max(...ap).toFixed(0)}ms slowAppends=${slow}`,
  );
  if (sec >= seconds) finish();
}, 1000);

function q(a: number[], p: number): number {
  const s = [...a].sort((x, y) => x - y);
  return s[Math.min(s.length - 1, Math.floor(p * s.length))] ?? 0;
}
function finish(): void {
  clearInterval(tick);
  clearInterval(retry);
  clearInterval(gauges);
  h.disable();
  const c = (store as { checkpointer?: { quietWindows: number; maxLogFrames: number } }).checkpointer;
  const summary: Record<string, unknown> = {
    quietWindows: c?.quietWindows,
    maxWalFrames: c?.maxLogFrames,
    seconds,
    rate,
    appended,
    loopDelayMaxMs: Math.round(h.max / 1e6),
    loopDelayP99Ms: Math.round(h.percentile(99) / 1e6),
    maxWalMiB: Math.round((maxWal / 2 ** 20) * 10) / 10,
  };
  for (const [k, a] of ops)
    summary[k] = {
      n: a.length,
      p50: +q(a, 0.5).toFixed(2),
      p99: +q(a, 0.99).toFixed(2),
      max: +Math.max(...a).toFixed(1),
      over100ms: a.filter((x) => x > 100).length,
    };
  console.log(JSON.stringify(summary));
  store.close();
  rmSync(dir, { recursive: true, force: true });
}
