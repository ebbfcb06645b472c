/** CampaignRepository in portable SQL over SqlExecutor (both drivers), like storage/sql-repositories.ts. */
import { ApiError, DuplicateKeyError } from '../errors.js';
import type { Selector } from '../selector.js';
import { isUniqueViolation, type SqlExecutor } from '../storage/executor.js';
import type { Page } from '../storage/page.js';
import { num, numOrNull, Params, type Row, strOrNull } from '../storage/sql-values.js';
import {
  ACTIVE_JOB_STATES,
  type Artifact,
  type CampaignFilter,
  type CampaignPatch,
  type CampaignRecord,
  type CampaignRepository,
  type CampaignState,
  type DeviceJobPatch,
  type DeviceJobRecord,
  type Gate,
  type JobFilter,
  type JobState,
  type WaveSpec,
  type WaveStateCount,
} from './types.js';

function encodeCursor(parts: readonly (string | number)[]): string {
  return Buffer.from(JSON.stringify(parts), 'utf8').toString('base64url');
}

function decodeCursor(cursor: string, arity: number): unknown[] {
  try {
    const v: unknown = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
    if (Array.isArray(v) && v.length === arity && encodeCursor(v) === cursor) return v;
  } catch {
    // fall through
  }
  throw new ApiError('BW_ERR_API_VALIDATION', 'cursor is not a cursor returned by this API', {
    field: 'cursor',
  });
}

const CAMPAIGN_COLUMNS: Record<keyof CampaignPatch, string> = {
  state: 'state',
  currentWave: 'current_wave',
  waveStartedAt: 'wave_started_at',
  waveSettledAt: 'wave_settled_at',
  gateOverrideWave: 'gate_override_wave',
  targetCount: 'target_count',
  haltReason: 'halt_reason',
  haltedBy: 'halted_by',
  haltedAt: 'halted_at',
  rollbackOf: 'rollback_of',
  startedAt: 'started_at',
  completedAt: 'completed_at',
  updatedAt: 'updated_at',
};

const JOB_COLUMNS: Record<keyof DeviceJobPatch, string> = {
  state: 'state',
  jobId: 'job_id',
  attempt: 'attempt',
  notifiedAt: 'notified_at',
  lastReportAt: 'last_report_at',
  progress: 'progress',
  errorCode: 'error_code',
  errorMessage: 'error_message',
};

const INSERT_CHUNK = 400;

export class SqlCampaigns implements CampaignRepository {
  constructor(private readonly db: SqlExecutor) {}

