/**
 * The token issuer: short-lived device JWTs signed with Ed25519 (`alg: EdDSA`), public keys
 * served as a JWKS. The broker's jwt authenticator fetches the JWKS and caches it for hours, so
 * the issuer is never on the connect path (DESIGN.md §5).
 *
 * Rotation: a new key becomes the signing key at once; the old one is retired but stays in the
 * JWKS until the last token it signed expires. Each key tracks that instant (`lastExpiry`), raised
 * *before* a token is signed, so no issued token can outlive its key's presence in the JWKS.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import type { Clock } from '@breakwater/broker';
import { type CryptoKey, exportJWK, generateKeyPair, importJWK, type JWK, SignJWT } from 'jose';
import { ApiError } from '../errors.js';
import type { Transactional } from '../storage/transactional.js';
import { decryptPrivateKey, encryptPrivateKey } from './key-encryption.js';
import type { SigningKeyRecord, SigningKeyRepository } from './model.js';

/** The issuer reads and writes signing keys only. */
export type SigningKeyStorage = Transactional<{ readonly signingKeys: SigningKeyRepository }>;

export interface TokenIssuerOptions {
  storage: SigningKeyStorage;
  /** Key-encryption key for the private keys at rest (tokens/key-encryption.ts). */
  kek: Buffer;
  clock: Clock;
  /** `iss` claim (default `breakwater`). Configure the broker's jwt authenticator to match. */
  issuer?: string;
  /** `aud` claim (default `breakwater-mqtt`). */
  audience?: string;
  /** Upper bound for any token's lifetime (default 24 h). */
  maxTtlSec?: number;
}

export interface MintedToken {
  token: string;
  jti: string;
  kid: string;
  /** Seconds since the epoch, as in the JWT. */
  iat: number;
  exp: number;
}

export const SIGNING_ALG = 'EdDSA';

export class TokenIssuer {
  readonly issuer: string;
  readonly audience: string;
  readonly maxTtlSec: number;
  readonly #storage: SigningKeyStorage;
  readonly #kek: Buffer;
  readonly #clock: Clock;
  /** Decrypted private keys by kid: decryption + import once per key, not per token. */
  readonly #privateKeys = new Map<string, Promise<CryptoKey>>();

  constructor(options: TokenIssuerOptions) {
    this.#storage = options.storage;
    this.#kek = options.kek;
    this.#clock = options.clock;
    this.issuer = options.issuer ?? 'breakwater';
    this.audience = options.audience ?? 'breakwater-mqtt';
    this.maxTtlSec = options.maxTtlSec ?? 24 * 3600;
  }

  /** Creates the first signing key if there is none; checks the active one decrypts. */
  async init(): Promise<void> {
    const active = await this.#activeKey();
    if (active) await this.#privateKey(active);
    else await this.rotate();
  }

  /** A new signing key; the previous one is retired (kept in the JWKS while its tokens live). */
  async rotate(): Promise<{ kid: string; retired: string[] }> {
    const { publicKey, privateKey } = await generateKeyPair(SIGNING_ALG, {
      crv: 'Ed25519',
      extractable: true,
    });
    const kid = `${new Date(this.#clock.now()).toISOString().slice(0, 10)}-${randomBytes(6).toString('hex')}`;
    const publicJwk = { ...(await exportJWK(publicKey)), kid, alg: SIGNING_ALG, use: 'sig' };
    const privateJwk = JSON.stringify(await exportJWK(privateKey));
    const now = this.#clock.now();
    const retired = await this.#storage.transaction(async (tx) => {
      const current = (await tx.signingKeys.list()).filter((k) => k.retiredAt === null).map((k) => k.kid);
      for (const old of current) await tx.signingKeys.retire(old, now);
      await tx.signingKeys.insert({
        kid,
        alg: SIGNING_ALG,
        publicJwk: JSON.stringify(publicJwk),
        privateKey: encryptPrivateKey(this.#kek, kid, privateJwk),
        createdAt: now,
        retiredAt: null,
        lastExpiry: 0,
      });
      return current;
    });
    return { kid, retired };
  }

  /** Public keys a verifier may need now: the active key and retired keys with live tokens. */
  async jwks(): Promise<{ keys: JWK[] }> {
    const now = this.#clock.now();
    const keys = (await this.#storage.signingKeys.list())
      .filter((k) => k.retiredAt === null || k.lastExpiry > now)
      .map((k) => JSON.parse(k.publicJwk) as JWK);
    return { keys };
  }

  async keys(): Promise<
    Array<{ kid: string; createdAt: number; retiredAt: number | null; inJwksUntil: number | null }>
  > {
    return (await this.#storage.signingKeys.list()).map((k) => ({
      kid: k.kid,
      createdAt: k.createdAt,
      retiredAt: k.retiredAt,
      // Active keys stay indefinitely; retired ones until their last token expires.
      inJwksUntil: k.retiredAt === null ? null : Math.max(k.lastExpiry, k.retiredAt),
    }));
  }

  /** Signs a device token: sub = device id, a fresh jti, iat/exp, iss, aud. */
  async mint(deviceId: string, ttlSec: number): Promise<MintedToken> {
    if (!Number.isInteger(ttlSec) || ttlSec < 1 || ttlSec > this.maxTtlSec) {
      throw new ApiError('BW_ERR_API_VALIDATION', `ttl must be an integer between 1 and ${this.maxTtlSec}`, {
        field: 'ttl',
      });
    }
    const key = await this.#activeKey();
    if (!key) throw new ApiError('BW_ERR_SIGNING_KEY', 'no active signing key');
    const iat = Math.floor(this.#clock.now() / 1000);
    const exp = iat + ttlSec;
    // Raise lastExpiry first: if this write fails, no token exists that the JWKS might drop early.
    await this.#storage.signingKeys.extendExpiry(key.kid, exp * 1000);
    const jti = randomUUID();
    const token = await new SignJWT({})
      .setProtectedHeader({ alg: SIGNING_ALG, kid: key.kid, typ: 'JWT' })
      .setSubject(deviceId)
      .setJti(jti)
      .setIssuer(this.issuer)
      .setAudience(this.audience)
      .setIssuedAt(iat)
      .setExpirationTime(exp)
      .sign(await this.#privateKey(key));
    return { token, jti, kid: key.kid, iat, exp };
  }

  async #activeKey(): Promise<SigningKeyRecord | undefined> {
    // Read each time (a few rows): another process sharing PostgreSQL may have rotated.
    const keys = (await this.#storage.signingKeys.list()).filter((k) => k.retiredAt === null);
    return keys.at(-1);
  }

  #privateKey(key: SigningKeyRecord): Promise<CryptoKey> {
    let p = this.#privateKeys.get(key.kid);
    if (!p) {
      p = (async () => {
        const jwk = JSON.parse(decryptPrivateKey(this.#kek, key.kid, key.privateKey)) as JWK;
        try {
          return (await importJWK(jwk, SIGNING_ALG)) as CryptoKey;
        } catch (err) {
          throw new ApiError('BW_ERR_SIGNING_KEY', `signing key ${key.kid} is not a valid Ed25519 key`, {
            cause: err,
          });
        }
      })();
      // A failure is not cached: the next call retries (e.g. after the KEK file is fixed).
      p.catch(() => this.#privateKeys.delete(key.kid));
      this.#privateKeys.set(key.kid, p);
    }
    return p;
  }
}
