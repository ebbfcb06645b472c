/**
 * The revocation denylist: client ids, token ids (`jti`) and certificate serials that must be
 * refused even when a cache or a still-valid token would admit them. Checked before the cache.
 * In-memory; the control plane (revocation by selector) feeds it through Guard.revoke().
 */
export class RevocationList {
  readonly #clientIds = new Set<string>();
  readonly #tokenIds = new Set<string>();
  readonly #serials = new Set<string>();

  constructor(initial: { clientIds?: string[]; tokenIds?: string[]; certSerials?: string[] } = {}) {
    for (const c of initial.clientIds ?? []) this.#clientIds.add(c);
    for (const t of initial.tokenIds ?? []) this.#tokenIds.add(t);
    for (const s of initial.certSerials ?? []) this.#serials.add(normalizeSerial(s));
  }

  revoke(entry: RevocationEntry): void {
    if (entry.clientId !== undefined) this.#clientIds.add(entry.clientId);
    if (entry.tokenId !== undefined) this.#tokenIds.add(entry.tokenId);
    if (entry.certSerial !== undefined) this.#serials.add(normalizeSerial(entry.certSerial));
  }

  unrevoke(entry: RevocationEntry): void {
    if (entry.clientId !== undefined) this.#clientIds.delete(entry.clientId);
    if (entry.tokenId !== undefined) this.#tokenIds.delete(entry.tokenId);
    if (entry.certSerial !== undefined) this.#serials.delete(normalizeSerial(entry.certSerial));
  }

  /** Which kind of id is revoked, or null. */
  check(clientId: string, tokenId: string | undefined, certSerial: string | undefined): string | null {
    if (this.#clientIds.has(clientId)) return 'client id revoked';
    if (tokenId !== undefined && this.#tokenIds.has(tokenId)) return 'token revoked';
    if (
      certSerial !== undefined &&
      this.#serials.size > 0 &&
      this.#serials.has(normalizeSerial(certSerial))
    ) {
      return 'certificate revoked';
    }
    return null;
  }
}

export interface RevocationEntry {
  clientId?: string;
  tokenId?: string;
  certSerial?: string;
}

/** Serials compare as hex without separators, case or leading zeros (`0A:1b` = `A1B`). */
export function normalizeSerial(s: string): string {
  return s
    .replaceAll(':', '')
    .toUpperCase()
    .replace(/^0+(?=.)/, '');
}
