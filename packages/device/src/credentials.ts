/**
 * Device credentials and how each one is presented to the broker.
 *
 * - `{ token }`: a static JWT, sent as the MQTT password with the device id as user name (the
 *   convention the guard's JWT authenticator expects).
 * - `{ username, password }`: a password-file identity.
 * - `{ key, cert, ca? }`: a client certificate for mTLS (`mqtts://` servers).
 * - `{ tokenProvider }`: a function that fetches a short-lived JWT (normally from the control
 *   plane's token endpoint). It is called before a connect when there is no token or the token
 *   expires within `refreshMarginMs`, ahead of expiry while connected, and again after the broker
 *   refused the token.
 */
import { createHmac, sign } from 'node:crypto';
import { DeviceError } from './errors.js';
import type { Scheduler } from './scheduler.js';

/** Trusted CA certificate(s), PEM or DER (the shape MQTT.js and node:tls accept). */
export type CaInput = string | string[] | Buffer | Buffer[];

export interface IssuedToken {
  token: string;
  /** When the token expires: epoch milliseconds or a Date. */
  expiresAt: number | Date;
}

export type TokenProvider = () => Promise<IssuedToken>;

export type Credentials =
  | { token: string }
  | { username: string; password: string }
  | { key: string | Buffer; cert: string | Buffer; ca?: CaInput; passphrase?: string }
  | { tokenProvider: TokenProvider; refreshMarginMs?: number };

/** Fields of MQTT.js connect options that carry the credential. */
export interface CredentialFields {
  username?: string;
  password?: string;
  key?: string | Buffer;
  cert?: string | Buffer;
  ca?: CaInput;
  passphrase?: string;
}

export const defaultRefreshMarginMs = 60_000;

interface CachedToken {
  token: string;
  expiresAt: number;
}

/**
 * Keeps the current token of a `tokenProvider` credential. One fetch at a time: concurrent
 * callers share the in-flight promise (a reconnect and a scheduled refresh never both call the
 * provider).
 */
export class TokenManager {
  readonly #provider: TokenProvider;
  readonly #marginMs: number;
  readonly #scheduler: Scheduler;
  #current: CachedToken | null = null;
  #inflight: Promise<CachedToken> | null = null;

  constructor(provider: TokenProvider, marginMs: number, scheduler: Scheduler) {
    this.#provider = provider;
    this.#marginMs = marginMs;
    this.#scheduler = scheduler;
  }

  get current(): Readonly<CachedToken> | null {
    return this.#current;
  }

  get marginMs(): number {
    return this.#marginMs;
  }

  /** A token that is valid for at least the margin, fetching a new one if needed. */
  async fresh(): Promise<CachedToken> {
    const c = this.#current;
    if (c && c.expiresAt - this.#marginMs > this.#scheduler.now()) return c;
    return this.refresh();
  }

  /** Fetches a new token now (shares an in-flight fetch). */
  refresh(): Promise<CachedToken> {
    if (this.#inflight) return this.#inflight;
    const p = (async () => {
      let issued: IssuedToken;
      try {
        issued = await this.#provider();
      } catch (err) {
        throw new DeviceError('BW_ERR_DEVICE_TOKEN_PROVIDER', (err as Error)?.message, { cause: err });
      }
      const expiresAt =
        issued?.expiresAt instanceof Date ? issued.expiresAt.getTime() : Number(issued?.expiresAt);
      if (typeof issued?.token !== 'string' || issued.token === '' || !Number.isFinite(expiresAt)) {
        throw new DeviceError(
          'BW_ERR_DEVICE_TOKEN_PROVIDER',
          'provider must resolve to { token, expiresAt }',
        );
      }
      this.#current = { token: issued.token, expiresAt };
      return this.#current;
    })();
    this.#inflight = p;
    const clear = () => {
      if (this.#inflight === p) this.#inflight = null;
    };
    p.then(clear, clear);
    return p;
  }

  /** The broker refused the current token: the next connect fetches a new one. */
  invalidate(): void {
    this.#current = null;
  }
}

export function validateCredentials(c: unknown): asserts c is Credentials | undefined {
  if (c === undefined) return;
  const bad = (why: string) => new DeviceError('BW_ERR_DEVICE_OPTIONS_INVALID', `credentials: ${why}`);
  if (typeof c !== 'object' || c === null) throw bad('must be an object');
  if ('tokenProvider' in c) {
    if (typeof c.tokenProvider !== 'function') throw bad('tokenProvider must be a function');
    return;
  }
  if ('token' in c) {
    if (typeof c.token !== 'string' || c.token === '') throw bad('token must be a non-empty string');
    return;
  }
  if ('username' in c || 'password' in c) {
    if (
      !('username' in c) ||
      typeof c.username !== 'string' ||
      !('password' in c) ||
      typeof c.password !== 'string'
    ) {
      throw bad('username and password must both be strings');
    }
    return;
  }
  if ('key' in c || 'cert' in c) {
    if (!('key' in c && c.key) || !('cert' in c && c.cert))
      throw bad('a client certificate needs both key and cert');
    return;
  }
  throw bad('expected { token }, { username, password }, { key, cert } or { tokenProvider }');
}

/** The MQTT.js fields for a credential (`token` is the current provider token, if any). */
export function credentialFields(
  deviceId: string,
  c: Credentials | undefined,
  token?: string,
): CredentialFields {
  if (c === undefined) return {};
  if ('tokenProvider' in c) return token === undefined ? {} : { username: deviceId, password: token };
  if ('token' in c) return { username: deviceId, password: c.token };
  if ('username' in c) return { username: c.username, password: c.password };
  const out: CredentialFields = { key: c.key, cert: c.cert };
  if (c.ca !== undefined) out.ca = c.ca;
  if (c.passphrase !== undefined) out.passphrase = c.passphrase;
  return out;
}

/** Header carrying the signature of an out-of-band report body. */
export const SIGNATURE_HEADER = 'x-breakwater-signature';

/**
 * Signs an out-of-band report body with the device credential:
 * - token, provider token or password: `hmac-sha256=<hex HMAC-SHA256(secret, body)>`;
 * - client certificate: `sig-sha256=<base64 signature of SHA-256(body) with the private key>`
 *   (verifiable with the certificate the registry holds; the HTTPS request also presents the
 *   certificate for mTLS).
 * Returns null without a credential (the report is sent unsigned and the server may reject it).
 */
export function signBody(
  body: Buffer,
  c: Credentials | undefined,
  currentToken: string | undefined,
): string | null {
  if (c === undefined) return null;
  let secret: string | undefined;
  if ('tokenProvider' in c) secret = currentToken;
  else if ('token' in c) secret = c.token;
  else if ('password' in c) secret = c.password;
  else {
    const key = c.passphrase === undefined ? c.key : { key: c.key, passphrase: c.passphrase };
    return `sig-sha256=${sign('sha256', body, key).toString('base64')}`;
  }
  if (secret === undefined) return null;
  return `hmac-sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}
