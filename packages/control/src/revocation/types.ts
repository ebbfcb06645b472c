/**
 * Kill switch 1, credential revocation (issue 5): what is stored. A revocation names devices (one
 * id, or the ids a selector resolved to when it was made), a token id, or a "tokens issued before
 * T" cutoff (for those devices, or for every client). Active until reverted; reverted ones stay
 * listed. Times are epoch ms.
 */
import type { Selector } from '../selector.js';
import type { Page } from '../storage/page.js';

export const revocationKinds = ['device', 'selector', 'token', 'all'] as const;
/**
 * `device` / `selector`: the devices are revoked (or, with `issuedBefore`, their older tokens);
 * `token`: one token id; `all`: every token issued before `issuedBefore`, whoever holds it.
 */
export type RevocationKind = (typeof revocationKinds)[number];

export interface RevocationRecord {
  id: string;
  kind: RevocationKind;
  /** kind `device`: the device id. */
  deviceId: string | null;
  /** kind `selector`: the selector as given. */
  selector: Selector | null;
  tokenId: string | null;
  issuedBefore: number | null;
  /**
   * Devices it names (`device`, `selector`: resolved at creation and fixed from then on) or, for
   * `token` / `all`, the live sessions it ended at creation (informational).
   */
  deviceCount: number;
  reason: string | null;
  createdAt: number;
  createdBy: { id: string; name: string };
  revertedAt: number | null;
  revertedBy: { id: string; name: string } | null;
}

export interface NewRevocation {
  id: string;
  kind: RevocationKind;
  deviceId: string | null;
  selector: Selector | null;
  tokenId: string | null;
  issuedBefore: number | null;
  deviceIds: readonly string[];
  reason: string | null;
  createdAt: number;
  createdBy: { id: string; name: string };
}

export interface RevocationFilter {
  active?: boolean;
  kind?: RevocationKind;
  /** Revocations that name this device. */
  deviceId?: string;
  tokenId?: string;
}

export interface RevocationRepository {
  insert(r: NewRevocation): Promise<void>;
  get(id: string): Promise<RevocationRecord | null>;
  /** The device ids it names, ordered. */
  deviceIds(id: string): Promise<string[]>;
  /** Newest first. */
  list(filter: RevocationFilter, limit: number, cursor: string | null): Promise<Page<RevocationRecord>>;
  /** Marks it reverted; false when it does not exist or is already reverted. */
  revert(id: string, at: number, by: { id: string; name: string }): Promise<boolean>;
  /** Every active revocation's denylist inputs (control-plane start loads them into the guard). */
  active(): Promise<ActiveRevocations>;
  /**
   * Denylist keys (`denylistKey`) of revocation `id` that another active revocation also
   * produces, so reverting `id` must keep them.
   */
  coveredElsewhere(id: string): Promise<Set<string>>;
}

export interface ActiveRevocations {
  /** Device-naming revocations, one row per device. */
  devices: Array<{ deviceId: string; issuedBefore: number | null }>;
  tokenIds: string[];
  /** Cutoffs of `all` revocations. */
  globalCutoffs: number[];
}
