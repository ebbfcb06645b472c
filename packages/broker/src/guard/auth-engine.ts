import type { Logger } from 'pino';
import type { Clock } from '../clock.js';
import { ReasonCode } from '../reason-codes.js';
import { looksLikeJwt, peekTokenId } from './authenticators/jwt.js';
import { readCertificate } from './authenticators/mtls.js';
import type { Authenticator, AuthRequest, AuthResult } from './authenticators/types.js';
import type { BackendGate } from './backend-gate.js';
import type { CacheConfig } from './config.js';
import { DecisionCache } from './decision-cache.js';
import type { KeyedHasher } from './keyed-hash.js';
import type { KnownGoodStore } from './known-good-store.js';
import { AuthOutcome, type AuthOutcomeValue, type GuardMetrics } from './metrics.js';
import type { RevocationList } from './revocation.js';

/** The engine's verdict on one CONNECT. */
export type AuthDecision =
  | {
      ok: true;
      identity: string;
      superuser: boolean;
      expiresAt?: number;
      tokenId?: string;
      issuedAt?: number;
      method: string;
      outcome: AuthOutcomeValue;
    }
  | {
      ok: false;
      reasonCode: number;
      reasonString: string;
      userProperties?: Record<string, string>;
      method: string;
      outcome: AuthOutcomeValue;
    };

export interface AuthEngineOptions {
  listener: string;
  chain: readonly Authenticator[];
  gates: ReadonlyMap<string, BackendGate>;
  cache: CacheConfig;
  maxCredentialBytes: number;
  clock: Clock;
  hasher: KeyedHasher;
  logger: Logger;
  metrics?: GuardMetrics | undefined;
  store: KnownGoodStore | null;
  revocations: RevocationList;
  /** Break-glass: when it returns a reason, the listener admits without its backends. */
  bypass?: () => string | null;
}

/** One remote answer plus how it was obtained (for the metric and the stale-if-error rule). */
interface RemoteAnswer {
  result: AuthResult;
  outcome: AuthOutcomeValue;
}

const NEVER = new AbortController().signal;
const MAY_WAIT = { wait: true } as const;
const NO_WAIT = { wait: false } as const;

/** Base of the `retry-after-ms` hint on 0x88, jittered so refused clients do not return in step. */
const RETRY_AFTER_MIN_MS = 5_000;

/**
 * Authentication for one listener: runs the ordered chain and puts, in front of every remote
 * backend, the positive cache (TTL), stale-if-error, the negative cache, single-flight, and the
 * backend's gate (rate cap, bulkhead, breaker, timeout). Order per CONNECT:
 *
 *   size limits → revocation denylist → break-glass → chain (local: direct; remote: cache → gate)
 *
 * A backend error never becomes a deny: with no cache to decide, the answer is 0x88.
 */
export class AuthEngine {
  readonly listener: string;
  readonly cache: DecisionCache;
  readonly #o: AuthEngineOptions;
  readonly #flights = new Map<string, Promise<AuthResult>>();

  constructor(options: AuthEngineOptions) {
    this.#o = options;
    this.listener = options.listener;
    this.cache = new DecisionCache(options.cache.maxEntries, options.cache.persist ? options.store : null);
  }

  /**
   * Cheap and synchronous, for admission's post-outage preference (AdmissionGate.onConnect): true
   * when this CONNECT can be decided without a backend call — the chain starts with a local
   * authenticator (jwt, mtls, password file, anonymous) or is empty, the listener is bypassed,
   * or the first remote authenticator holds a known-good entry for these exact credentials
   * (fresh, or young enough for stale-if-error). One keyed hash and one map (or indexed SQLite)
   * lookup, which `authenticate` would do anyway.
   */
  verifiesLocally(req: {
    clientId: string;
    username?: string | undefined;
    password?: Buffer | undefined;
  }): boolean {
    const o = this.#o;
    const first = o.chain[0];
    if (first === undefined || !first.remote) return true;
    const max = o.maxCredentialBytes;
    // Oversize credentials are refused before any hashing: locally, and without hashing them here.
    if (
      (req.password && req.password.length > max) ||
      (req.username && Buffer.byteLength(req.username) > max)
    )
      return true;
    if (o.bypass?.()) return true;
    const key = o.hasher.hash('authn', this.listener, first.name, req.clientId, req.username, req.password);
    const known = this.cache.getPositive(key);
    return known !== undefined && o.clock.now() - known.verifiedAt < o.cache.staleIfErrorSec * 1000;
  }

  subjectOf(clientId: string): string {
    return this.#o.hasher.hash('subject', clientId);
  }

