/**
 * The revocation service (started with the control plane): at start, every active revocation
 * goes onto the guard's denylist, so a restarted broker keeps refusing what was revoked before
 * (the denylist itself is in-memory).
 */
import type { Logger } from 'pino';
import type { FleetBroker } from '../fleet-broker.js';
import { activeEntries } from './denylist.js';
import type { RevocationRepository } from './types.js';

/** Fits http/app.ts's ControlService by shape; declared here so this module need not import the app. */
export interface RevocationLoader {
  start(): Promise<void>;
  close(): void;
  /** Denylist entries loaded at the last start. */
  loaded: number;
}

export function revocationService(
  storage: { readonly revocations: Pick<RevocationRepository, 'active'> },
  fleet: FleetBroker,
  logger: Logger | null = null,
): RevocationLoader {
  const service = {
    loaded: 0,
    async start() {
      const revocations = fleet.revocations;
      if (revocations === null) return; // without authentication there is nothing to refuse
      const entries = activeEntries(await storage.revocations.active());
      for (const e of entries) revocations.revoke(e);
      service.loaded = entries.length;
      if (entries.length > 0) logger?.info({ entries: entries.length }, 'revocations loaded into the guard');
    },
    close() {},
  };
  return service;
}
