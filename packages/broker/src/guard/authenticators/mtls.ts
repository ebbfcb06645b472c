import { X509Certificate } from 'node:crypto';
import { ReasonCode } from '../../reason-codes.js';
import type { MtlsAuthConfig } from '../config.js';
import { normalizeSerial } from '../revocation.js';
import { type Authenticator, AuthMethod, type AuthRequest, type AuthResult } from './types.js';

/** The parts of a peer certificate the authenticator reads. */
export interface CertIdentity {
  cn: string | undefined;
  san: string[];
  serial: string | undefined;
}

/**
 * Reads a peer certificate as the TLS adapter hands it over: a `tls.PeerCertificate` (from
 * `socket.getPeerCertificate()`, `{}` when the client sent none) or a `crypto.X509Certificate`.
 */
export function readCertificate(cert: unknown): CertIdentity | null {
  if (!cert || typeof cert !== 'object') return null;
  if (cert instanceof X509Certificate) {
    const cn = /(?:^|\n)CN=([^\n]*)/.exec(cert.subject)?.[1];
    return { cn, san: splitSan(cert.subjectAltName), serial: cert.serialNumber };
  }
  const c = cert as { subject?: { CN?: string | string[] }; subjectaltname?: string; serialNumber?: string };
  if (!c.subject && !c.serialNumber) return null;
  const cn = Array.isArray(c.subject?.CN) ? c.subject.CN[0] : c.subject?.CN;
  return { cn, san: splitSan(c.subjectaltname), serial: c.serialNumber };
}

function splitSan(s: string | undefined): string[] {
  return s ? s.split(/,\s*/).filter(Boolean) : [];
}

const sanPrefix = { 'san-dns': 'DNS:', 'san-uri': 'URI:', 'san-email': 'email:' } as const;

/**
 * Identity from the client certificate. The TLS adapter has already verified the chain against the
 * listener's CA (`requestCert` + `rejectUnauthorized`); this decides whether that identity may use
 * this client id, and refuses revoked serials. No certificate: pass to the next authenticator.
 */
export class MtlsAuthenticator implements Authenticator {
  readonly method = AuthMethod.Mtls;
  readonly remote = false;
  readonly name: string;
  readonly #config: MtlsAuthConfig;
  readonly #revoked: Set<string>;

  constructor(name: string, config: MtlsAuthConfig) {
    this.name = name;
    this.#config = config;
    this.#revoked = new Set(config.revokedSerials.map(normalizeSerial));
  }

  async start(): Promise<void> {}

  async authenticate(request: AuthRequest): Promise<AuthResult> {
    const cert = readCertificate(request.peerCertificate);
    if (!cert) return { outcome: 'pass' };
    if (cert.serial && this.#revoked.has(normalizeSerial(cert.serial))) {
      return { outcome: 'deny', reason: 'certificate revoked', reasonCode: ReasonCode.Banned };
    }
    const ids = this.#identities(cert);
    if (ids.length === 0)
      return { outcome: 'deny', reason: `certificate has no ${this.#config.identityFrom} identity` };
    if (!this.#config.requireClientIdMatch) return { outcome: 'allow', identity: ids[0]! };
    if (!ids.includes(request.clientId))
      return { outcome: 'deny', reason: 'client id does not match the certificate' };
    return { outcome: 'allow', identity: request.clientId };
  }

  #identities(cert: CertIdentity): string[] {
    const from = this.#config.identityFrom;
    if (from === 'cn') return cert.cn ? [cert.cn] : [];
    const prefix = sanPrefix[from];
    return cert.san.filter((s) => s.startsWith(prefix)).map((s) => s.slice(prefix.length));
  }

  async close(): Promise<void> {}
}
