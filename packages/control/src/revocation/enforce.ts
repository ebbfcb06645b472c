/**
 * Acting on the broker: which live sessions a revocation reaches, purging what they published,
 * ending them, and putting entries on (or taking them off) the guard's denylist. Order matters:
 * wills and retained messages are purged BEFORE a session is ended, or ending it would publish
 * the will.
 *
 * Degraded modes, reported as warnings rather than errors (a kill switch should do what it can):
 * no broker attached (stored only; loaded at the next start with a broker), or a broker without
 * authentication (live sessions are ended, but nothing stops a reconnect).
 */
import { ReasonCode, type RevocationEntry } from '@breakwater/broker';
import type { Logger } from 'pino';
import type { FleetBroker } from '../fleet-broker.js';

export const NO_BROKER_WARNING =
  'no broker attached: the revocation is stored and takes effect when the control plane starts with a broker';
export const NO_AUTH_WARNING =
  'the broker runs without authentication: live sessions were ended, but reconnects cannot be refused';

export interface EnforceResult {
  disconnected: number;
  purgedRetained: number;
  purgedWills: number;
  warnings: string[];
}

/**
 * The client ids whose live sessions the entries reach now, or null for the entries that cannot
 * be matched (tokens and cutoffs need the guard: without it, no session has a token).
 */
export function liveVictims(
  fleet: FleetBroker,
  entries: readonly RevocationEntry[],
): { ids: string[]; unmatched: boolean } {
  const connected = new Set(fleet.connectedClientIds());
  const ids = new Set<string>();
  let unmatched = false;
  const match = fleet.revocations?.sessionsMatching?.bind(fleet.revocations);
  for (const e of entries) {
    if (match) {
      for (const id of match(e)) if (connected.has(id)) ids.add(id);
    } else if (e.clientId !== undefined && e.issuedBefore === undefined) {
      if (connected.has(e.clientId)) ids.add(e.clientId);
    } else {
      unmatched = true;
    }
  }
  return { ids: [...ids], unmatched };
}

/**
 * Purges `victims` (live) first, ends the sessions / adds the entries to the denylist, then
 * purges the retained messages of `alsoPurge` (revoked devices that are not connected).
 */
export async function enforce(
  fleet: FleetBroker,
  entries: readonly RevocationEntry[],
  victims: readonly string[],
  alsoPurge: readonly string[],
  logger: Logger | null,
): Promise<EnforceResult> {
  const result: EnforceResult = { disconnected: 0, purgedRetained: 0, purgedWills: 0, warnings: [] };
  let purgeFailures = 0;
  const purge = async (id: string) => {
    try {
      const p = await fleet.purgePublishedBy(id);
      result.purgedRetained += p.retained;
      result.purgedWills += p.wills;
    } catch (err) {
      purgeFailures++;
      logger?.error({ err, clientId: id }, 'revocation: purge failed');
    }
  };
  for (const id of victims) await purge(id);
  const revocations = fleet.revocations;
  if (revocations !== null) {
    // The guard ends exactly the sessions sessionsMatching named (DISCONNECT 0x87).
    for (const e of entries) revocations.revoke(e);
    result.disconnected = victims.length;
  } else {
    for (const id of victims) {
      if (fleet.disconnectClient(id, ReasonCode.NotAuthorized, 'credentials revoked')) result.disconnected++;
    }
    result.warnings.push(NO_AUTH_WARNING);
  }
  const kicked = new Set(victims);
  for (const id of alsoPurge) if (!kicked.has(id)) await purge(id);
  if (purgeFailures > 0) {
    result.warnings.push(
      `purging retained messages and wills failed for ${purgeFailures} client(s); see the log`,
    );
  }
  return result;
}

/** Takes the entries off the denylist, except those another active revocation still covers. */
export function release(
  fleet: FleetBroker,
  entries: readonly RevocationEntry[],
  keep: (e: RevocationEntry) => boolean,
): { released: number; kept: number } {
  let released = 0;
  let kept = 0;
  for (const e of entries) {
    if (keep(e)) {
      kept++;
      continue;
    }
    fleet.revocations?.unrevoke(e);
    released++;
  }
  return { released, kept };
}
