/**
 * Config push storage (tables `config_pushes`, `device_configs`; migration in
 * storage/migrations.ts). Portable SQL over SqlExecutor, like storage/sql-repositories.ts.
 *
 * Versions: every push (to one device or to a selector) is a row of `config_pushes`, and its
 * auto-increment number IS the version of the config it delivers. Versions are therefore
 * global and strictly increasing: a device's successive desired versions increase (with gaps
 * where pushes went to other devices), one push has one version on every device it reached,
 * and the audit entry, the push row and what devices report all name the same number. Pushes
 * are serialised (`lockPushes`) so that version order is also commit and publish order.
 */
import type { ConnectionState } from '../devices/connection-state.js';
import type { Selector } from '../selector.js';
import type { SqlExecutor } from '../storage/executor.js';
import type { Page } from '../storage/page.js';
import {
  decodeCursor,
  encodeCursor,
  jsonOrNull,
  num,
  numOrNull,
  Params,
  type Row,
  strOrNull,
} from '../storage/sql-values.js';
import type { JsonObject } from './document.js';
import type {
  ConfigPushRepository,
  ConfigReport,
  DesiredConfigWrite,
  DeviceConfigRecord,
  DriftRecord,
  DriftStatus,
  DriftSummary,
  NewConfigPush,
} from './model.js';

/** Rows per multi-row statement: well under both drivers' bound-parameter limits. */
const CHUNK = 500;

// Any 64-bit number; the same in every process sharing the database ("bwconfig").
const PUSH_LOCK = 0x6277_636f_6e66_6967n;

// Every selector criterion must be handled below: adding one to Selector breaks this line until
// selectorWhere() knows it (otherwise the drift view would silently ignore it).
const handledCriteria: Record<keyof Selector, true> = {
  ids: true,
  tags: true,
  cohort: true,
  firmware: true,
  connectionState: true,
  all: true,
};
void handledCriteria;

/** The registry's selector semantics (storage/sql-repositories.ts), over `devices`. */
function selectorWhere(s: Selector, p: Params): string[] {
  const where: string[] = [];
  if (s.ids !== undefined) where.push(`devices.id IN (${s.ids.map((id) => p.add(id)).join(', ')})`);
  for (const tag of s.tags ?? []) {
    where.push(
      `EXISTS (SELECT 1 FROM device_tags t WHERE t.device_id = devices.id AND t.tag = ${p.add(tag)})`,
    );
  }
  if (s.cohort !== undefined) where.push(`devices.cohort = ${p.add(s.cohort)}`);
  if (s.firmware !== undefined) where.push(`devices.firmware_version = ${p.add(s.firmware)}`);
  if (s.connectionState !== undefined) where.push(`devices.connection_state = ${p.add(s.connectionState)}`);
  return where;
}

/** The drift status of a `devices LEFT JOIN device_configs c` row (see DriftStatus). */
const STATUS_SQL = `CASE
    WHEN c.desired_version IS NULL THEN 'no-desired'
    WHEN c.reported_at IS NULL THEN 'never-reported'
    WHEN c.reported_version_num = c.desired_version THEN 'in-sync'
    WHEN c.reported_version_num IS NOT NULL AND c.reported_version_num < c.desired_version THEN 'pending'
    ELSE 'differs'
  END`;

/** 1 when the reported content (without `version`) equals the desired one, 0 if not, NULL if either is missing. */
const CONTENT_SQL = `CASE
    WHEN c.reported_hash IS NULL OR c.desired_hash IS NULL THEN NULL
    WHEN c.reported_hash = c.desired_hash THEN 1
    ELSE 0
  END`;

function boolOrNull(v: unknown): boolean | null {
  return v === null || v === undefined ? null : num(v) === 1;
}

function driftQuery(selector: Selector, p: Params): string {
  const where = selectorWhere(selector, p);
  return `SELECT devices.id AS device_id, devices.connection_state, c.desired_version, c.pushed_at,
      c.reported_version, c.reported_at, ${STATUS_SQL} AS status, ${CONTENT_SQL} AS content_matches
    FROM devices LEFT JOIN device_configs c ON c.device_id = devices.id
    ${where.length ? `WHERE ${where.join(' AND ')}` : ''}`;
}

export class SqlConfigPushes implements ConfigPushRepository {
  constructor(private readonly db: SqlExecutor) {}

  async lockPushes(): Promise<void> {
    if (this.db.dialect === 'postgres') {
      await this.db.query('SELECT pg_advisory_xact_lock($1)', [PUSH_LOCK.toString()]);
    }
  }

  async createPush(push: NewConfigPush): Promise<number> {
    const rows = await this.db.query<{ version: unknown }>(
      `INSERT INTO config_pushes (at, actor_id, selector, merge_patch, config, device_count)
       VALUES ($1, $2, $3, $4, $5, $6) RETURNING version`,
      [
        push.at,
        push.actorId,
        push.selector === null ? null : JSON.stringify(push.selector),
        push.merge ? 1 : 0,
        JSON.stringify(push.config),
        push.deviceCount,
      ],
    );
    return num(rows[0]!.version);
  }

  async desired(ids: readonly string[]): Promise<Map<string, JsonObject>> {
    const out = new Map<string, JsonObject>();
    for (let i = 0; i < ids.length; i += CHUNK) {
      const p = new Params();
      const list = ids.slice(i, i + CHUNK).map((id) => p.add(id));
      const rows = await this.db.query<{ device_id: string; desired: string }>(
        `SELECT device_id, desired FROM device_configs
         WHERE desired IS NOT NULL AND device_id IN (${list.join(', ')})`,
        p.values,
      );
      for (const r of rows) out.set(r.device_id, JSON.parse(r.desired) as JsonObject);
    }
    return out;
  }

