/**
 * Queue drop reports (queue-drops.ts): every drop counted at once, the per-session report at most
 * once per QUEUE_DROP_REPORT_INTERVAL_MS with the counts since the previous one, the tail sent by
 * the sweep, quiet sessions forgotten. Times are explicit arguments: nothing waits.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { EngineCounters } from '../../src/engine-counters.js';
import { BrokerMetrics } from '../../src/metrics.js';
import {
  QUEUE_DROP_REPORT_INTERVAL_MS,
  type QueueDropReport,
  QueueDropReports,
} from '../../src/queue-drops.js';
import { Session } from '../../src/session.js';

test('a slow consumer dropping all the time gets one report per interval, with the counts', async () => {
  const metrics = new BrokerMetrics({ defaultMetrics: false });
  const counters = new EngineCounters(metrics);
  const reports: QueueDropReport[] = [];
  const drops = new QueueDropReports(counters, (r) => reports.push(r));
  const slow = new Session('slow', 5, 300);
  const other = new Session('other', 5, 300);
  const t0 = 1_000_000;
  drops.drop(slow, 'queue_full', t0);
  for (let i = 1; i <= 500; i++) drops.drop(slow, i % 2 === 0 ? 'queue_full' : 'queue_evicted', t0 + i);
  drops.drop(other, 'queue_bytes_full', t0 + 600);
  assert.deepEqual(reports, [
    { clientId: 'slow', at: t0, dropped: { queue_full: 1 } },
    { clientId: 'other', at: t0 + 600, dropped: { queue_bytes_full: 1 } },
  ]);
  drops.sweep(t0 + QUEUE_DROP_REPORT_INTERVAL_MS - 1); // not yet
  assert.equal(reports.length, 2);
  drops.sweep(t0 + QUEUE_DROP_REPORT_INTERVAL_MS); // the tail of the first interval
  assert.deepEqual(reports[2], {
    clientId: 'slow',
    at: t0 + QUEUE_DROP_REPORT_INTERVAL_MS,
    dropped: { queue_full: 250, queue_evicted: 250 },
  });
  assert.equal(reports.length, 3);
  // Quiet for an interval: forgotten (no Session kept alive by the reporter).
  drops.sweep(t0 + 3 * QUEUE_DROP_REPORT_INTERVAL_MS);
  assert.equal(drops.tracked, 0);
  counters.sync();
  const values = (await metrics.messagesDropped.get()).values;
  const byReason = Object.fromEntries(values.map((v) => [v.labels.reason, v.value]));
  assert.deepEqual(byReason, { queue_full: 251, queue_evicted: 250, queue_bytes_full: 1 });
});
