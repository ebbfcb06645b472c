import type { HttpAuthConfig } from '../config.js';
import {
  type Authenticator,
  type AuthenticatorContext,
  AuthMethod,
  type AuthRequest,
  type AuthResult,
} from './types.js';

/** Longest answer body read from the auth endpoint; a larger one is an error, not a buffer. */
const MAX_BODY = 64 * 1024;

/**
 * Asks an HTTP endpoint: POST JSON `{clientId, username, password, peerAddress, listener}`, answer
 * `{"result": "allow" | "deny" | "ignore", "is_superuser"?: boolean}` (ignore = pass to the next
 * authenticator). A non-2xx status, a malformed answer or a timeout is an error, never a deny.
 */
export class HttpAuthenticator implements Authenticator {
  readonly method = AuthMethod.Http;
  readonly remote = true;
  readonly name: string;
  readonly #config: HttpAuthConfig;
  readonly #ctx: AuthenticatorContext;

  constructor(name: string, config: HttpAuthConfig, ctx: AuthenticatorContext) {
    this.name = name;
    this.#config = config;
    this.#ctx = ctx;
  }

  async start(): Promise<void> {}

  async authenticate(request: AuthRequest, signal: AbortSignal): Promise<AuthResult> {
    let res: Response;
    try {
      res = await fetch(this.#config.url, {
        method: 'POST',
        headers: { ...this.#config.headers, 'content-type': 'application/json', accept: 'application/json' },
        body: JSON.stringify({
          clientId: request.clientId,
          username: request.username ?? null,
          password: request.password?.toString('utf8') ?? null,
          peerAddress: request.peerAddress ?? null,
          listener: request.listener,
        }),
        signal,
      });
    } catch (err) {
      return { outcome: 'error', reason: `http: ${(err as Error).message}` };
    }
    if (res.status < 200 || res.status > 299) {
      await res.body?.cancel();
      return { outcome: 'error', reason: `http: status ${res.status}` };
    }
    let body: { result?: unknown; is_superuser?: unknown };
    try {
      const text = await res.text();
      if (text.length > MAX_BODY) return { outcome: 'error', reason: 'http: answer too large' };
      body = JSON.parse(text) as typeof body;
    } catch (err) {
      this.#ctx.logger.warn({ authenticator: this.name, err }, 'http auth endpoint sent a malformed answer');
      return { outcome: 'error', reason: 'http: malformed answer' };
    }
    switch (body?.result) {
      case 'allow':
        return { outcome: 'allow', identity: request.clientId, superuser: body.is_superuser === true };
      case 'deny':
        return { outcome: 'deny', reason: 'denied by http authenticator' };
      case 'ignore':
        return { outcome: 'pass' };
      default:
        return { outcome: 'error', reason: 'http: answer has no valid result' };
    }
  }

  async close(): Promise<void> {}
}
