/**
 * SqliteStorage group-commit throughput (not a test): append 100k outbox rows, then delete them,
 * in batches of `--batch` mutations per event-loop turn, awaiting flush() after each batch as
 * the engine does before it acknowledges. Prints rows/s for each phase.
 *
 *   node --conditions=source --import tsx bench/storage-sqlite.ts [--rows 100000] [--batch 100]
 *     [--synchronous normal|full] [--payload 64]
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { SqliteStorage } from '../packages/broker/src/storage/sqlite.js';
import type { OutboxRecord } from '../packages/broker/src/storage/types.js';

const { values } = parseArgs({
  options: {
    rows: { type: 'string', default: '100000' },
    batch: { type: 'string', default: '100' },
    synchronous: { type: 'string', default: 'normal' },
    payload: { type: 'string', default: '64' },
  },
});
const rows = Number(values.rows);
const batch = Number(values.batch);
const synchronous = values.synchronous === 'full' ? 'full' : 'normal';
const payload = Buffer.alloc(Number(values.payload), 0x61);
const clients = 100;

const dir = await mkdtemp(join(tmpdir(), 'bw-bench-sqlite-'));
const storage = new SqliteStorage({ file: join(dir, 'breakwater.db'), synchronous });
await storage.open();

function record(seq: number): OutboxRecord {
  return {
    seq,
    qos: 1,
    packetId: null,
    state: 'queued',
    topic: `bench/${seq % clients}`,
    payload,
    retain: false,
    properties: null,
    subscriptionIds: null,
    expiresAt: null,
  };
}

async function phase(name: string, op: (seq: number) => void): Promise<void> {
  const commitsBefore = storage.commits;
  const start = process.hrtime.bigint();
  for (let seq = 0; seq < rows; ) {
    const end = Math.min(rows, seq + batch);
    for (; seq < end; seq++) op(seq);
    await storage.flush();
  }
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  const rate = Math.round(rows / seconds);
  console.log(
    `${name.padEnd(7)} ${rows} rows in ${seconds.toFixed(2)} s = ${rate.toLocaleString('en')} rows/s ` +
      `(${storage.commits - commitsBefore} commits, batch ${batch}, synchronous=${synchronous}, ${payload.length} B payload)`,
  );
}

try {
  await phase('append', (seq) => storage.appendOutbox(`client-${seq % clients}`, record(seq)));
  await phase('delete', (seq) => storage.deleteOutbox(`client-${seq % clients}`, seq));
  if (storage.loadOutbox('client-0').length !== 0) throw new Error('rows left after delete');
} finally {
  await storage.close();
  await rm(dir, { recursive: true, force: true });
}
