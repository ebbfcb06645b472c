import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ConnectRequest } from '../../src/options.js';

/** A CONNECT as the engine hands it to the guard. */
export function connect(
  clientId: string,
  o: { username?: string; password?: string | Buffer; listener?: string; peerCertificate?: unknown } = {},
): ConnectRequest {
  return {
    clientId,
    ...(o.username !== undefined ? { username: o.username } : {}),
    ...(o.password !== undefined
      ? { password: Buffer.isBuffer(o.password) ? o.password : Buffer.from(o.password) }
      : {}),
    protocolVersion: 5,
    keepalive: 60,
    clean: true,
    info: {
      listener: o.listener ?? 'mqtt',
      transport: 'tcp',
      remoteAddress: '127.0.0.1',
      ...(o.peerCertificate !== undefined ? { peerCertificate: o.peerCertificate } : {}),
    },
  };
}

/** A fresh temp dir, removed by the returned cleanup. */
export function tempDir(prefix: string): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), `bw-${prefix}-`));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A real HTTP server on 127.0.0.1 port 0. */
export async function startHttp(
  handler: http.RequestListener,
): Promise<{ url: string; server: http.Server; close: () => Promise<void> }> {
  const server = http.createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    server,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export function readBody(req: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let s = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => {
      s += c;
    });
    req.on('end', () => resolve(s));
    req.on('error', reject);
  });
}
