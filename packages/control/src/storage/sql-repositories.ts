/**
 * The repositories, written once over SqlExecutor for both drivers. Portable SQL only:
 * `$n` placeholders, `ON CONFLICT`, `RETURNING`, `CASE` instead of GREATEST/MAX(a, b).
 */

import type { AuditEntry, AuditFilter, AuditRecord, AuditRepository } from '../audit/model.js';
import type { ApiKeyRecord, ApiKeyRepository, ApiKeyRole } from '../auth/model.js';
import { SqlConfigPushes } from '../config-push/repository.js';
import type { ConnectionState } from '../devices/connection-state.js';
import { SqlDeviceEvents } from '../devices/event-repository.js';
import type {
  DeviceFilter,
  DevicePatch,
  DeviceRecord,
  DeviceRepository,
  NewDevice,
  PresenceUpdate,
} from '../devices/model.js';
import { DuplicateKeyError } from '../errors.js';
import { SqlIncidents } from '../incidents/repository.js';
import { SqlCampaigns } from '../ota/repository.js';
import { SqlRevocations } from '../revocation/repository.js';
import type { Selector } from '../selector.js';
import type { SigningKeyRecord, SigningKeyRepository } from '../tokens/model.js';
import { isUniqueViolation, type SqlExecutor } from './executor.js';
import type { Page } from './page.js';
import {
  decodeCursor,
  encodeCursor,
  num,
  numOrNull,
  Params,
  type Row,
  seqBefore,
  strOrNull,
} from './sql-values.js';
import type { Repositories } from './types.js';

async function guardUnique<T>(what: string, op: () => Promise<T>): Promise<T> {
  try {
    return await op();
  } catch (err) {
    if (isUniqueViolation(err)) throw new DuplicateKeyError(what, { cause: err });
    throw err;
  }
}

class SqlApiKeys implements ApiKeyRepository {
  constructor(private readonly db: SqlExecutor) {}

