// Preloaded into the Node.js brokers by the idle-memory bench (with --expose-gc). On SIGUSR2: a
// full garbage collection, then a memory report written to $BENCH_MEMORY_REPORT (JSON):
// RSS, the V8 heap's live bytes, and the V8 heap's resident pages. RSS alone swings by 10-20 MB
// between identical runs (garbage not yet collected, freed pages reused), which at 10,000
// connections is +-1-2 KiB per connection; live heap bytes plus the RSS outside the V8 heap do not.
import { readFileSync, writeFileSync } from 'node:fs';
import v8 from 'node:v8';

process.on('SIGUSR2', () => {
  globalThis.gc?.();
  globalThis.gc?.();
  setTimeout(() => {
    const file = process.env.BENCH_MEMORY_REPORT;
    if (!file) return;
    const rssKiB = Number(/VmRSS:\s+(\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? 0);
    let heapResident = 0;
    const spaces = {};
    for (const space of v8.getHeapSpaceStatistics()) {
      heapResident += space.physical_space_size;
      spaces[space.space_name] = space.physical_space_size;
    }
    const heap = v8.getHeapStatistics();
    writeFileSync(
      file,
      JSON.stringify({ at: Date.now(), rssKiB, heapUsed: heap.used_heap_size, heapResident, spaces }),
    );
  }, 200);
});
