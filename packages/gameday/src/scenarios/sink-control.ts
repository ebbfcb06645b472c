/**
 * What `sink-outage` needs of the broker's integration, wherever the broker runs: its sink's status,
 * the outage switch (the fault proxy in front of PostgreSQL) and the table's row counts. In-process
 * these are direct calls; with the broker in a child process (more devices than one process's
 * file descriptors allow) they go over IPC (child-broker.ts).
 */
import type { Integration, SinkStatus } from '@breakwater/integration';
import type { SinkBackend } from './sink-backend.js';

export interface SinkControl {
  status(): Promise<SinkStatus>;
  cut(): Promise<void>;
  restore(): Promise<void>;
  counts(): Promise<{ distinct: number; rows: number }>;
}

export function localSinkControl(integration: Integration, sink: SinkBackend, name: string): SinkControl {
  return {
    status: async () => integration.sink(name),
    cut: async () => sink.proxy.cut(),
    restore: async () => sink.proxy.restore(),
    counts: () => sink.counts(),
  };
}
