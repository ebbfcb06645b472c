import { Fleet } from '@breakwater/gameday';
import { startBroker } from './brokers.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const broker = await startBroker('breakwater', 'auto', { gcOnSignal: true });
const t0 = Date.now();
const log = (s: string) => console.log(`${((Date.now() - t0) / 1000).toFixed(0)}s ${s}`);
const fleets: Fleet[] = [];
for (const [n, p] of [
  [5000, 'w-'],
  [10000, 'i-'],
] as const) {
  const f = new Fleet({
    target: { host: broker.host, port: broker.port },
    devices: n,
    idPrefix: p,
    protocolVersion: 4,
    keepaliveSec: 600,
    rampPerSec: 600,
    policy: 'naive',
    sourceAddresses: ['127.0.0.1', '127.0.0.2', '127.0.0.3', '127.0.0.4'],
    connectTimeoutMs: 30000,
  });
  await f.start();
  await f.waitFor((s) => s.connected === s.devices, 120000);
  fleets.push(f);
  log(`connected ${n}, rss ${broker.rssKiB()}`);
}
for (let i = 0; i < 24; i++) {
  await sleep(5000);
  log(`rss ${broker.rssKiB()}`);
}
let r = await broker.collectGarbage();
log(`GC report rss ${r?.rssKiB} new ${r?.spaces?.new_space! >> 10} heapUsed ${r!.heapUsed >> 10}`);
for (let i = 0; i < 12; i++) {
  await sleep(5000);
  log(`rss ${broker.rssKiB()}`);
}
r = await broker.collectGarbage();
log(`GC report rss ${r?.rssKiB} new ${r?.spaces?.new_space! >> 10} heapUsed ${r!.heapUsed >> 10}`);
for (let i = 0; i < 6; i++) {
  await sleep(5000);
  log(`rss ${broker.rssKiB()}`);
}
for (const f of fleets) await f.stop();
await broker.stop();