  static #campaign(r: Row): CampaignRecord {
    return {
      id: String(r.id),
      name: String(r.name),
      state: String(r.state) as CampaignState,
      artifact: JSON.parse(String(r.artifact)) as Artifact,
      selector: JSON.parse(String(r.selector)) as Selector,
      waves: JSON.parse(String(r.waves)) as WaveSpec[],
      gate: JSON.parse(String(r.gate)) as Gate,
      currentWave: numOrNull(r.current_wave),
      waveStartedAt: numOrNull(r.wave_started_at),
      waveSettledAt: numOrNull(r.wave_settled_at),
      gateOverrideWave: numOrNull(r.gate_override_wave),
      targetCount: num(r.target_count),
      haltReason: strOrNull(r.halt_reason),
      haltedBy: strOrNull(r.halted_by),
      haltedAt: numOrNull(r.halted_at),
      rollbackOf: strOrNull(r.rollback_of),
      createdAt: num(r.created_at),
      createdBy: String(r.created_by),
      startedAt: numOrNull(r.started_at),
      completedAt: numOrNull(r.completed_at),
      updatedAt: num(r.updated_at),
    };
  }

  static #job(r: Row): DeviceJobRecord {
    return {
      campaignId: String(r.campaign_id),
      deviceId: String(r.device_id),
      wave: num(r.wave),
      rank: String(r.rank),
      state: String(r.state) as JobState,
      jobId: strOrNull(r.job_id),
      attempt: num(r.attempt),
      previousVersion: strOrNull(r.previous_version),
      notifiedAt: numOrNull(r.notified_at),
      lastReportAt: numOrNull(r.last_report_at),
      progress: numOrNull(r.progress),
      errorCode: strOrNull(r.error_code),
      errorMessage: strOrNull(r.error_message),
      updatedAt: num(r.updated_at),
    };
  }

  async insert(c: CampaignRecord): Promise<void> {
    try {
      await this.db.execute(
        `INSERT INTO ota_campaigns (id, name, state, artifact, selector, waves, gate, current_wave,
           wave_started_at, wave_settled_at, gate_override_wave, target_count, halt_reason, halted_by,
           halted_at, rollback_of, created_at, created_by, started_at, completed_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)`,
        [
          c.id,
          c.name,
          c.state,
          JSON.stringify(c.artifact),
          JSON.stringify(c.selector),
          JSON.stringify(c.waves),
          JSON.stringify(c.gate),
          c.currentWave,
          c.waveStartedAt,
          c.waveSettledAt,
          c.gateOverrideWave,
          c.targetCount,
          c.haltReason,
          c.haltedBy,
          c.haltedAt,
          c.rollbackOf,
          c.createdAt,
          c.createdBy,
          c.startedAt,
          c.completedAt,
          c.updatedAt,
        ],
      );
    } catch (err) {
      if (isUniqueViolation(err)) throw new DuplicateKeyError(`campaign ${c.id}`, { cause: err });
      throw err;
    }
  }

  async get(id: string): Promise<CampaignRecord | null> {
    const rows = await this.db.query('SELECT * FROM ota_campaigns WHERE id = $1', [id]);
    return rows[0] ? SqlCampaigns.#campaign(rows[0]) : null;
  }

  async list(filter: CampaignFilter, limit: number, cursor: string | null): Promise<Page<CampaignRecord>> {
    const p = new Params();
    const where: string[] = [];
    if (filter.state !== undefined) where.push(`state = ${p.add(filter.state)}`);
    if (cursor !== null) {
      const [at, id] = decodeCursor(cursor, 2);
      if (typeof at !== 'number' || typeof id !== 'string') decodeCursor('', 2);
      const a = p.add(at);
      where.push(`(created_at < ${a} OR (created_at = ${p.add(at)} AND id < ${p.add(id)}))`);
    }
    const rows = await this.db.query(
      `SELECT * FROM ota_campaigns ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
       ORDER BY created_at DESC, id DESC LIMIT ${p.add(limit + 1)}`,
      p.values,
    );
    const items = rows.slice(0, limit).map((r) => SqlCampaigns.#campaign(r));
    const last = items.at(-1);
    return {
      items,
      nextCursor: rows.length > limit && last ? encodeCursor([last.createdAt, last.id]) : null,
    };
  }

  async idsInState(state: CampaignState): Promise<string[]> {
    const rows = await this.db.query<{ id: unknown }>(
      'SELECT id FROM ota_campaigns WHERE state = $1 ORDER BY created_at, id',
      [state],
    );
    return rows.map((r) => String(r.id));
  }

  #setClause(p: Params, patch: CampaignPatch, at: number): string {
    const sets: string[] = [];
    for (const [k, v] of Object.entries(patch)) {
      const column = CAMPAIGN_COLUMNS[k as keyof CampaignPatch];
      if (column === undefined || k === 'updatedAt') continue;
      sets.push(`${column} = ${p.add(v)}`);
    }
    sets.push(`updated_at = ${p.add(at)}`);
    return sets.join(', ');
  }

  async update(id: string, patch: CampaignPatch, at: number): Promise<boolean> {
    const p = new Params();
    const set = this.#setClause(p, patch, at);
    return (await this.db.execute(`UPDATE ota_campaigns SET ${set} WHERE id = ${p.add(id)}`, p.values)) > 0;
  }

  async transition(
    id: string,
    from: readonly CampaignState[],
    patch: CampaignPatch & { state: CampaignState },
    at: number,
  ): Promise<boolean> {
    const p = new Params();
    const set = this.#setClause(p, patch, at);
    const n = await this.db.execute(
      `UPDATE ota_campaigns SET ${set} WHERE id = ${p.add(id)} AND state IN (${p.list(from)})`,
      p.values,
    );
    return n > 0;
  }

  async insertJobs(jobs: readonly DeviceJobRecord[]): Promise<void> {
    for (let i = 0; i < jobs.length; i += INSERT_CHUNK) {
      const chunk = jobs.slice(i, i + INSERT_CHUNK);
      const p = new Params();
      const values = chunk.map(
        (j) =>
          `(${p.list([
            j.campaignId,
            j.deviceId,
            j.wave,
            j.rank,
            j.state,
            j.jobId,
            j.attempt,
            j.previousVersion,
            j.notifiedAt,
            j.lastReportAt,
            j.progress,
            j.errorCode,
            j.errorMessage,
            j.updatedAt,
          ])})`,
      );
      await this.db.execute(
        `INSERT INTO ota_device_jobs (campaign_id, device_id, wave, rank, state, job_id, attempt,
           previous_version, notified_at, last_report_at, progress, error_code, error_message, updated_at)
         VALUES ${values.join(', ')}`,
        p.values,
      );
    }
  }

  #jobWhere(p: Params, campaignId: string, filter: JobFilter): string[] {
    const where = [`campaign_id = ${p.add(campaignId)}`];
    if (filter.wave !== undefined) where.push(`wave = ${p.add(filter.wave)}`);
    if (filter.maxWave !== undefined) where.push(`wave <= ${p.add(filter.maxWave)}`);
    if (filter.states !== undefined) {
      if (filter.states.length === 0) where.push('1 = 0');
      else where.push(`state IN (${p.list(filter.states)})`);
    }
    return where;
  }

  async jobs(
    campaignId: string,
    filter: JobFilter,
    limit: number,
    cursor: string | null,
  ): Promise<Page<DeviceJobRecord>> {
    const p = new Params();
    const where = this.#jobWhere(p, campaignId, filter);
    if (cursor !== null) {
      const [wave, rank] = decodeCursor(cursor, 2);
      if (typeof wave !== 'number' || typeof rank !== 'string') decodeCursor('', 2);
      where.push(`(wave > ${p.add(wave)} OR (wave = ${p.add(wave)} AND rank > ${p.add(rank)}))`);
    }
    const rows = await this.db.query(
      `SELECT * FROM ota_device_jobs WHERE ${where.join(' AND ')} ORDER BY wave, rank LIMIT ${p.add(limit + 1)}`,
      p.values,
    );
    const items = rows.slice(0, limit).map((r) => SqlCampaigns.#job(r));
    const last = items.at(-1);
    return { items, nextCursor: rows.length > limit && last ? encodeCursor([last.wave, last.rank]) : null };
  }

  async allJobs(campaignId: string, filter: JobFilter): Promise<DeviceJobRecord[]> {
    const p = new Params();
    const where = this.#jobWhere(p, campaignId, filter);
    const rows = await this.db.query(
      `SELECT * FROM ota_device_jobs WHERE ${where.join(' AND ')} ORDER BY wave, rank`,
      p.values,
    );
    return rows.map((r) => SqlCampaigns.#job(r));
  }

  async findJob(deviceId: string, jobId: string): Promise<DeviceJobRecord | null> {
    const rows = await this.db.query('SELECT * FROM ota_device_jobs WHERE device_id = $1 AND job_id = $2', [
      deviceId,
      jobId,
    ]);
    return rows[0] ? SqlCampaigns.#job(rows[0]) : null;
  }

  async updateJob(campaignId: string, deviceId: string, patch: DeviceJobPatch, at: number): Promise<void> {
    const p = new Params();
    const sets: string[] = [];
    for (const [k, v] of Object.entries(patch)) {
      const column = JOB_COLUMNS[k as keyof DeviceJobPatch];
      if (column !== undefined) sets.push(`${column} = ${p.add(v)}`);
    }
    sets.push(`updated_at = ${p.add(at)}`);
    await this.db.execute(
      `UPDATE ota_device_jobs SET ${sets.join(', ')} WHERE campaign_id = ${p.add(campaignId)} AND device_id = ${p.add(deviceId)}`,
      p.values,
    );
  }

  async counts(campaignId: string): Promise<WaveStateCount[]> {
    const rows = await this.db.query<{ wave: unknown; state: unknown; n: unknown }>(
      'SELECT wave, state, COUNT(*) AS n FROM ota_device_jobs WHERE campaign_id = $1 GROUP BY wave, state ORDER BY wave, state',
      [campaignId],
    );
    return rows.map((r) => ({ wave: num(r.wave), state: String(r.state) as JobState, count: num(r.n) }));
  }

  async oldestActivity(campaignId: string, maxWave: number): Promise<number | null> {
    const p = new Params();
    const rows = await this.db.query<{ t: unknown }>(
      `SELECT MIN(CASE WHEN last_report_at IS NOT NULL AND last_report_at > notified_at THEN last_report_at
                       ELSE notified_at END) AS t
       FROM ota_device_jobs
       WHERE campaign_id = ${p.add(campaignId)} AND wave <= ${p.add(maxWave)}
         AND state IN (${p.list(ACTIVE_JOB_STATES)}) AND notified_at IS NOT NULL`,
      p.values,
    );
    return numOrNull(rows[0]?.t);
  }

  async busyDevices(exceptCampaignId: string): Promise<string[]> {
    const p = new Params();
    const rows = await this.db.query<{ device_id: unknown }>(
      `SELECT DISTINCT j.device_id FROM ota_device_jobs j JOIN ota_campaigns c ON c.id = j.campaign_id
       WHERE c.id <> ${p.add(exceptCampaignId)}
         AND (c.state = 'running' OR (c.state = 'halted' AND j.state IN (${p.list(ACTIVE_JOB_STATES)})))`,
      p.values,
    );
    return rows.map((r) => String(r.device_id));
  }
}