  static #map(r: Row): ApiKeyRecord {
    return {
      id: String(r.id),
      name: String(r.name),
      role: String(r.role) as ApiKeyRole,
      keyHash: String(r.key_hash),
      createdAt: num(r.created_at),
      createdBy: strOrNull(r.created_by),
      revokedAt: numOrNull(r.revoked_at),
      lastUsedAt: numOrNull(r.last_used_at),
    };
  }

  async insert(k: ApiKeyRecord): Promise<void> {
    await guardUnique(`API key ${k.id}`, () =>
      this.db.execute(
        `INSERT INTO api_keys (id, name, role, key_hash, created_at, created_by, revoked_at, last_used_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
        [k.id, k.name, k.role, k.keyHash, k.createdAt, k.createdBy, k.revokedAt, k.lastUsedAt],
      ),
    );
  }

  async findByHash(keyHash: string): Promise<ApiKeyRecord | null> {
    const rows = await this.db.query('SELECT * FROM api_keys WHERE key_hash = $1', [keyHash]);
    return rows[0] ? SqlApiKeys.#map(rows[0]) : null;
  }

  async get(id: string): Promise<ApiKeyRecord | null> {
    const rows = await this.db.query('SELECT * FROM api_keys WHERE id = $1', [id]);
    return rows[0] ? SqlApiKeys.#map(rows[0]) : null;
  }

  async list(): Promise<ApiKeyRecord[]> {
    const rows = await this.db.query('SELECT * FROM api_keys ORDER BY created_at, id');
    return rows.map((r) => SqlApiKeys.#map(r));
  }

  async revoke(id: string, at: number): Promise<boolean> {
    const n = await this.db.execute(
      'UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL',
      [at, id],
    );
    return n > 0;
  }

  async touch(id: string, at: number): Promise<void> {
    await this.db.execute('UPDATE api_keys SET last_used_at = $1 WHERE id = $2', [at, id]);
  }

  async count(): Promise<number> {
    const rows = await this.db.query<{ n: unknown }>('SELECT COUNT(*) AS n FROM api_keys');
    return num(rows[0]?.n ?? 0);
  }
}

class SqlAudit implements AuditRepository {
  constructor(private readonly db: SqlExecutor) {}

  async append(e: AuditEntry): Promise<number> {
    const rows = await this.db.query<{ seq: unknown }>(
      `INSERT INTO audit_log (at, actor_id, actor_name, action, target_type, target_id, reason, details)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING seq`,
      [
        e.at,
        e.actorId,
        e.actorName,
        e.action,
        e.targetType,
        e.targetId,
        e.reason,
        e.details === null ? null : JSON.stringify(e.details),
      ],
    );
    return num(rows[0]!.seq);
  }

  async list(filter: AuditFilter, limit: number, cursor: string | null): Promise<Page<AuditRecord>> {
    const p = new Params();
    const where: string[] = [];
    if (filter.actorId !== undefined) where.push(`actor_id = ${p.add(filter.actorId)}`);
    if (filter.action !== undefined) where.push(`action = ${p.add(filter.action)}`);
    if (filter.targetType !== undefined) where.push(`target_type = ${p.add(filter.targetType)}`);
    if (filter.targetId !== undefined) where.push(`target_id = ${p.add(filter.targetId)}`);
    if (filter.since !== undefined) where.push(`at >= ${p.add(filter.since)}`);
    if (filter.until !== undefined) where.push(`at < ${p.add(filter.until)}`);
    if (cursor !== null) where.push(seqBefore(cursor, p));
    const rows = await this.db.query(
      `SELECT * FROM audit_log ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
       ORDER BY seq DESC LIMIT ${p.add(limit + 1)}`,
      p.values,
    );
    const items = rows.slice(0, limit).map(
      (r): AuditRecord => ({
        seq: num(r.seq),
        at: num(r.at),
        actorId: String(r.actor_id),
        actorName: String(r.actor_name),
        action: String(r.action),
        targetType: String(r.target_type),
        targetId: strOrNull(r.target_id),
        reason: strOrNull(r.reason),
        details: r.details === null || r.details === undefined ? null : JSON.parse(String(r.details)),
      }),
    );
    const last = items.at(-1);
    return { items, nextCursor: rows.length > limit && last ? encodeCursor(String(last.seq)) : null };
  }
}

/** Rows per multi-row INSERT: well under both drivers' bound-parameter limits. */
const INSERT_CHUNK = 500;

class SqlDevices implements DeviceRepository {
  constructor(private readonly db: SqlExecutor) {}

  static #where(s: DeviceFilter, p: Params): string[] {
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
    if (s.idContains !== undefined) {
      // LOWER on both sides: SQLite's LIKE ignores ASCII case, PostgreSQL's does not.
      const pattern = `%${s.idContains.toLowerCase().replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
      where.push(`LOWER(devices.id) LIKE ${p.add(pattern)} ESCAPE '\\'`);
    }
    if (s.lastDisconnectReason !== undefined) {
      where.push(`devices.last_disconnect_reason = ${p.add(s.lastDisconnectReason)}`);
    }
    return where;
  }

  async #withTags(rows: Row[]): Promise<DeviceRecord[]> {
    if (rows.length === 0) return [];
    const p = new Params();
    const ids = rows.map((r) => p.add(String(r.id)));
    const tagRows = await this.db.query<{ device_id: string; tag: string }>(
      `SELECT device_id, tag FROM device_tags WHERE device_id IN (${ids.join(', ')}) ORDER BY tag`,
      p.values,
    );
    const tags = new Map<string, string[]>();
    for (const t of tagRows) {
      const list = tags.get(t.device_id);
      if (list) list.push(t.tag);
      else tags.set(t.device_id, [t.tag]);
    }
    return rows.map((r) => ({
      id: String(r.id),
      tags: tags.get(String(r.id)) ?? [],
      cohort: strOrNull(r.cohort),
      firmwareVersion: strOrNull(r.firmware_version),
      connectionState: String(r.connection_state) as ConnectionState,
      lastSeen: numOrNull(r.last_seen),
      lastDisconnectReason: strOrNull(r.last_disconnect_reason),
      createdAt: num(r.created_at),
      updatedAt: num(r.updated_at),
    }));
  }

  async #insertTags(pairs: Array<[string, string]>): Promise<void> {
    for (let i = 0; i < pairs.length; i += INSERT_CHUNK) {
      const p = new Params();
      const values = pairs.slice(i, i + INSERT_CHUNK).map(([id, tag]) => `(${p.add(id)}, ${p.add(tag)})`);
      await this.db.execute(`INSERT INTO device_tags (device_id, tag) VALUES ${values.join(', ')}`, p.values);
    }
  }

  async insert(devices: readonly NewDevice[]): Promise<void> {
    await guardUnique('device', async () => {
      for (let i = 0; i < devices.length; i += INSERT_CHUNK) {
        const p = new Params();
        const values = devices
          .slice(i, i + INSERT_CHUNK)
          .map(
            (d) =>
              `(${p.add(d.id)}, ${p.add(d.cohort)}, ${p.add(d.firmwareVersion)}, ${p.add(d.secretHash)}, ${p.add(d.createdAt)}, ${p.add(d.createdAt)})`,
          );
        await this.db.execute(
          `INSERT INTO devices (id, cohort, firmware_version, secret_hash, created_at, updated_at)
           VALUES ${values.join(', ')}`,
          p.values,
        );
      }
      await this.#insertTags(devices.flatMap((d) => d.tags.map((t): [string, string] => [d.id, t])));
    });
  }

  async get(id: string): Promise<DeviceRecord | null> {
    const rows = await this.db.query('SELECT * FROM devices WHERE id = $1', [id]);
    return (await this.#withTags(rows))[0] ?? null;
  }

  async secretHash(id: string): Promise<string | null> {
    const rows = await this.db.query<{ secret_hash: string }>(
      'SELECT secret_hash FROM devices WHERE id = $1',
      [id],
    );
    return rows[0]?.secret_hash ?? null;
  }

  async existing(ids: readonly string[]): Promise<string[]> {
    const out: string[] = [];
    for (let i = 0; i < ids.length; i += INSERT_CHUNK) {
      const p = new Params();
      const list = ids.slice(i, i + INSERT_CHUNK).map((id) => p.add(id));
      const rows = await this.db.query<{ id: string }>(
        `SELECT id FROM devices WHERE id IN (${list.join(', ')})`,
        p.values,
      );
      for (const r of rows) out.push(r.id);
    }
    return out;
  }

  async update(id: string, patch: DevicePatch, at: number): Promise<DeviceRecord | null> {
    const p = new Params();
    const set = [`updated_at = ${p.add(at)}`];
    if (patch.cohort !== undefined) set.push(`cohort = ${p.add(patch.cohort)}`);
    if (patch.firmwareVersion !== undefined) set.push(`firmware_version = ${p.add(patch.firmwareVersion)}`);
    const n = await this.db.execute(`UPDATE devices SET ${set.join(', ')} WHERE id = ${p.add(id)}`, p.values);
    if (n === 0) return null;
    if (patch.tags !== undefined) {
      // Replace the tag set: a PATCH with `tags` states the full list.
      await this.db.execute('DELETE FROM device_tags WHERE device_id = $1', [id]);
      await this.#insertTags(patch.tags.map((t): [string, string] => [id, t]));
    }
    return this.get(id);
  }

  async delete(id: string): Promise<boolean> {
    await this.db.execute('DELETE FROM device_tags WHERE device_id = $1', [id]);
    // Its history goes with it: a device registered again later under the same id starts clean.
    await this.db.execute('DELETE FROM device_events WHERE device_id = $1', [id]);
    return (await this.db.execute('DELETE FROM devices WHERE id = $1', [id])) > 0;
  }

  async list(filter: DeviceFilter, limit: number, cursor: string | null): Promise<Page<DeviceRecord>> {
    const p = new Params();
    const where = SqlDevices.#where(filter, p);
    if (cursor !== null) where.push(`devices.id > ${p.add(decodeCursor(cursor))}`);
    const rows = await this.db.query(
      `SELECT * FROM devices ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
       ORDER BY id LIMIT ${p.add(limit + 1)}`,
      p.values,
    );
    const items = await this.#withTags(rows.slice(0, limit));
    const last = items.at(-1);
    return { items, nextCursor: rows.length > limit && last ? encodeCursor(last.id) : null };
  }

  async resolve(selector: Selector): Promise<string[]> {
    const p = new Params();
    const where = SqlDevices.#where(selector, p);
    const rows = await this.db.query<{ id: string }>(
      `SELECT id FROM devices ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY id`,
      p.values,
    );
    return rows.map((r) => r.id);
  }

  async count(filter: DeviceFilter): Promise<number> {
    const p = new Params();
    const where = SqlDevices.#where(filter, p);
    const rows = await this.db.query<{ n: unknown }>(
      `SELECT COUNT(*) AS n FROM devices ${where.length ? `WHERE ${where.join(' AND ')}` : ''}`,
      p.values,
    );
    return num(rows[0]?.n ?? 0);
  }

  async applyPresence(updates: readonly PresenceUpdate[]): Promise<void> {
    // One lookup per chunk first: in a reconnect storm of clients that are not registered devices
    // (or a broker shared with other clients) this replaces thousands of no-op UPDATEs.
    const known = new Set(await this.existing([...new Set(updates.map((u) => u.id))]));
    if (known.size === 0) return;
    for (const u of updates) {
      if (!known.has(u.id)) continue;
      await this.db.execute(
        `UPDATE devices SET connection_state = $1, last_seen = $2,
           last_disconnect_reason = CASE WHEN $1 = 'offline' THEN $3 ELSE last_disconnect_reason END
         WHERE id = $4 AND (last_seen IS NULL OR last_seen <= $2)`,
        [u.state, u.at, u.reason, u.id],
      );
    }
  }
}

