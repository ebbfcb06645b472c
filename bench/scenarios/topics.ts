/**
 * Micro-benchmark of the topic indexes (packages/broker/src/topics): SubscriptionTree.match() per
 * PUBLISH and RetainedIndex.match() per SUBSCRIBE, in-process. Prints matches/s; compare runs of
 * this file against each other, not against the broker benchmarks.
 */
import { RetainedIndex, type SharedGroup, SubscriptionTree } from '@breakwater/broker';

class CountingVisitor {
  n = 0;
  subscriber(_key: string, _value: number): void {
    this.n++;
  }
  sharedGroup(_group: SharedGroup<number>): void {
    this.n++;
  }
}

function time(label: string, iterations: number, fn: (i: number) => void, log: (line: string) => void): void {
  for (let i = 0; i < Math.min(iterations, 10_000); i++) fn(i); // warm-up for the JIT
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < iterations; i++) fn(i);
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  log(`${label}: ${Math.round(iterations / s).toLocaleString('en-US')} ops/s`);
}

export function runTopics(log: (line: string) => void): void {
  const devices = 100_000;
  const tree = new SubscriptionTree<number>();
  // A fleet: each device subscribed to its own command topic, a few wildcard consumers.
  for (let d = 0; d < devices; d++) tree.add(`dev-${d}`, `devices/${d}/cmd`, 1);
  tree.add('ingest', 'devices/+/telemetry', 0);
  tree.add('audit', 'devices/#', 0);
  tree.add('w1', 'devices/+/telemetry', 0, 'workers');
  tree.add('w2', 'devices/+/telemetry', 0, 'workers');
  const v = new CountingVisitor();
  const cmdTopics = Array.from({ length: 1024 }, (_, i) => `devices/${(i * 97) % devices}/cmd`);
  const telemetryTopics = Array.from({ length: 1024 }, (_, i) => `devices/${(i * 97) % devices}/telemetry`);
  time(
    'SubscriptionTree.match exact + devices/# (100k device subs)',
    2_000_000,
    (i) => tree.match(cmdTopics[i & 1023] as string, v),
    log,
  );
  time(
    'SubscriptionTree.match wildcard + shared (100k device subs)',
    2_000_000,
    (i) => tree.match(telemetryTopics[i & 1023] as string, v),
    log,
  );
  time(
    'SubscriptionTree.match no match ($SYS topic)',
    2_000_000,
    () => tree.match('$SYS/broker/uptime', v),
    log,
  );
  time(
    'SubscriptionTree add+remove churn',
    500_000,
    (i) => {
      tree.add(`churn-${i}`, `devices/${i}/+/x`, 1);
      tree.remove(`churn-${i}`, `devices/${i}/+/x`);
    },
    log,
  );

  const retained = new RetainedIndex<number>();
  for (let d = 0; d < devices; d++) retained.set(`devices/${d}/config`, d);
  let hits = 0;
  const visit = (): void => {
    hits++;
  };
  time(
    'RetainedIndex.match exact filter (100k retained)',
    2_000_000,
    (i) => retained.match(`devices/${i % devices}/config`, visit),
    log,
  );
  time(
    'RetainedIndex.match devices/<id>/+ (100k retained)',
    1_000_000,
    (i) => retained.match(`devices/${i % devices}/+`, visit),
    log,
  );
  time(
    'RetainedIndex.match devices/+/config (100k retained)',
    20,
    () => retained.match('devices/+/config', visit),
    log,
  );
  log(`(visits: ${v.n}, retained hits: ${hits})`);
}
