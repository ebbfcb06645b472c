/** Revocations over SqlExecutor, portable SQL for both drivers (see storage/sql-repositories.ts). */
import { ApiError } from '../errors.js';
import type { Selector } from '../selector.js';
import type { SqlExecutor } from '../storage/executor.js';
import type { Page } from '../storage/page.js';
import type { Row } from '../storage/sql-values.js';
import type {
  ActiveRevocations,
  NewRevocation,
  RevocationFilter,
  RevocationKind,
  RevocationRecord,
  RevocationRepository,
} from './types.js';

const num = (v: unknown): number => (typeof v === 'number' ? v : Number(v));
const numOrNull = (v: unknown): number | null => (v === null || v === undefined ? null : num(v));
const strOrNull = (v: unknown): string | null => (v === null || v === undefined ? null : String(v));

/** Rows per multi-row INSERT: well under both drivers' bound-parameter limits. */
const INSERT_CHUNK = 500;

function cursorOf(seq: number): string {
  return Buffer.from(String(seq), 'utf8').toString('base64url');
}

function seqOf(cursor: string): number {
  const value = Buffer.from(cursor, 'base64url').toString('utf8');
  if (!/^\d{1,15}$/.test(value) || cursorOf(Number(value)) !== cursor) {
    throw new ApiError('BW_ERR_API_VALIDATION', 'cursor is not a cursor returned by this API', {
      field: 'cursor',
    });
  }
  return Number(value);
}

const DEVICE_KINDS = "('device', 'selector')";

export class SqlRevocations implements RevocationRepository {
  constructor(private readonly db: SqlExecutor) {}