class SqlSigningKeys implements SigningKeyRepository {
  constructor(private readonly db: SqlExecutor) {}

  async insert(k: SigningKeyRecord): Promise<void> {
    await guardUnique(`signing key ${k.kid}`, () =>
      this.db.execute(
        `INSERT INTO signing_keys (kid, alg, public_jwk, private_key, created_at, retired_at, last_expiry)
         VALUES ($1, $2, $3, $4, $5, $6, $7)`,
        [k.kid, k.alg, k.publicJwk, k.privateKey, k.createdAt, k.retiredAt, k.lastExpiry],
      ),
    );
  }

  async list(): Promise<SigningKeyRecord[]> {
    const rows = await this.db.query('SELECT * FROM signing_keys ORDER BY created_at, kid');
    return rows.map((r) => ({
      kid: String(r.kid),
      alg: String(r.alg),
      publicJwk: String(r.public_jwk),
      privateKey: String(r.private_key),
      createdAt: num(r.created_at),
      retiredAt: numOrNull(r.retired_at),
      lastExpiry: num(r.last_expiry),
    }));
  }

  async retire(kid: string, at: number): Promise<void> {
    await this.db.execute('UPDATE signing_keys SET retired_at = $1 WHERE kid = $2 AND retired_at IS NULL', [
      at,
      kid,
    ]);
  }

  async extendExpiry(kid: string, exp: number): Promise<void> {
    await this.db.execute(
      'UPDATE signing_keys SET last_expiry = CASE WHEN last_expiry < $1 THEN $1 ELSE last_expiry END WHERE kid = $2',
      [exp, kid],
    );
  }
}

export function sqlRepositories(db: SqlExecutor): Repositories {
  return {
    apiKeys: new SqlApiKeys(db),
    audit: new SqlAudit(db),
    devices: new SqlDevices(db),
    deviceEvents: new SqlDeviceEvents(db),
    signingKeys: new SqlSigningKeys(db),
    configPushes: new SqlConfigPushes(db),
    campaigns: new SqlCampaigns(db),
    revocations: new SqlRevocations(db),
    incidents: new SqlIncidents(db),
  };
}
