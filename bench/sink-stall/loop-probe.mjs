// Preload (NODE_OPTIONS="--import …/loop-probe.mjs", BW_LOOP_LOG=/path/prefix): once a second, one
// JSON line per process with the event-loop delay max, GC pauses, heap, -wal sizes and every
// better-sqlite3 statement that took > 20 ms (its SQL and duration). Diagnostic only.
import { appendFileSync, readdirSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { monitorEventLoopDelay, PerformanceObserver, performance } from 'node:perf_hooks';

const prefix = process.env.BW_LOOP_LOG;
if (prefix) {
  const out = `${prefix}.${process.pid}.jsonl`;
  const h = monitorEventLoopDelay({ resolution: 10 });
  h.enable();
  let gcMs = 0;
  let gcMax = 0;
  new PerformanceObserver((l) => {
    for (const e of l.getEntries()) {
      gcMs += e.duration;
      gcMax = Math.max(gcMax, e.duration);
    }
  }).observe({ entryTypes: ['gc'] });
  let slow = [];
  try {
    const Database = createRequire(join(process.cwd(), 'package.json'))('better-sqlite3');
    const db = new Database(':memory:');
    const Statement = db.prepare('SELECT 1').constructor;
    db.close();
    for (const m of ['run', 'get', 'all']) {
      const orig = Statement.prototype[m];
      Statement.prototype[m] = function (...a) {
        const t0 = performance.now();
        try {
          return orig.apply(this, a);
        } finally {
          const ms = performance.now() - t0;
          if (ms > 20) slow.push({ ms: Math.round(ms), sql: this.source.slice(0, 60) });
        }
      };
    }
  } catch (err) {
    appendFileSync(out, `${JSON.stringify({ probeError: String(err) })}\n`);
  }
  const walDir = process.env.BW_WAL_DIR;
  const wals = () => {
    if (!walDir) return undefined;
    const r = {};
    const walk = (d) => {
      for (const e of readdirSync(d, { withFileTypes: true })) {
        const p = join(d, e.name);
        if (e.isDirectory()) walk(p);
        else if (e.name.endsWith('-wal') || e.name.endsWith('.db'))
          r[p.slice(walDir.length)] = Math.round(statSync(p).size / 1024);
      }
    };
    try {
      walk(walDir);
    } catch {}
    return r;
  };
  const t0 = Date.now();
  setInterval(() => {
    const mu = process.memoryUsage();
    appendFileSync(
      out,
      `${JSON.stringify({
        t: Math.round((Date.now() - t0) / 1000),
        at: new Date().toISOString().slice(11, 19),
        loopMaxMs: Math.round(h.max / 1e6),
        gcMs: Math.round(gcMs),
        gcMaxMs: Math.round(gcMax),
        heapMiB: Math.round(mu.heapUsed / 2 ** 20),
        rssMiB: Math.round(mu.rss / 2 ** 20),
        slow: slow.length ? slow : undefined,
        files: wals(),
      })}\n`,
    );
    h.reset();
    gcMs = 0;
    gcMax = 0;
    slow = [];
  }, 1000).unref();
}
