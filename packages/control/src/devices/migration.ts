/**
 * DDL for the device event history (devices/events.ts), appended as one entry to
 * storage/migrations.ts (same type placeholders). Listing and pruning both walk
 * (device_id, seq) backwards from the newest event, so that is the one index.
 */
export const DEVICE_EVENTS_MIGRATION = `
  CREATE TABLE device_events (
    seq {{serial}},
    device_id {{key}} NOT NULL,
    at {{bigint}} NOT NULL,
    kind TEXT NOT NULL,
    client_id TEXT NOT NULL,
    reason TEXT,
    dropped {{bigint}}
  );
  CREATE INDEX device_events_device ON device_events (device_id, seq);
  `;
