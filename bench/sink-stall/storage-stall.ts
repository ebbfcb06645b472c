/**
 * The broker's SqliteStorage under steady QoS 1 load, the way the engine drives it: every 5 ms the
 * messages that arrived since are queued for offline sessions (appendOutbox) and flushed (one group
 * commit per turn, the PUBACK waits for it), and as many older ones are delivered (deleteOutbox).
 * Records the event-loop delay, the flush latency (what a PUBACK waits for, quiet windows
 * included) and the -wal file size.
 *
 *   node --conditions=source --import tsx bench/sink-stall/storage-stall.ts [seconds] [rate] [dir]
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { SqliteStorage } from '../../packages/broker/src/storage/sqlite.js';

const seconds = Number(process.argv[2] ?? 30);
const rate = Number(process.argv[3] ?? 1000);
const dir = mkdtempSync(join(process.argv[4] ?? tmpdir(), 'bw-storage-stall-'));
const file = join(dir, 'breakwater.db');
const storage = new SqliteStorage({ file });
await storage.open();
const SESSIONS = 1000;
for (let i = 0; i < SESSIONS; i++)
  storage.putSession({ clientId: `d${i}`, protocolVersion: 5, expiryInterval: 3600, disconnectedAt: 0 });
await storage.flush();

const h = monitorEventLoopDelay({ resolution: 10 });
h.enable();
const flushMs: number[] = [];
const walSize = (): number => {
  try {
    return statSync(`${file}-wal`).size;
  } catch {
    return 0;
  }
};
let maxWal = 0;
let seq = 0;
let delivered = 0;
const BACKLOG = 5000;
let last = performance.now();
const tick = setInterval(() => {
  const now = performance.now();
  const n = Math.round(((now - last) / 1000) * rate);
  last = now;
  for (let i = 0; i < n; i++) {
    seq++;
    storage.appendOutbox(`d${seq % SESSIONS}`, {
      seq,
      qos: 1,
      packetId: null,
      state: 'queued',
      topic: `devices/d${seq % SESSIONS}/telemetry`,
      payload: Buffer.from(JSON.stringify({ seq, temp: 20 + (seq % 7), hum: 40 })),
      retain: false,
      properties: null,
      subscriptionIds: null,
      expiresAt: null,
    });
  }
  while (delivered < seq - BACKLOG) {
    delivered++;
    storage.deleteOutbox(`d${delivered % SESSIONS}`, delivered);
  }
  const t0 = performance.now();
  storage.flush().then(() => flushMs.push(performance.now() - t0));
}, 5);
let sec = 0;
const gauges = setInterval(() => {
  const w = walSize();
  maxWal = Math.max(maxWal, w);
  sec++;
  console.log(
    `t=${sec}s wal=${(w / 2 ** 20).toFixed(1)}MiB loopMax=${(h.max / 1e6).toFixed(0)}ms ` +
      `flushMax=${Math.max(0, ...flushMs).toFixed(0)}ms`,
  );
  if (sec >= seconds) void finish();
}, 1000);

function q(a: number[], p: number): number {
  const s = [...a].sort((x, y) => x - y);
  return s[Math.min(s.length - 1, Math.floor(p * s.length))] ?? 0;
}
async function finish(): Promise<void> {
  clearInterval(tick);
  clearInterval(gauges);
  h.disable();
  const c = storage.checkpointer;
  console.log(
    JSON.stringify({
      seconds,
      rate,
      queued: seq,
      autocheckpointPages: storage.autocheckpointPages,
      quietWindows: c?.quietWindows,
      maxWalFrames: c?.maxLogFrames,
      framesCheckpointed: c?.framesCheckpointed,
      loopDelayMaxMs: Math.round(h.max / 1e6),
      loopDelayP99Ms: Math.round(h.percentile(99) / 1e6),
      maxWalMiB: Math.round((maxWal / 2 ** 20) * 10) / 10,
      flush: {
        n: flushMs.length,
        p50: +q(flushMs, 0.5).toFixed(2),
        p99: +q(flushMs, 0.99).toFixed(2),
        max: +Math.max(...flushMs).toFixed(1),
      },
    }),
  );
  await storage.close();
  rmSync(dir, { recursive: true, force: true });
}