  async forget(deviceId: string): Promise<void> {
    await this.db.execute('DELETE FROM device_configs WHERE device_id = $1', [deviceId]);
  }

  async setDesired(writes: readonly DesiredConfigWrite[]): Promise<void> {
    // Identical documents (a plain push to a selector) are serialised once, not once per device.
    const serialised = new Map<JsonObject, string>();
    for (let i = 0; i < writes.length; i += CHUNK) {
      const p = new Params();
      const values = writes.slice(i, i + CHUNK).map((w) => {
        let json = serialised.get(w.config);
        if (json === undefined) {
          json = JSON.stringify(w.config);
          serialised.set(w.config, json);
        }
        return `(${p.add(w.deviceId)}, ${p.add(w.version)}, ${p.add(json)}, ${p.add(w.hash)}, ${p.add(w.at)})`;
      });
      await this.db.execute(
        `INSERT INTO device_configs (device_id, desired_version, desired, desired_hash, pushed_at)
         VALUES ${values.join(', ')}
         ON CONFLICT (device_id) DO UPDATE SET desired_version = excluded.desired_version,
           desired = excluded.desired, desired_hash = excluded.desired_hash, pushed_at = excluded.pushed_at`,
        p.values,
      );
    }
  }

  async applyReports(reports: readonly ConfigReport[]): Promise<number> {
    let stored = 0;
    for (let i = 0; i < reports.length; i += CHUNK) {
      const chunk = reports.slice(i, i + CHUNK);
      const known = new Set<string>();
      {
        const p = new Params();
        const list = chunk.map((r) => p.add(r.deviceId));
        const rows = await this.db.query<{ id: string }>(
          `SELECT id FROM devices WHERE id IN (${list.join(', ')})`,
          p.values,
        );
        for (const r of rows) known.add(r.id);
      }
      const registered = chunk.filter((r) => known.has(r.deviceId));
      if (registered.length === 0) continue;
      const p = new Params();
      const values = registered.map(
        (r) =>
          `(${p.add(r.deviceId)}, ${p.add(JSON.stringify(r.config))}, ${p.add(r.versionText)}, ` +
          `${p.add(r.versionNum)}, ${p.add(r.hash)}, ${p.add(r.at)})`,
      );
      await this.db.execute(
        `INSERT INTO device_configs (device_id, reported, reported_version, reported_version_num, reported_hash, reported_at)
         VALUES ${values.join(', ')}
         ON CONFLICT (device_id) DO UPDATE SET reported = excluded.reported,
           reported_version = excluded.reported_version, reported_version_num = excluded.reported_version_num,
           reported_hash = excluded.reported_hash, reported_at = excluded.reported_at`,
        p.values,
      );
      stored += registered.length;
    }
    return stored;
  }

  async get(deviceId: string): Promise<DeviceConfigRecord | null> {
    const rows = await this.db.query(
      `SELECT devices.id AS device_id, c.desired_version, c.desired, c.pushed_at, c.reported_version,
         c.reported, c.reported_at, ${STATUS_SQL} AS status, ${CONTENT_SQL} AS content_matches
       FROM devices LEFT JOIN device_configs c ON c.device_id = devices.id
       WHERE devices.id = $1`,
      [deviceId],
    );
    const r = rows[0];
    if (!r) return null;
    return {
      deviceId: String(r.device_id),
      desiredVersion: numOrNull(r.desired_version),
      desired: jsonOrNull(r.desired),
      pushedAt: numOrNull(r.pushed_at),
      reportedVersion: strOrNull(r.reported_version),
      reported: jsonOrNull(r.reported),
      reportedAt: numOrNull(r.reported_at),
      status: String(r.status) as DriftStatus,
      contentMatches: boolOrNull(r.content_matches),
    };
  }

  async drift(
    selector: Selector,
    status: DriftStatus | null,
    limit: number,
    cursor: string | null,
  ): Promise<Page<DriftRecord>> {
    const p = new Params();
    const inner = driftQuery(selector, p);
    const where: string[] = [];
    if (status !== null) where.push(`d.status = ${p.add(status)}`);
    if (cursor !== null) where.push(`d.device_id > ${p.add(decodeCursor(cursor))}`);
    const rows = await this.db.query(
      `SELECT * FROM (${inner}) d ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
       ORDER BY d.device_id LIMIT ${p.add(limit + 1)}`,
      p.values,
    );
    const items = rows.slice(0, limit).map(
      (r: Row): DriftRecord => ({
        deviceId: String(r.device_id),
        connectionState: String(r.connection_state) as ConnectionState,
        desiredVersion: numOrNull(r.desired_version),
        reportedVersion: strOrNull(r.reported_version),
        pushedAt: numOrNull(r.pushed_at),
        reportedAt: numOrNull(r.reported_at),
        status: String(r.status) as DriftStatus,
        contentMatches: boolOrNull(r.content_matches),
      }),
    );
    const last = items.at(-1);
    return { items, nextCursor: rows.length > limit && last ? encodeCursor(last.deviceId) : null };
  }

  async summary(selector: Selector): Promise<DriftSummary> {
    const p = new Params();
    const rows = await this.db.query<{ status: string; n: unknown }>(
      `SELECT d.status, COUNT(*) AS n FROM (${driftQuery(selector, p)}) d GROUP BY d.status`,
      p.values,
    );
    const out: DriftSummary = {
      matched: 0,
      'in-sync': 0,
      pending: 0,
      'never-reported': 0,
      differs: 0,
      'no-desired': 0,
    };
    for (const r of rows) {
      out[r.status as DriftStatus] = num(r.n);
      out.matched += num(r.n);
    }
    return out;
  }
}
