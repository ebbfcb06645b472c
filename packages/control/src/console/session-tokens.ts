/**
 * Console session tokens (issue 14): the web console exchanges an API key once for a short-lived
 * token and keeps only that (in sessionStorage), sent as `Authorization: Bearer bwc_…` like a key.
 *
 * Stateless on purpose: `bwc_<payload>.<mac>` with payload = base64url(JSON {k: API key id,
 * e: expiry ms}) and an HMAC-SHA256 keyed from the signing-key KEK (HKDF, its own label). A
 * token therefore survives a restart of `breakwater up` (the console reconnects without a new
 * login) and works on every control plane that shares the KEK. It never outlives its key: the
 * auth hook loads the key by id on every request, so revoking the key ends its sessions at once.
 */
import { createHmac, hkdfSync, timingSafeEqual } from 'node:crypto';

export const SESSION_TOKEN_PREFIX = 'bwc_';

export interface SessionClaims {
  /** API key id. */
  keyId: string;
  /** Epoch ms. */
  expiresAt: number;
}

export class ConsoleSessionTokens {
  readonly #macKey: Buffer;
  readonly ttlMs: number;

  constructor(kek: Buffer, ttlMs: number) {
    this.#macKey = Buffer.from(hkdfSync('sha256', kek, Buffer.alloc(0), 'breakwater console session', 32));
    this.ttlMs = ttlMs;
  }

  issue(keyId: string, now: number): { token: string; expiresAt: number } {
    const expiresAt = now + this.ttlMs;
    const payload = Buffer.from(JSON.stringify({ k: keyId, e: expiresAt })).toString('base64url');
    return { token: `${SESSION_TOKEN_PREFIX}${payload}.${this.#mac(payload)}`, expiresAt };
  }

  /** The claims of a well-formed, authentic, unexpired token; null otherwise (never throws). */
  verify(token: string, now: number): SessionClaims | null {
    if (!token.startsWith(SESSION_TOKEN_PREFIX)) return null;
    const [payload, mac, extra] = token.slice(SESSION_TOKEN_PREFIX.length).split('.');
    if (payload === undefined || mac === undefined || extra !== undefined) return null;
    const expected = Buffer.from(this.#mac(payload));
    const given = Buffer.from(mac);
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return null;
    let claims: { k?: unknown; e?: unknown };
    try {
      claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as typeof claims;
    } catch {
      return null;
    }
    if (typeof claims.k !== 'string' || typeof claims.e !== 'number' || claims.e <= now) return null;
    return { keyId: claims.k, expiresAt: claims.e };
  }

  #mac(payload: string): string {
    return createHmac('sha256', this.#macKey).update(payload).digest('base64url');
  }
}
