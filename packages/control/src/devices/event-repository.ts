/**
 * Device event history storage (table `device_events`, devices/migration.ts). Portable SQL over
 * SqlExecutor, like storage/sql-repositories.ts.
 */
import type { SqlExecutor } from '../storage/executor.js';
import type { Page } from '../storage/page.js';
import { encodeCursor, num, numOrNull, Params, seqBefore, strOrNull } from '../storage/sql-values.js';
import type {
  DeviceEventFilter,
  DeviceEventKind,
  DeviceEventRecord,
  DeviceEventRepository,
  NewDeviceEvent,
} from './events.js';

/** Rows per multi-row statement: 7 parameters a row stays well under both drivers' limits. */
const CHUNK = 500;

export class SqlDeviceEvents implements DeviceEventRepository {
  constructor(private readonly db: SqlExecutor) {}

  async #registered(ids: readonly string[]): Promise<Set<string>> {
    const known = new Set<string>();
    for (let i = 0; i < ids.length; i += CHUNK) {
      const p = new Params();
      const rows = await this.db.query<{ id: string }>(
        `SELECT id FROM devices WHERE id IN (${p.list(ids.slice(i, i + CHUNK))})`,
        p.values,
      );
      for (const r of rows) known.add(r.id);
    }
    return known;
  }

  async append(events: readonly NewDeviceEvent[]): Promise<Set<string>> {
    if (events.length === 0) return new Set();
    // One lookup first: a broker shared with unregistered clients reports them too.
    const known = await this.#registered([...new Set(events.map((e) => e.deviceId))]);
    const kept = events.filter((e) => known.has(e.deviceId));
    const stored = new Set<string>();
    for (let i = 0; i < kept.length; i += CHUNK) {
      const p = new Params();
      const values = kept.slice(i, i + CHUNK).map((e) => {
        stored.add(e.deviceId);
        return `(${p.list([e.deviceId, e.at, e.kind, e.clientId, e.reason, e.count])})`;
      });
      // Multi-row VALUES keep the given order, so seq follows the order events happened in.
      await this.db.execute(
        `INSERT INTO device_events (device_id, at, kind, client_id, reason, dropped) VALUES ${values.join(', ')}`,
        p.values,
      );
    }
    return stored;
  }

  async list(
    deviceId: string,
    filter: DeviceEventFilter,
    limit: number,
    cursor: string | null,
  ): Promise<Page<DeviceEventRecord>> {
    const p = new Params();
    const where = [`device_id = ${p.add(deviceId)}`];
    if (filter.kind !== undefined) where.push(`kind = ${p.add(filter.kind)}`);
    if (cursor !== null) where.push(seqBefore(cursor, p));
    const rows = await this.db.query(
      `SELECT * FROM device_events WHERE ${where.join(' AND ')} ORDER BY seq DESC LIMIT ${p.add(limit + 1)}`,
      p.values,
    );
    const items = rows.slice(0, limit).map(
      (r): DeviceEventRecord => ({
        seq: num(r.seq),
        deviceId: String(r.device_id),
        at: num(r.at),
        kind: String(r.kind) as DeviceEventKind,
        clientId: String(r.client_id),
        reason: strOrNull(r.reason),
        count: numOrNull(r.dropped),
      }),
    );
    const last = items.at(-1);
    return { items, nextCursor: rows.length > limit && last ? encodeCursor(String(last.seq)) : null };
  }

  async prune(deviceId: string, keep: number): Promise<number> {
    // The newest `keep` rows through the (device_id, seq) index; the scalar subquery is NULL
    // (nothing deleted) while the device has no more than `keep` events.
    return this.db.execute(
      `DELETE FROM device_events WHERE device_id = $1 AND seq <= (
         SELECT seq FROM device_events WHERE device_id = $1 ORDER BY seq DESC LIMIT 1 OFFSET $2)`,
      [deviceId, keep],
    );
  }
}
