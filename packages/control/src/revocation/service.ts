/**
 * The revocation ControlService: at control-plane start, every active revocation goes onto the
 * guard's denylist, so a restarted broker keeps refusing what was revoked before (the denylist
 * itself is in-memory).
 */
import type { Logger } from 'pino';
import type { FleetBroker } from '../fleet-broker.js';
import type { ControlService } from '../http/app.js';
import type { ControlStorage } from '../storage/types.js';
import { activeEntries } from './denylist.js';

export function revocationService(
  storage: ControlStorage,
  fleet: FleetBroker,
  logger: Logger | null = null,
): ControlService & { loaded: number } {
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
