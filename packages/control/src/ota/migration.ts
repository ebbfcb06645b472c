/**
 * DDL for OTA campaigns, appended as one entry to storage/migrations.ts (same type
 * placeholders). Artifact, selector, waves and gate are JSON text: they are read whole, never
 * queried by field.
 */
export const OTA_MIGRATION = `
  CREATE TABLE ota_campaigns (
    id {{key}} PRIMARY KEY,
    name TEXT NOT NULL,
    state TEXT NOT NULL,
    artifact TEXT NOT NULL,
    selector TEXT NOT NULL,
    waves TEXT NOT NULL,
    gate TEXT NOT NULL,
    current_wave INTEGER,
    wave_started_at {{bigint}},
    wave_settled_at {{bigint}},
    gate_override_wave INTEGER,
    target_count INTEGER NOT NULL DEFAULT 0,
    halt_reason TEXT,
    halted_by TEXT,
    halted_at {{bigint}},
    rollback_of TEXT,
    created_at {{bigint}} NOT NULL,
    created_by TEXT NOT NULL,
    started_at {{bigint}},
    completed_at {{bigint}},
    updated_at {{bigint}} NOT NULL
  );
  CREATE INDEX ota_campaigns_state ON ota_campaigns (state);
  CREATE TABLE ota_device_jobs (
    campaign_id {{key}} NOT NULL,
    device_id {{key}} NOT NULL,
    wave INTEGER NOT NULL,
    rank {{key}} NOT NULL,
    state TEXT NOT NULL,
    job_id {{key}},
    attempt INTEGER NOT NULL DEFAULT 0,
    previous_version TEXT,
    notified_at {{bigint}},
    last_report_at {{bigint}},
    progress INTEGER,
    error_code TEXT,
    error_message TEXT,
    updated_at {{bigint}} NOT NULL,
    PRIMARY KEY (campaign_id, device_id)
  );
  CREATE INDEX ota_device_jobs_order ON ota_device_jobs (campaign_id, wave, rank);
  CREATE INDEX ota_device_jobs_report ON ota_device_jobs (device_id, job_id);
  `;
