/**
 * The control plane's repository layer: one set of repositories (sql-repositories.ts), written
 * once in portable SQL, over two drivers (SQLite embedded by default, PostgreSQL for shared
 * deployments). Both run through the same contract suite (test/storage-contract.ts).
 *
 * Times are epoch milliseconds everywhere in storage; the HTTP layer renders ISO strings.
 */
import type { ConfigPushRepository } from '../config-push/repository.js';
import type { IncidentRepository } from '../incidents/model.js';
import type { CampaignRepository } from '../ota/types.js';
import type { RevocationRepository } from '../revocation/types.js';
import type { Selector } from '../selector.js';

export type StorageDialect = 'sqlite' | 'postgres';

export const apiKeyRoles = ['admin', 'operator', 'viewer'] as const;
export type ApiKeyRole = (typeof apiKeyRoles)[number];

export const connectionStates = ['online', 'offline', 'unknown'] as const;
/** `unknown`: the broker never reported this device (registered, never connected). */
export type ConnectionState = (typeof connectionStates)[number];

export interface ApiKeyRecord {
  id: string;
  name: string;
  role: ApiKeyRole;
  /** sha256 (hex) of the full key; the key itself is never stored. */
  keyHash: string;
  createdAt: number;
  /** Key id of the admin that created it; null for the bootstrap key. */
  createdBy: string | null;
  revokedAt: number | null;
  lastUsedAt: number | null;
}

export interface AuditEntry {
  at: number;
  actorId: string;
  actorName: string;
  /** Dotted verb: `device.create`, `apikey.revoke`, `signingkey.rotate`, … */
  action: string;
  targetType: string;
  targetId: string | null;
  reason: string | null;
  details: Record<string, unknown> | null;
}

export interface AuditRecord extends AuditEntry {
  seq: number;
}

export interface AuditFilter {
  actorId?: string;
  action?: string;
  targetType?: string;
  targetId?: string;
  since?: number;
  until?: number;
}

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

export interface Page<T> {
  items: T[];
  /** Opaque; pass back as `cursor` for the next page. null on the last page. */
  nextCursor: string | null;
}

export interface SigningKeyRecord {
  kid: string;
  alg: string;
  /** Public JWK (JSON). */
  publicJwk: string;
  /** Private key, encrypted with the data dir's key-encryption key (tokens/key-encryption.ts). */
  privateKey: string;
  createdAt: number;
  /** When rotation replaced it; null for the active key. */
  retiredAt: number | null;
  /** Latest `exp` (ms) of a token it signed: it stays in the JWKS until then. */
  lastExpiry: number;
}

export interface ApiKeyRepository {
  insert(key: ApiKeyRecord): Promise<void>;
  findByHash(keyHash: string): Promise<ApiKeyRecord | null>;
  get(id: string): Promise<ApiKeyRecord | null>;
  list(): Promise<ApiKeyRecord[]>;
  /** Returns false when the key does not exist or is already revoked. */
  revoke(id: string, at: number): Promise<boolean>;
  touch(id: string, at: number): Promise<void>;
  count(): Promise<number>;
}

export interface AuditRepository {
  append(entry: AuditEntry): Promise<number>;
  /** Newest first. */
  list(filter: AuditFilter, limit: number, cursor: string | null): Promise<Page<AuditRecord>>;
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
  list(selector: Selector, limit: number, cursor: string | null): Promise<Page<DeviceRecord>>;
  /** Every device id the selector matches, ordered. */
  resolve(selector: Selector): Promise<string[]>;
  count(selector: Selector): Promise<number>;
  /**
   * Applies broker presence events; an event older than the device's last_seen is ignored
   * (events from two broker nodes can arrive out of order). Unknown ids are ignored.
   */
  applyPresence(updates: readonly PresenceUpdate[]): Promise<void>;
}

export interface SigningKeyRepository {
  insert(key: SigningKeyRecord): Promise<void>;
  list(): Promise<SigningKeyRecord[]>;
  retire(kid: string, at: number): Promise<void>;
  /** last_expiry = max(last_expiry, exp). */
  extendExpiry(kid: string, exp: number): Promise<void>;
}

export interface Repositories {
  readonly apiKeys: ApiKeyRepository;
  readonly audit: AuditRepository;
  readonly devices: DeviceRepository;
  readonly signingKeys: SigningKeyRepository;
  readonly configPushes: ConfigPushRepository;
  readonly campaigns: CampaignRepository;
  readonly revocations: RevocationRepository;
  readonly incidents: IncidentRepository;
}

export interface ControlStorage extends Repositories {
  readonly dialect: StorageDialect;
  /**
   * Runs `fn` in one transaction: all of its writes commit, or none. Use only the repositories
   * passed to `fn` inside it (the SQLite driver serialises access, so calling the outer ones
   * from inside would wait for the transaction to end).
   */
  transaction<T>(fn: (repos: Repositories) => Promise<T>): Promise<T>;
  schemaVersion(): Promise<number>;
  close(): Promise<void>;
}
