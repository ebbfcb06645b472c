/**
 * The control plane's repository layer: one set of repositories (sql-repositories.ts), written
 * once in portable SQL, over two drivers (SQLite embedded by default, PostgreSQL for shared
 * deployments). Both run through the same contract suite (test/storage-contract.ts).
 *
 * This module only aggregates: each repository's interface lives with its feature, and no
 * feature imports this module (a feature names the repositories it uses with `Transactional`,
 * storage/transactional.ts), so the aggregate never sits in an import cycle (issue 12).
 *
 * Times are epoch milliseconds everywhere in storage; the HTTP layer renders ISO strings.
 */
import type { AuditRepository } from '../audit/model.js';
import type { ApiKeyRepository } from '../auth/model.js';
import type { ConfigPushRepository } from '../config-push/model.js';
import type { DeviceEventRepository } from '../devices/events.js';
import type { DeviceRepository } from '../devices/model.js';
import type { IncidentRepository } from '../incidents/model.js';
import type { CampaignRepository } from '../ota/types.js';
import type { RevocationRepository } from '../revocation/types.js';
import type { SigningKeyRepository } from '../tokens/model.js';
import type { StorageDialect } from './executor.js';

export interface Repositories {
  readonly apiKeys: ApiKeyRepository;
  readonly audit: AuditRepository;
  readonly devices: DeviceRepository;
  readonly deviceEvents: DeviceEventRepository;
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
