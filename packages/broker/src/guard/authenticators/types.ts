import type { Logger } from 'pino';
import type { Clock } from '../../clock.js';
import type { KeyedHasher } from '../keyed-hash.js';

/** What an authenticator sees of a CONNECT. */
export interface AuthRequest {
  listener: string;
  clientId: string;
  username: string | undefined;
  password: Buffer | undefined;
  peerAddress: string | undefined;
  /** Peer certificate from the TLS adapter (tls.PeerCertificate or crypto.X509Certificate). */
  peerCertificate: unknown;
}

/**
 * An authenticator's answer. `pass` hands the request to the next authenticator of the chain;
 * `error` means "could not decide" (backend down, timeout) and is never turned into a deny.
 */
export type AuthResult =
  | {
      outcome: 'allow';
      /** Identity for authorization (default: the client id). */
      identity?: string;
      superuser?: boolean;
      /** Epoch ms after which the session must end (JWT `exp`). */
      expiresAt?: number;
      /** Token id (`jti`), for revocation of live sessions. */
      tokenId?: string;
      /** Token issue time (epoch ms, JWT `iat`; 0 when absent), for "issued before T" revocation. */
      issuedAt?: number;
    }
  | { outcome: 'deny'; reason: string; reasonCode?: number }
  | { outcome: 'pass' }
  | {
      outcome: 'error';
      reason: string;
      retryAfterMs?: number;
      /** Not sent: the backend's gate had no room (limit, rate ceiling, open breaker). */
      busy?: boolean;
    };

export const AuthMethod = {
  Jwt: 'jwt',
  PasswordFile: 'password-file',
  Postgres: 'postgres',
  Http: 'http',
  Mtls: 'mtls',
  Anonymous: 'anonymous',
} as const;
export type AuthMethodValue = (typeof AuthMethod)[keyof typeof AuthMethod];

export interface Authenticator {
  /** Configured name (unique per guard); the `backend` metric label for remote ones. */
  readonly name: string;
  readonly method: AuthMethodValue;
  /**
   * Remote authenticators (postgres, http) can fail and are slow: the AuthEngine puts the decision
   * cache, single-flight and the BackendGate (adaptive limit, wait queue, breaker) in front of them. Local ones (jwt,
   * password file, mtls, anonymous) decide in-process and are called directly.
   */
  readonly remote: boolean;
  /** Loads keys/files. Must not throw for an unavailable source: it logs and retries. */
  start(): Promise<void>;
  authenticate(request: AuthRequest, signal: AbortSignal): Promise<AuthResult>;
  close(): Promise<void>;
}

export interface AuthenticatorContext {
  clock: Clock;
  logger: Logger;
  hasher: KeyedHasher;
}
