import http from 'node:http';
import https from 'node:https';
import type { Socket } from 'node:net';
import { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import { type WebSocket, WebSocketServer } from 'ws';
import type { TlsFilesConfig } from '../config/schema.js';
import { peerCertificateOf, tlsServerOptions } from './tls.js';
import type { StreamHandler } from './types.js';

/**
 * A WebSocket as the byte stream `broker.handle()` expects. Lighter than ws's
 * `createWebSocketStream` in the two ways that matter here: `_writev` sends a corked batch of
 * packets as ONE binary frame (the broker corks per tick), and a text frame closes the
 * connection instead of being fed to the parser.
 */
export class WebSocketDuplex extends Duplex {
  readonly #ws: WebSocket;

  constructor(ws: WebSocket) {
    // allowHalfOpen false: when the peer's close arrives the writable side ends too, like TCP.
    super({ allowHalfOpen: false });
    this.#ws = ws;
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      // [MQTT-6.0.0-1] MQTT Control Packets MUST be sent in WebSocket binary data frames; a
      // receiver that gets another frame type MUST close the Network Connection.
      if (!isBinary) {
        ws.close(1003, 'MQTT needs binary frames');
        return;
      }
      // [MQTT-6.0.0-2] packets need not align with frames: the broker's parser is incremental.
      if (!this.push(data)) ws.pause();
    });
    ws.once('close', () => this.push(null));
    ws.once('error', (err) => this.destroy(err));
  }

  override _read(): void {
    if (this.#ws.isPaused) this.#ws.resume();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.#ws.send(chunk, { binary: true }, callback);
  }

  override _writev(
    chunks: Array<{ chunk: Buffer; encoding: BufferEncoding }>,
    callback: (error?: Error | null) => void,
  ): void {
    const buffers = new Array<Buffer>(chunks.length);
    for (let i = 0; i < chunks.length; i++) buffers[i] = chunks[i]!.chunk;
    this.#ws.send(Buffer.concat(buffers), { binary: true }, callback);
  }

  override _final(callback: (error?: Error | null) => void): void {
    const ws = this.#ws;
    if (ws.readyState === ws.CLOSED) {
      callback();
      return;
    }
    // Wait for the closing handshake so the last packets (e.g. DISCONNECT 0x8B) reach the peer.
    ws.once('close', () => callback());
    if (ws.readyState === ws.OPEN) ws.close(1000);
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    const ws = this.#ws;
    if (ws.readyState !== ws.CLOSED) ws.terminate();
    callback(error);
  }
}

export interface WebSocketServerOptions {
  path: string;
  /** Largest WebSocket message accepted, bytes. */
  maxPayload: number;
  /** Budget for the HTTP upgrade request (and the TLS handshake for wss). */
  handshakeTimeoutMs: number;
  /** Present for wss. */
  tls?: TlsFilesConfig;
}

export interface WebSocketListener {
  server: http.Server | https.Server;
  wss: WebSocketServer;
}

/**
 * MQTT over WebSocket (ws) or WebSocket over TLS (wss) on `path`, subprotocol `mqtt`. Other paths
 * get 404; plain HTTP requests get 426 Upgrade Required.
 */
export function createWebSocketServer(
  handler: StreamHandler,
  listener: string,
  options: WebSocketServerOptions,
): WebSocketListener {
  const secure = options.tls !== undefined;
  const requestCert = options.tls?.requestCert ?? false;
  const wss = new WebSocketServer({
    noServer: true,
    maxPayload: options.maxPayload,
    perMessageDeflate: false,
    // [MQTT-6.0.0-3] the server selects "mqtt"; "mqttv3.1" is what MQTT 3.1 clients offer.
    handleProtocols: (protocols) => {
      if (protocols.has('mqtt')) return 'mqtt';
      if (protocols.has('mqttv3.1')) return 'mqttv3.1';
      return false;
    },
  });
  const onRequest = (_req: http.IncomingMessage, res: http.ServerResponse) => {
    res.writeHead(426, { 'content-type': 'text/plain', connection: 'close', upgrade: 'websocket' });
    res.end(`MQTT over WebSocket: connect with a WebSocket client to ${options.path}\n`);
  };
  const server = secure
    ? https.createServer(tlsServerOptions(options.tls!, options.handshakeTimeoutMs), onRequest)
    : http.createServer(onRequest);
  server.headersTimeout = options.handshakeTimeoutMs;
  server.requestTimeout = options.handshakeTimeoutMs;
  server.on('upgrade', (req: http.IncomingMessage, socket: Socket, head: Buffer) => {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const pathname = q === -1 ? url : url.slice(0, q);
    if (pathname !== options.path) {
      socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      socket.setNoDelay(true);
      handler.handle(new WebSocketDuplex(ws), {
        listener,
        transport: secure ? 'wss' : 'ws',
        remoteAddress: socket.remoteAddress,
        remotePort: socket.remotePort,
        peerCertificate: secure ? peerCertificateOf(socket as TLSSocket, requestCert) : undefined,
      });
    });
  });
  return { server, wss };
}
