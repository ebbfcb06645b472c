/**
 * The revocation denylist: client ids, token ids (`jti`) and certificate serials that must be
 * refused even when a cache or a still-valid token would admit them, plus "tokens issued before
 * T" cutoffs (for one client id, or global). Checked before the cache, and again after a token is
 * verified (its `iat` is only trusted then). In-memory; the control plane (revocation by device,
 * selector, token id or issue time) feeds it through Guard.revoke().
 */
export class RevocationList {
  readonly #clientIds = new Set<string>();
  readonly #tokenIds = new Set<string>();
  readonly #serials = new Set<string>();
  /** Cutoffs per client id: several revocations may name the same client with different T. */
  readonly #cutoffs = new Map<string, Set<number>>();
  readonly #globalCutoffs = new Set<number>();

  constructor(initial: { clientIds?: string[]; tokenIds?: string[]; certSerials?: string[] } = {}) {
    for (const c of initial.clientIds ?? []) this.#clientIds.add(c);
    for (const t of initial.tokenIds ?? []) this.#tokenIds.add(t);
    for (const s of initial.certSerials ?? []) this.#serials.add(normalizeSerial(s));
  }

  /**
   * With `issuedBefore`, `clientId` scopes the cutoff (absent: every client) and is not itself
   * revoked; `tokenId` and `certSerial` are revoked either way.
   */
  revoke(entry: RevocationEntry): void {
    if (entry.issuedBefore !== undefined) {
      this.#cutoffSet(entry.clientId, true)!.add(entry.issuedBefore);
    } else if (entry.clientId !== undefined) {
      this.#clientIds.add(entry.clientId);
    }
    if (entry.tokenId !== undefined) this.#tokenIds.add(entry.tokenId);
    if (entry.certSerial !== undefined) this.#serials.add(normalizeSerial(entry.certSerial));
  }

  unrevoke(entry: RevocationEntry): void {
    if (entry.issuedBefore !== undefined) {
      const set = this.#cutoffSet(entry.clientId, false);
      set?.delete(entry.issuedBefore);
      if (entry.clientId !== undefined && set?.size === 0) this.#cutoffs.delete(entry.clientId);
    } else if (entry.clientId !== undefined) {
      this.#clientIds.delete(entry.clientId);
    }
    if (entry.tokenId !== undefined) this.#tokenIds.delete(entry.tokenId);
    if (entry.certSerial !== undefined) this.#serials.delete(normalizeSerial(entry.certSerial));
  }

  #cutoffSet(clientId: string | undefined, create: boolean): Set<number> | undefined {
    if (clientId === undefined) return this.#globalCutoffs;
    let set = this.#cutoffs.get(clientId);
    if (set === undefined && create) {
      set = new Set();
      this.#cutoffs.set(clientId, set);
    }
    return set;
  }

  /**
   * The latest "issued before" cutoff that applies to `clientId` (epoch ms), or 0 when none does:
   * a token whose `iat` (ms) is below it is revoked.
   */
  cutoffFor(clientId: string): number {
    let cutoff = 0;
    for (const t of this.#globalCutoffs) if (t > cutoff) cutoff = t;
    for (const t of this.#cutoffs.get(clientId) ?? []) if (t > cutoff) cutoff = t;
    return cutoff;
  }

  /**
   * Which kind of id is revoked, or null. `issuedAt` (epoch ms) is the verified token's `iat`;
   * undefined for credentials that are not tokens (password, certificate), which cutoffs never
   * touch.
   */
  check(
    clientId: string,
    tokenId: string | undefined,
    certSerial: string | undefined,
    issuedAt?: number,
  ): string | null {
    if (this.#clientIds.has(clientId)) return 'client id revoked';
    if (tokenId !== undefined && this.#tokenIds.has(tokenId)) return 'token revoked';
    if (
      certSerial !== undefined &&
      this.#serials.size > 0 &&
      this.#serials.has(normalizeSerial(certSerial))
    ) {
      return 'certificate revoked';
    }
    if (issuedAt !== undefined && issuedAt < this.cutoffFor(clientId))
      return 'token issued before revocation';
    return null;
  }
}

export interface RevocationEntry {
  clientId?: string;
  tokenId?: string;
  certSerial?: string;
  /**
   * Epoch ms: tokens issued (JWT `iat`) before it are revoked — for `clientId` only, or for
   * every client without one. A token without `iat` counts as issued before any cutoff.
   */
  issuedBefore?: number;
}

/** Serials compare as hex without separators, case or leading zeros (`0A:1b` = `A1B`). */
export function normalizeSerial(s: string): string {
  return s
    .replaceAll(':', '')
    .toUpperCase()
    .replace(/^0+(?=.)/, '');
}
