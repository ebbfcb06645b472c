import { createHmac, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { GuardError } from './errors.js';

/** File in the data dir holding the per-install HMAC secret (32 random bytes, hex, mode 0600). */
export const SECRET_FILE = 'guard.secret';

/**
 * Keyed hashing for cache keys: the decision cache and the persisted known-good store must never
 * hold a raw password or token (issue 3, "cache keys never contain a raw secret"). A plain hash
 * would let anyone who reads the data dir brute-force short passwords offline; an HMAC under a
 * per-install secret that never leaves the data dir does not.
 */
export class KeyedHasher {
  readonly #secret: Buffer;

  constructor(secret: Buffer) {
    if (secret.length < 16)
      throw new GuardError('BW_ERR_GUARD_CONFIG', 'guard secret must be at least 16 bytes');
    this.#secret = secret;
  }

  /** Loads the install secret from `dataDir`, creating it on first start. */
  static fromDataDir(dataDir: string): KeyedHasher {
    mkdirSync(dataDir, { recursive: true });
    const path = join(dataDir, SECRET_FILE);
    try {
      // `wx`: two processes starting at once must not overwrite each other's secret.
      writeFileSync(path, randomBytes(32).toString('hex'), { flag: 'wx', mode: 0o600 });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw new GuardError('BW_ERR_GUARD_CONFIG', `cannot create ${path}`, { cause: err });
      }
    }
    const hex = readFileSync(path, 'utf8').trim();
    if (!/^[0-9a-f]{32,}$/i.test(hex)) throw new GuardError('BW_ERR_GUARD_CONFIG', `${path} is corrupt`);
    return new KeyedHasher(Buffer.from(hex, 'hex'));
  }

  /**
   * HMAC-SHA256 over the parts, each length-prefixed so ('ab','c') and ('a','bc') never collide.
   * Returns base64url (43 chars).
   */
  hash(...parts: ReadonlyArray<string | Buffer | undefined>): string {
    const h = createHmac('sha256', this.#secret);
    const len = Buffer.allocUnsafe(4);
    for (const p of parts) {
      if (p === undefined) {
        len.writeInt32BE(-1);
        h.update(len);
        continue;
      }
      const b = typeof p === 'string' ? Buffer.from(p, 'utf8') : p;
      len.writeInt32BE(b.length);
      h.update(len);
      h.update(b);
    }
    return h.digest('base64url');
  }
}
