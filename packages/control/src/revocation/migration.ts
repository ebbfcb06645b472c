/**
 * DDL for revocations (kill switch 1), appended as one entry to storage/migrations.ts (same type
 * placeholders). `revocation_devices` holds the devices a revocation names (resolved once, when
 * it is made), so un-revoking can ask "does another active revocation still cover this device?"
 * in SQL.
 */
export const REVOCATIONS_MIGRATION = `
  CREATE TABLE revocations (
    seq {{serial}},
    id {{key}} NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    device_id {{key}},
    selector TEXT,
    token_id {{key}},
    issued_before {{bigint}},
    reason TEXT,
    created_at {{bigint}} NOT NULL,
    created_by TEXT NOT NULL,
    created_by_name TEXT NOT NULL,
    reverted_at {{bigint}},
    reverted_by TEXT,
    reverted_by_name TEXT
  );
  CREATE INDEX revocations_token ON revocations (token_id);
  CREATE INDEX revocations_active ON revocations (reverted_at, kind);
  CREATE TABLE revocation_devices (
    revocation_id {{key}} NOT NULL,
    device_id {{key}} NOT NULL,
    PRIMARY KEY (revocation_id, device_id)
  );
  CREATE INDEX revocation_devices_device ON revocation_devices (device_id, revocation_id);
  `;
