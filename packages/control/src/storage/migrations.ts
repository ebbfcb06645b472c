/**
 * Versioned schema. `migrations[i]` takes the database from version i to i + 1; the version is
 * kept in `control_schema`. Append new entries (revocations, configs, campaigns come next); never
 * edit a released one.
 *
 * One DDL text for both drivers, with a few type placeholders:
 * - `{{bigint}}`: epoch milliseconds overflow PostgreSQL's INTEGER.
 * - `{{serial}}`: an auto-increment primary key.
 * - `{{key}}`: text keys compare bytewise in both (SQLite's default BINARY collation; PostgreSQL
 *   `COLLATE "C"`), so cursor pagination orders ids the same way whatever the server locale.
 */
import { DEVICE_EVENTS_MIGRATION } from '../devices/migration.js';
import { INCIDENTS_MIGRATION } from '../incidents/migration.js';
import { OTA_MIGRATION } from '../ota/migration.js';
import { REVOCATIONS_MIGRATION } from '../revocation/migration.js';
import type { StorageDialect } from './executor.js';

const migrations: readonly string[] = [
  `
  CREATE TABLE api_keys (
    id {{key}} PRIMARY KEY,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    key_hash TEXT NOT NULL UNIQUE,
    created_at {{bigint}} NOT NULL,
    created_by TEXT,
    revoked_at {{bigint}},
    last_used_at {{bigint}}
  );
  CREATE TABLE audit_log (
    seq {{serial}},
    at {{bigint}} NOT NULL,
    actor_id TEXT NOT NULL,
    actor_name TEXT NOT NULL,
    action TEXT NOT NULL,
    target_type TEXT NOT NULL,
    target_id TEXT,
    reason TEXT,
    details TEXT
  );
  CREATE INDEX audit_log_at ON audit_log (at);
  CREATE INDEX audit_log_target ON audit_log (target_type, target_id);
  CREATE TABLE devices (
    id {{key}} PRIMARY KEY,
    cohort TEXT,
    firmware_version TEXT,
    connection_state TEXT NOT NULL DEFAULT 'unknown',
    last_seen {{bigint}},
    last_disconnect_reason TEXT,
    secret_hash TEXT NOT NULL,
    created_at {{bigint}} NOT NULL,
    updated_at {{bigint}} NOT NULL
  );
  CREATE INDEX devices_cohort ON devices (cohort);
  CREATE INDEX devices_firmware ON devices (firmware_version);
  CREATE INDEX devices_state ON devices (connection_state);
  CREATE TABLE device_tags (
    device_id {{key}} NOT NULL,
    tag {{key}} NOT NULL,
    PRIMARY KEY (device_id, tag)
  );
  CREATE INDEX device_tags_tag ON device_tags (tag, device_id);
  CREATE TABLE signing_keys (
    kid {{key}} PRIMARY KEY,
    alg TEXT NOT NULL,
    public_jwk TEXT NOT NULL,
    private_key TEXT NOT NULL,
    created_at {{bigint}} NOT NULL,
    retired_at {{bigint}},
    last_expiry {{bigint}} NOT NULL DEFAULT 0
  );
  `,
  // Config push (src/config-push/repository.ts): a push's serial number is its config version.
  `
  CREATE TABLE config_pushes (
    version {{serial}},
    at {{bigint}} NOT NULL,
    actor_id TEXT NOT NULL,
    selector TEXT,
    merge_patch INTEGER NOT NULL,
    config TEXT NOT NULL,
    device_count INTEGER NOT NULL
  );
  CREATE TABLE device_configs (
    device_id {{key}} PRIMARY KEY,
    desired_version {{bigint}},
    desired TEXT,
    desired_hash TEXT,
    pushed_at {{bigint}},
    reported TEXT,
    reported_version TEXT,
    reported_version_num {{bigint}},
    reported_hash TEXT,
    reported_at {{bigint}}
  );
  `,
  // OTA campaigns and per-device jobs (src/ota/repository.ts).
  OTA_MIGRATION,
  // Revocations (kill switch 1) and the devices each names (src/revocation/repository.ts).
  REVOCATIONS_MIGRATION,
  // Incidents, their timeline and attached alerts (src/incidents/repository.ts).
  INCIDENTS_MIGRATION,
  // The device event history: connects, disconnects, queue drops (src/devices/event-repository.ts).
  DEVICE_EVENTS_MIGRATION,
];

const types: Record<StorageDialect, Record<string, string>> = {
  sqlite: { bigint: 'INTEGER', serial: 'INTEGER PRIMARY KEY AUTOINCREMENT', key: 'TEXT' },
  postgres: {
    bigint: 'BIGINT',
    serial: 'BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY',
    key: 'TEXT COLLATE "C"',
  },
};

export const SCHEMA_VERSION = migrations.length;

/** The statements that take the schema from `from` to the latest version, one per migration. */
export function pendingMigrations(dialect: StorageDialect, from: number): string[] {
  return migrations
    .slice(from)
    .map((ddl) => ddl.replace(/\{\{(\w+)\}\}/g, (_, name: string) => types[dialect][name]!));
}
