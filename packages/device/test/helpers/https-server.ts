import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';

export interface SelfSigned {
  key: string;
  cert: string;
}

/** A throwaway self-signed certificate for 127.0.0.1/localhost, made with the openssl CLI. */
export function selfSigned(): SelfSigned {
  const dir = mkdtempSync(join(tmpdir(), 'bw-device-tls-'));
  try {
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-keyout',
        join(dir, 'key.pem'),
        '-out',
        join(dir, 'cert.pem'),
        '-days',
        '1',
        '-subj',
        '/CN=localhost',
        '-addext',
        'subjectAltName=IP:127.0.0.1,DNS:localhost',
      ],
      { stdio: 'ignore' },
    );
    return {
      key: readFileSync(join(dir, 'key.pem'), 'utf8'),
      cert: readFileSync(join(dir, 'cert.pem'), 'utf8'),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export interface ReceivedRequest {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: Buffer;
  /** Subject CN of the client certificate, when the client presented one (mTLS). */
  clientCertCN: string | null;
}

/**
 * A real HTTPS server on 127.0.0.1, port 0, that records requests. `respond` picks the status
 * for each request (default 204).
 */
export async function startHttpsServer(
  tls: SelfSigned,
  respond: (
    req: ReceivedRequest,
    index: number,
  ) => number | { status: number; headers?: Record<string, string>; body?: Buffer } = () => 204,
) {
  const received: ReceivedRequest[] = [];
  const waiters: Array<{ n: number; resolve: () => void }> = [];
  const server = https.createServer(
    // Ask for a client certificate but do not require one (most tests send none).
    { key: tls.key, cert: tls.cert, requestCert: true, rejectUnauthorized: false },
    (req: IncomingMessage, res: ServerResponse) => {
      // Read before the body: once the request ended the socket may already be released.
      const peer = (req.socket as TLSSocket).getPeerCertificate();
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const r: ReceivedRequest = {
          method: req.method ?? '',
          url: req.url ?? '',
          headers: req.headers,
          body: Buffer.concat(chunks),
          clientCertCN: peer && typeof peer.subject?.CN === 'string' ? peer.subject.CN : null,
        };
        const index = received.length;
        received.push(r);
        const out = respond(r, index);
        const o = typeof out === 'number' ? { status: out } : out;
        res.writeHead(o.status, o.headers);
        res.end(o.body);
        for (const w of waiters.filter((w) => received.length >= w.n)) w.resolve();
      });
    },
  );
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    url: `https://127.0.0.1:${port}`,
    received,
    /** Resolves once `n` requests have arrived (bounded by `timeoutMs`). */
    waitFor(n: number, timeoutMs = 5000): Promise<void> {
      if (received.length >= n) return Promise.resolve();
      return new Promise((resolve, reject) => {
        const t = setTimeout(
          () => reject(new Error(`only ${received.length} of ${n} requests arrived`)),
          timeoutMs,
        );
        waiters.push({
          n,
          resolve: () => {
            clearTimeout(t);
            resolve();
          },
        });
      });
    },
    async close(): Promise<void> {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