  static #map(r: Row): RevocationRecord {
    return {
      id: String(r.id),
      kind: String(r.kind) as RevocationKind,
      deviceId: strOrNull(r.device_id),
      selector:
        r.selector === null || r.selector === undefined ? null : (JSON.parse(String(r.selector)) as Selector),
      tokenId: strOrNull(r.token_id),
      issuedBefore: numOrNull(r.issued_before),
      deviceCount: num(r.device_count ?? 0),
      reason: strOrNull(r.reason),
      createdAt: num(r.created_at),
      createdBy: { id: String(r.created_by), name: String(r.created_by_name) },
      revertedAt: numOrNull(r.reverted_at),
      revertedBy:
        r.reverted_by === null || r.reverted_by === undefined
          ? null
          : { id: String(r.reverted_by), name: String(r.reverted_by_name) },
    };
  }

  static readonly #select =
    `SELECT r.*, (SELECT COUNT(*) FROM revocation_devices d WHERE d.revocation_id = r.id)
    AS device_count FROM revocations r`;

  async insert(r: NewRevocation): Promise<void> {
    await this.db.execute(
      `INSERT INTO revocations (id, kind, device_id, selector, token_id, issued_before, reason, created_at,
         created_by, created_by_name) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
      [
        r.id,
        r.kind,
        r.deviceId,
        r.selector === null ? null : JSON.stringify(r.selector),
        r.tokenId,
        r.issuedBefore,
        r.reason,
        r.createdAt,
        r.createdBy.id,
        r.createdBy.name,
      ],
    );
    const ids = [...new Set(r.deviceIds)];
    for (let i = 0; i < ids.length; i += INSERT_CHUNK) {
      const chunk = ids.slice(i, i + INSERT_CHUNK);
      const values = chunk.map((_, j) => `($1, $${j + 2})`).join(', ');
      await this.db.execute(`INSERT INTO revocation_devices (revocation_id, device_id) VALUES ${values}`, [
        r.id,
        ...chunk,
      ]);
    }
  }

  async get(id: string): Promise<RevocationRecord | null> {
    const rows = await this.db.query(`${SqlRevocations.#select} WHERE r.id = $1`, [id]);
    return rows[0] ? SqlRevocations.#map(rows[0]) : null;
  }

  async deviceIds(id: string): Promise<string[]> {
    const rows = await this.db.query<{ device_id: unknown }>(
      'SELECT device_id FROM revocation_devices WHERE revocation_id = $1 ORDER BY device_id',
      [id],
    );
    return rows.map((r) => String(r.device_id));
  }

  async list(
    filter: RevocationFilter,
    limit: number,
    cursor: string | null,
  ): Promise<Page<RevocationRecord>> {
    const params: unknown[] = [];
    const p = (v: unknown) => {
      params.push(v);
      return `$${params.length}`;
    };
    const where: string[] = [];
    if (filter.active !== undefined) where.push(`r.reverted_at IS ${filter.active ? '' : 'NOT '}NULL`);
    if (filter.kind !== undefined) where.push(`r.kind = ${p(filter.kind)}`);
    if (filter.tokenId !== undefined) where.push(`r.token_id = ${p(filter.tokenId)}`);
    if (filter.deviceId !== undefined) {
      where.push(
        `EXISTS (SELECT 1 FROM revocation_devices d WHERE d.revocation_id = r.id AND d.device_id = ${p(filter.deviceId)})`,
      );
    }
    if (cursor !== null) where.push(`r.seq < ${p(seqOf(cursor))}`);
    const rows = await this.db.query(
      `${SqlRevocations.#select} ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
       ORDER BY r.seq DESC LIMIT ${p(limit + 1)}`,
      params,
    );
    const items = rows.slice(0, limit);
    const last = items.at(-1);
    return {
      items: items.map((r) => SqlRevocations.#map(r)),
      nextCursor: rows.length > limit && last ? cursorOf(num(last.seq)) : null,
    };
  }

  async revert(id: string, at: number, by: { id: string; name: string }): Promise<boolean> {
    const changed = await this.db.execute(
      `UPDATE revocations SET reverted_at = $1, reverted_by = $2, reverted_by_name = $3
       WHERE id = $4 AND reverted_at IS NULL`,
      [at, by.id, by.name, id],
    );
    return changed > 0;
  }

  async active(): Promise<ActiveRevocations> {
    const devices = await this.db.query<{ device_id: unknown; issued_before: unknown }>(
      `SELECT d.device_id, r.issued_before FROM revocations r
       JOIN revocation_devices d ON d.revocation_id = r.id
       WHERE r.reverted_at IS NULL AND r.kind IN ${DEVICE_KINDS}`,
    );
    const others = await this.db.query<{ kind: unknown; token_id: unknown; issued_before: unknown }>(
      `SELECT kind, token_id, issued_before FROM revocations
       WHERE reverted_at IS NULL AND kind IN ('token', 'all')`,
    );
    return {
      devices: devices.map((d) => ({
        deviceId: String(d.device_id),
        issuedBefore: numOrNull(d.issued_before),
      })),
      tokenIds: others
        .filter((o) => o.kind === 'token' && o.token_id !== null)
        .map((o) => String(o.token_id)),
      globalCutoffs: others
        .filter((o) => o.kind === 'all' && o.issued_before !== null)
        .map((o) => num(o.issued_before)),
    };
  }

  async coveredElsewhere(id: string): Promise<Set<string>> {
    const r = await this.get(id);
    const keys = new Set<string>();
    if (r === null) return keys;
    if (r.kind === 'device' || r.kind === 'selector') {
      const sameCutoff = r.issuedBefore === null ? 'r2.issued_before IS NULL' : 'r2.issued_before = $2';
      const rows = await this.db.query<{ device_id: unknown }>(
        `SELECT DISTINCT d2.device_id FROM revocation_devices d1
         JOIN revocation_devices d2 ON d2.device_id = d1.device_id AND d2.revocation_id <> d1.revocation_id
         JOIN revocations r2 ON r2.id = d2.revocation_id
         WHERE d1.revocation_id = $1 AND r2.reverted_at IS NULL AND r2.kind IN ${DEVICE_KINDS}
           AND ${sameCutoff}`,
        r.issuedBefore === null ? [id] : [id, r.issuedBefore],
      );
      for (const row of rows) {
        const d = String(row.device_id);
        keys.add(r.issuedBefore === null ? `client:${d}` : `cutoff:${d}:${r.issuedBefore}`);
      }
    } else if (r.kind === 'token' && r.tokenId !== null) {
      const rows = await this.db.query(
        `SELECT 1 AS one FROM revocations WHERE kind = 'token' AND token_id = $1 AND id <> $2
         AND reverted_at IS NULL LIMIT 1`,
        [r.tokenId, id],
      );
      if (rows.length > 0) keys.add(`token:${r.tokenId}`);
    } else if (r.kind === 'all' && r.issuedBefore !== null) {
      const rows = await this.db.query(
        `SELECT 1 AS one FROM revocations WHERE kind = 'all' AND issued_before = $1 AND id <> $2
         AND reverted_at IS NULL LIMIT 1`,
        [r.issuedBefore, id],
      );
      if (rows.length > 0) keys.add(`global:${r.issuedBefore}`);
    }
    return keys;
  }
}
