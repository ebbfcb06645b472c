import { readFileSync } from 'node:fs';
import tls from 'node:tls';
import type { TlsFilesConfig } from '../config/schema.js';
import type { ConnectionInfo } from '../options.js';
import type { StreamHandler } from './types.js';

/** Reads the PEM files named in the config into `tls.createServer` / `https.createServer` options. */
export function tlsServerOptions(files: TlsFilesConfig, handshakeTimeoutMs: number): tls.TlsOptions {
  return {
    cert: readFileSync(files.cert),
    key: readFileSync(files.key),
    ...(files.ca ? { ca: readFileSync(files.ca) } : {}),
    requestCert: files.requestCert,
    // With requestCert the listener is mTLS: a client without a certificate signed by `ca` is
    // refused in the handshake, before it costs the broker anything.
    rejectUnauthorized: files.requestCert,
    // A peer that opens TCP and never finishes the handshake is a zombie socket too (DESIGN.md §3):
    // give it the same budget as a socket that never sends CONNECT.
    handshakeTimeout: handshakeTimeoutMs,
  };
}

/** The certificate the peer presented, or undefined when it presented none. */
export function peerCertificateOf(
  socket: tls.TLSSocket,
  requested: boolean,
): ConnectionInfo['peerCertificate'] {
  if (!requested) return undefined;
  const cert = socket.getPeerCertificate(true);
  return cert && Object.keys(cert).length > 0 ? cert : undefined;
}

/** MQTT over TLS (and mTLS when `requestCert`): the decrypted stream goes to `handler.handle()`. */
export function createTlsServer(
  handler: StreamHandler,
  listener: string,
  files: TlsFilesConfig,
  handshakeTimeoutMs: number,
): tls.Server {
  const server = tls.createServer(tlsServerOptions(files, handshakeTimeoutMs), (socket) => {
    socket.setNoDelay(true);
    handler.handle(socket, {
      listener,
      transport: 'tls',
      remoteAddress: socket.remoteAddress,
      remotePort: socket.remotePort,
      peerCertificate: peerCertificateOf(socket, files.requestCert),
    });
  });
  return server;
}