  async authenticate(req: AuthRequest): Promise<AuthDecision> {
    const o = this.#o;
    const max = o.maxCredentialBytes;
    // Checked before any hashing: a 1 MB "password" must not cost an HMAC, an scrypt or a query.
    if (
      (req.password && req.password.length > max) ||
      (req.username && Buffer.byteLength(req.username) > max)
    ) {
      return this.#refuse(
        'none',
        AuthOutcome.Failure,
        ReasonCode.BadUserNameOrPassword,
        'credentials too long',
      );
    }

    const token = looksLikeJwt(req.password?.toString('latin1'))
      ? req.password!.toString('utf8')
      : looksLikeJwt(req.username)
        ? req.username
        : undefined;
    const revoked = o.revocations.check(
      req.clientId,
      token ? peekTokenId(token) : undefined,
      readCertificate(req.peerCertificate)?.serial,
    );
    if (revoked) return this.#refuse('revocation', AuthOutcome.Failure, ReasonCode.Banned, revoked);

    const bypass = o.bypass?.();
    if (bypass) {
      o.logger.info(
        { listener: this.listener, clientId: req.clientId, bypass },
        'authn bypassed (break-glass)',
      );
      return this.#admit('bypass', AuthOutcome.Bypass, { outcome: 'allow', superuser: false }, req.clientId);
    }

