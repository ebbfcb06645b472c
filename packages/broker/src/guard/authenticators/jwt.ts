import { createPublicKey, type KeyObject } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import {
  createLocalJWKSet,
  decodeJwt,
  errors,
  type JSONWebKeySet,
  type JWTVerifyGetKey,
  jwtVerify,
} from 'jose';
import type { TimerHandle } from '../../clock.js';
import type { JwtAuthConfig } from '../config.js';
import {
  type Authenticator,
  type AuthenticatorContext,
  AuthMethod,
  type AuthRequest,
  type AuthResult,
} from './types.js';

const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

/** Does this look like a compact JWS? (Cheap test before any parsing.) */
export function looksLikeJwt(s: string | undefined): s is string {
  return s !== undefined && s.length < 16_384 && JWT_SHAPE.test(s);
}

/** The `jti` of a token without verifying it — for the revocation check that runs before anything else. */
export function peekTokenId(token: string): string | undefined {
  try {
    const jti = decodeJwt(token).jti;
    return typeof jti === 'string' ? jti : undefined;
  } catch {
    return undefined;
  }
}

/**
 * JWTs verified locally: the broker never calls the issuer at connect time (DESIGN.md §5). Keys
 * come from a JWKS URL — fetched at start, refreshed in the background, kept when a refresh fails,
 * refreshed early (at most once per `unknownKidRefreshSec`) when a token names an unknown `kid`,
 * i.e. after a key rotation — or from a PEM public key file.
 *
 * Answers: not a JWT → pass (the next authenticator may take the password); no keys yet (JWKS
 * down since start) → error (0x88); any verification failure → deny.
 */
export class JwtAuthenticator implements Authenticator {
  readonly method = AuthMethod.Jwt;
  readonly remote = false;
  readonly name: string;
  readonly #config: JwtAuthConfig;
  readonly #ctx: AuthenticatorContext;
  #keys: JWTVerifyGetKey | KeyObject | null = null;
  #loadedAt = 0;
  #lastKidRefresh = Number.NEGATIVE_INFINITY;
  #refreshing: Promise<boolean> | null = null;
  #timer: TimerHandle | null = null;
  #closed = false;

  constructor(name: string, config: JwtAuthConfig, ctx: AuthenticatorContext) {
    this.name = name;
    this.#config = config;
    this.#ctx = ctx;
  }

  get tokenField(): 'password' | 'username' {
    return this.#config.tokenField;
  }

  /** True once keys have been loaded at least once. */
  get ready(): boolean {
    return this.#keys !== null;
  }

  async start(): Promise<void> {
    await this.refresh();
    // Also retries a failed start: the JWKS endpoint being down at start is not fatal.
    this.#timer ??= this.#ctx.clock.setInterval(
      () => void this.refresh(),
      this.#config.refreshIntervalSec * 1000,
    );
  }

  /** Reloads the keys; concurrent calls share one fetch. Resolves false when it failed. */
  refresh(): Promise<boolean> {
    this.#refreshing ??= this.#load().finally(() => {
      this.#refreshing = null;
    });
    return this.#refreshing;
  }

  async #load(): Promise<boolean> {
    const { jwksUrl, publicKeyFile } = this.#config;
    try {
      if (publicKeyFile) {
        this.#keys = createPublicKey(await fsp.readFile(publicKeyFile, 'utf8'));
      } else {
        const res = await fetch(jwksUrl!, {
          signal: AbortSignal.timeout(this.#config.fetchTimeoutMs),
          headers: { accept: 'application/json' },
        });
        if (!res.ok) throw new Error(`JWKS endpoint answered HTTP ${res.status}`);
        const body = (await res.json()) as JSONWebKeySet;
        if (!body || !Array.isArray(body.keys)) throw new Error('JWKS document has no keys array');
        this.#keys = createLocalJWKSet(body);
      }
      this.#loadedAt = this.#ctx.clock.now();
      this.#ctx.logger.debug({ authenticator: this.name }, 'JWT keys loaded');
      return true;
    } catch (err) {
      const age = this.#keys ? Math.round((this.#ctx.clock.now() - this.#loadedAt) / 1000) : null;
      const stale = age !== null && age > this.#config.maxKeyAgeSec;
      if (!this.#closed) {
        this.#ctx.logger[this.#keys && !stale ? 'warn' : 'error'](
          { authenticator: this.name, err, keyAgeSec: age },
          this.#keys ? 'JWT key refresh failed; keeping the keys we have' : 'JWT keys unavailable',
        );
      }
      return false;
    }
  }

  async authenticate(request: AuthRequest): Promise<AuthResult> {
    const raw =
      this.#config.tokenField === 'password' ? request.password?.toString('utf8') : request.username;
    if (!looksLikeJwt(raw)) return { outcome: 'pass' };
    if (!this.#keys) return { outcome: 'error', reason: 'JWT keys unavailable' };
    let result = await this.#verify(raw, request.clientId);
    if (result === 'unknown-kid' && this.#config.jwksUrl) {
      const now = this.#ctx.clock.now();
      // A forged token with a random kid must not make us hammer the JWKS endpoint.
      if (now - this.#lastKidRefresh >= this.#config.unknownKidRefreshSec * 1000) {
        this.#lastKidRefresh = now;
        if (await this.refresh()) result = await this.#verify(raw, request.clientId);
      }
    }
    if (result === 'unknown-kid') return { outcome: 'deny', reason: 'token signed by an unknown key' };
    return result;
  }

  async #verify(token: string, clientId: string): Promise<AuthResult | 'unknown-kid'> {
    const c = this.#config;
    try {
      const options = {
        algorithms: c.algorithms as string[],
        clockTolerance: c.clockSkewSec,
        currentDate: new Date(this.#ctx.clock.now()),
        ...(c.issuer ? { issuer: c.issuer } : {}),
        ...(c.audience ? { audience: c.audience } : {}),
      };
      const keys = this.#keys!;
      const { payload } =
        typeof keys === 'function'
          ? await jwtVerify(token, keys, options)
          : await jwtVerify(token, keys, options);
      if (c.subjectClaim !== false && payload[c.subjectClaim] !== clientId) {
        return { outcome: 'deny', reason: `token ${c.subjectClaim} does not match the client id` };
      }
      return {
        outcome: 'allow',
        identity: clientId,
        ...(typeof payload.exp === 'number' && c.disconnectOnExpiry ? { expiresAt: payload.exp * 1000 } : {}),
        ...(typeof payload.jti === 'string' ? { tokenId: payload.jti } : {}),
        // No iat: it cannot be shown to postdate an "issued before T" revocation, so it counts as old.
        issuedAt: typeof payload.iat === 'number' ? payload.iat * 1000 : 0,
      };
    } catch (err) {
      if (err instanceof errors.JWKSNoMatchingKey) return 'unknown-kid';
      if (err instanceof errors.JOSEError) return { outcome: 'deny', reason: `invalid token (${err.code})` };
      // jose throws TypeError for some malformed inputs; still the token's fault, not ours.
      return { outcome: 'deny', reason: 'invalid token' };
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    if (this.#timer) this.#ctx.clock.clearInterval(this.#timer);
    this.#timer = null;
    await this.#refreshing;
  }
}
