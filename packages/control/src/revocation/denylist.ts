/**
 * From a revocation to the guard's denylist entries (RevocationEntry), and a key per entry so
 * reverting one revocation can tell which entries another active revocation still needs.
 */
import type { RevocationEntry } from '@breakwater/broker';
import type { ActiveRevocations, RevocationKind } from './types.js';

export interface RevocationTarget {
  kind: RevocationKind;
  deviceIds: readonly string[];
  tokenId: string | null;
  issuedBefore: number | null;
}

export function denylistEntries(r: RevocationTarget): RevocationEntry[] {
  const cutoff = r.issuedBefore === null ? {} : { issuedBefore: r.issuedBefore };
  switch (r.kind) {
    case 'device':
    case 'selector':
      return r.deviceIds.map((clientId) => ({ clientId, ...cutoff }));
    case 'token':
      return r.tokenId === null ? [] : [{ tokenId: r.tokenId }];
    case 'all':
      return r.issuedBefore === null ? [] : [{ issuedBefore: r.issuedBefore }];
  }
}

export function activeEntries(a: ActiveRevocations): RevocationEntry[] {
  const entries: RevocationEntry[] = a.devices.map((d) =>
    d.issuedBefore === null
      ? { clientId: d.deviceId }
      : { clientId: d.deviceId, issuedBefore: d.issuedBefore },
  );
  for (const tokenId of a.tokenIds) entries.push({ tokenId });
  for (const issuedBefore of a.globalCutoffs) entries.push({ issuedBefore });
  return entries;
}

/** `client:<id>`, `cutoff:<id>:<T>`, `global:<T>`, `token:<jti>`. */
export function denylistKey(e: RevocationEntry): string {
  if (e.issuedBefore !== undefined) {
    return e.clientId === undefined ? `global:${e.issuedBefore}` : `cutoff:${e.clientId}:${e.issuedBefore}`;
  }
  if (e.tokenId !== undefined) return `token:${e.tokenId}`;
  return `client:${e.clientId}`;
}
