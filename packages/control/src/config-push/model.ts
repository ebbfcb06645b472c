/**
 * Config push records and the repository contract (SQL in repository.ts). Versions are the
 * numbers of push rows: global and strictly increasing (see repository.ts).
 */
import type { ConnectionState } from '../devices/connection-state.js';
import type { Selector } from '../selector.js';
import type { Page } from '../storage/page.js';
import type { JsonObject } from './document.js';

export const driftStatuses = ['in-sync', 'pending', 'never-reported', 'differs', 'no-desired'] as const;
/**
 * Drift is desired vs reported *version* (issue 5): the SDK reports only after its handler
 * applied a version, and devices may report their effective config (defaults filled in), so
 * the content is compared separately (`contentMatches`) and does not decide the status.
 * - `in-sync`: the device reports the desired version.
 * - `pending`: it reports an older version (offline since the push, or not applied yet).
 * - `never-reported`: a desired config exists, the device never reported one.
 * - `differs`: it reports a version newer than the desired one, not a push version, or none.
 * - `no-desired`: no config was ever pushed to it.
 */
export type DriftStatus = (typeof driftStatuses)[number];

export interface NewConfigPush {
  at: number;
  actorId: string;
  /** null for a push to one device by id (`PUT /devices/:id/config`). */
  selector: Selector | null;
  merge: boolean;
  /** The config or merge patch as the operator sent it (without `version`). */
  config: JsonObject;
  deviceCount: number;
}

export interface DesiredConfigWrite {
  deviceId: string;
  version: number;
  /** The full desired config without `version`. */
  config: JsonObject;
  /** configHash() of the config. */
  hash: string;
  at: number;
}

export interface ConfigReport {
  deviceId: string;
  /** The reported document as received (a JSON object). */
  config: JsonObject;
  versionText: string | null;
  versionNum: number | null;
  hash: string;
  at: number;
}

export interface DeviceConfigRecord {
  deviceId: string;
  desiredVersion: number | null;
  desired: JsonObject | null;
  pushedAt: number | null;
  reportedVersion: string | null;
  reported: JsonObject | null;
  reportedAt: number | null;
  status: DriftStatus;
  /** Reported content (without `version`) equals the desired; null when either is missing. */
  contentMatches: boolean | null;
}

export interface DriftRecord {
  deviceId: string;
  connectionState: ConnectionState;
  desiredVersion: number | null;
  reportedVersion: string | null;
  pushedAt: number | null;
  reportedAt: number | null;
  status: DriftStatus;
  /** Reported content (without `version`) equals the desired; null when either is missing. */
  contentMatches: boolean | null;
}

export type DriftSummary = Record<DriftStatus, number> & { matched: number };

export interface ConfigPushRepository {
  /**
   * Call first in a push transaction: serialises pushes between processes sharing PostgreSQL
   * (transaction-scoped advisory lock). SQLite transactions are already serial (BEGIN IMMEDIATE).
   */
  lockPushes(): Promise<void>;
  /** Records a push; returns its version. */
  createPush(push: NewConfigPush): Promise<number>;
  /** Current desired configs (without `version`) of those of `ids` that have one. */
  desired(ids: readonly string[]): Promise<Map<string, JsonObject>>;
  setDesired(writes: readonly DesiredConfigWrite[]): Promise<void>;
  /** Stores reports of registered devices (others are ignored); returns how many were stored. */
  applyReports(reports: readonly ConfigReport[]): Promise<number>;
  /** null when the device is not registered. */
  get(deviceId: string): Promise<DeviceConfigRecord | null>;
  /** Drops the desired and reported config of a deleted device (a re-registered id starts clean). */
  forget(deviceId: string): Promise<void>;
  /** Devices the selector matches with their drift, ordered by id, optionally one status only. */
  drift(
    selector: Selector,
    status: DriftStatus | null,
    limit: number,
    cursor: string | null,
  ): Promise<Page<DriftRecord>>;
  summary(selector: Selector): Promise<DriftSummary>;
}