    let error: { method: string; result: Extract<AuthResult, { outcome: 'error' }> } | null = null;
    let busy = false;
    let negativeHit = false;
    let lastMethod = 'none';
    for (const a of o.chain) {
      lastMethod = a.method;
      let answer: RemoteAnswer;
      if (a.remote) {
        answer = await this.#remote(a, req);
      } else {
        let result: AuthResult;
        try {
          result = await a.authenticate(req, NEVER);
        } catch (err) {
          o.logger.error({ listener: this.listener, authenticator: a.name, err }, 'authenticator threw');
          result = { outcome: 'error', reason: 'authenticator failed' };
        }
        answer = { result, outcome: AuthOutcome.Success };
      }
      const r = answer.result;
      if (r.outcome === 'allow') {
        // The verified jti and iat (a token's iat is only trusted once its signature is).
        const revokedToken =
          r.tokenId !== undefined || r.issuedAt !== undefined
            ? o.revocations.check(req.clientId, r.tokenId, undefined, r.issuedAt)
            : null;
        if (revokedToken) return this.#refuse(a.method, AuthOutcome.Failure, ReasonCode.Banned, revokedToken);
        return this.#admit(a.method, answer.outcome, r, req.clientId);
      }
      if (r.outcome === 'deny') {
        const outcome =
          answer.outcome === AuthOutcome.NegativeCacheHit ? answer.outcome : AuthOutcome.Failure;
        o.logger.debug(
          { listener: this.listener, clientId: req.clientId, authenticator: a.name, reason: r.reason },
          'authn denied',
        );
        return this.#refuse(a.method, outcome, r.reasonCode ?? ReasonCode.BadUserNameOrPassword, r.reason);
      }
      if (r.outcome === 'error') {
        error ??= { method: a.method, result: r };
        if (r.busy === true) {
          // Not an error of the backend: its gate had no room. One per refused attempt in a storm
          // (the rejected-calls metric counts them), so not worth a log line each.
          busy = true;
          continue;
        }
        o.logger.warn(
          { listener: this.listener, clientId: req.clientId, authenticator: a.name, reason: r.reason },
          'authn backend error',
        );
      }
      if (answer.outcome === AuthOutcome.NegativeCacheHit) negativeHit = true;
    }
    if (error) {
      const retry = Math.max(RETRY_AFTER_MIN_MS, error.result.retryAfterMs ?? 0);
      // Busy (the limiter or the operator's ceiling is full: come back soon) is told apart from
      // unavailable (errors, open breaker): 0x89 vs 0x88; MQTT 3.1.1 gets return code 3 for both.
      const busyOnly = busy && error.result.busy === true && error.result.reason !== 'breaker_open';
      return this.#refuse(
        error.method,
        busyOnly ? AuthOutcome.Busy : AuthOutcome.Error,
        busyOnly ? ReasonCode.ServerBusy : ReasonCode.ServerUnavailable,
        busyOnly ? 'authentication backend busy' : 'authentication backend unavailable',
        {
          'retry-after-ms': String(Math.round(retry * (1 + Math.random()))),
        },
      );
    }
    const credentials = req.username !== undefined || req.password !== undefined;
    return this.#refuse(
      lastMethod,
      negativeHit ? AuthOutcome.NegativeCacheHit : AuthOutcome.Failure,
      credentials ? ReasonCode.BadUserNameOrPassword : ReasonCode.NotAuthorized,
      credentials ? 'bad user name or password' : 'not authorized',
    );
  }

  async #remote(a: Authenticator, req: AuthRequest): Promise<RemoteAnswer> {
    const o = this.#o;
    const now = o.clock.now();
    const key = o.hasher.hash('authn', this.listener, a.name, req.clientId, req.username, req.password);
    const known = this.cache.getPositive(key);
    if (known && now - known.verifiedAt < o.cache.positiveTtlSec * 1000) {
      return {
        result: { outcome: 'allow', identity: known.identity, superuser: known.superuser },
        outcome: AuthOutcome.CacheHit,
      };
    }
    const negative = this.cache.getNegative(key, now);
    if (negative) {
      const result: AuthResult =
        negative.outcome === 'deny'
          ? {
              outcome: 'deny',
              reason: negative.reason,
              ...(negative.reasonCode ? { reasonCode: negative.reasonCode } : {}),
            }
          : { outcome: 'pass' };
      return { result, outcome: AuthOutcome.NegativeCacheHit };
    }
    // Single-flight: identical concurrent checks (a device's retries, a reconnect wave sharing
    // one credential) wait for one backend call.
    // A device known good (stale, within stale-if-error) never waits for a backend slot: it is
    // admitted from the cache when none is free, so the crowd that needs the backend cannot delay
    // the fleet that does not (issue 11, "known-good devices keep priority").
    const mayWait = known === undefined || now - known.verifiedAt >= o.cache.staleIfErrorSec * 1000;
    let flight = this.#flights.get(key);
    if (!flight) {
      flight = this.#call(a, req, key, mayWait).finally(() => this.#flights.delete(key));
      this.#flights.set(key, flight);
    }
    const result = await flight;
    if (result.outcome === 'error') {
      if (known && o.clock.now() - known.verifiedAt < o.cache.staleIfErrorSec * 1000) {
        return {
          result: { outcome: 'allow', identity: known.identity, superuser: known.superuser },
          outcome: AuthOutcome.StaleAdmit,
        };
      }
      return { result, outcome: AuthOutcome.Error };
    }
    return { result, outcome: AuthOutcome.Success };
  }

  async #call(a: Authenticator, req: AuthRequest, key: string, wait: boolean): Promise<AuthResult> {
    const o = this.#o;
    const gate = o.gates.get(a.name)!;
    const result = await gate.call((signal) => a.authenticate(req, signal), wait ? MAY_WAIT : NO_WAIT);
    const now = o.clock.now();
    switch (result.outcome) {
      case 'allow':
        try {
          this.cache.setPositive({
            key,
            backend: a.name,
            subject: this.subjectOf(req.clientId),
            identity: result.identity ?? req.clientId,
            superuser: result.superuser === true,
            verifiedAt: now,
          });
        } catch (err) {
          o.logger.error({ listener: this.listener, err }, 'cannot persist known-good credential');
        }
        break;
      case 'deny':
        this.cache.deletePositive(key);
        this.cache.setNegative(key, {
          until: now + o.cache.negativeTtlSec * 1000,
          outcome: 'deny',
          reason: result.reason,
          ...(result.reasonCode ? { reasonCode: result.reasonCode } : {}),
          backend: a.name,
        });
        break;
      case 'pass':
        this.cache.setNegative(key, {
          until: now + o.cache.negativeTtlSec * 1000,
          outcome: 'pass',
          reason: 'unknown user',
          backend: a.name,
        });
        break;
    }
    return result;
  }

  #admit(
    method: string,
    outcome: AuthOutcomeValue,
    r: Extract<AuthResult, { outcome: 'allow' }>,
    clientId: string,
  ): AuthDecision {
    this.#o.metrics?.authTotal.inc({ listener: this.listener, method, outcome });
    return {
      ok: true,
      identity: r.identity ?? clientId,
      superuser: r.superuser === true,
      ...(r.expiresAt !== undefined ? { expiresAt: r.expiresAt } : {}),
      ...(r.tokenId !== undefined ? { tokenId: r.tokenId } : {}),
      ...(r.issuedAt !== undefined ? { issuedAt: r.issuedAt } : {}),
      method,
      outcome,
    };
  }

  #refuse(
    method: string,
    outcome: AuthOutcomeValue,
    reasonCode: number,
    reasonString: string,
    userProperties?: Record<string, string>,
  ): AuthDecision {
    this.#o.metrics?.authTotal.inc({ listener: this.listener, method, outcome });
    return {
      ok: false,
      reasonCode,
      reasonString,
      ...(userProperties ? { userProperties } : {}),
      method,
      outcome,
    };
  }
}
