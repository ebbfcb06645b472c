/**
 * The device registry: its records and the repository contract (SQL in
 * storage/sql-repositories.ts). Times are epoch milliseconds.
 */
import type { Selector } from '../selector.js';
import type { Page } from '../storage/page.js';
import type { ConnectionState } from './connection-state.js';

export interface DeviceRecord {
  id: string;
  tags: string[];
  cohort: string | null;
  firmwareVersion: string | null;
  connectionState: ConnectionState;
  lastSeen: number | null;
  lastDisconnectReason: string | null;
  createdAt: number;
  updatedAt: number;
}

export interface NewDevice {
  id: string;
  tags: string[];
  cohort: string | null;
  firmwareVersion: string | null;
  /** PHC scrypt string (devices/secret.ts). */
  secretHash: string;
  createdAt: number;
}

export interface DevicePatch {
  tags?: string[];
  cohort?: string | null;
  firmwareVersion?: string | null;
}

/** One broker event, folded into the registry by DevicePresence. */
export interface PresenceUpdate {
  id: string;
  state: 'online' | 'offline';
  at: number;
  /** Disconnect reason (offline only); kept as the device's last disconnect reason. */
  reason: string | null;
}

/** List filters: a selector plus what only a search needs (issue 14, the console's device list). */
export interface DeviceFilter extends Selector {
  /** Case-insensitive substring of the id. */
  idContains?: string;
  lastDisconnectReason?: string;
}

export interface DeviceRepository {
  /** Throws DuplicateKeyError (with the id) when one exists; callers run it in a transaction. */
  insert(devices: readonly NewDevice[]): Promise<void>;
  get(id: string): Promise<DeviceRecord | null>;
  secretHash(id: string): Promise<string | null>;
  /** Which of `ids` are registered. */
  existing(ids: readonly string[]): Promise<string[]>;
  update(id: string, patch: DevicePatch, at: number): Promise<DeviceRecord | null>;
  delete(id: string): Promise<boolean>;
  /** Ordered by id. */
  list(filter: DeviceFilter, limit: number, cursor: string | null): Promise<Page<DeviceRecord>>;
  /** Every device id the selector matches, ordered. */
  resolve(selector: Selector): Promise<string[]>;
  count(filter: DeviceFilter): Promise<number>;
  /**
   * Applies broker presence events; an event older than the device's last_seen is ignored
   * (events from two broker nodes can arrive out of order). Unknown ids are ignored.
   */
  applyPresence(updates: readonly PresenceUpdate[]): Promise<void>;
}
