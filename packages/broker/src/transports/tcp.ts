import net from 'node:net';
import type { ConnectionInfo } from '../options.js';
import type { StreamHandler } from './types.js';

/**
 * Peer info of a TCP connection, read from the socket only when asked. `socket.remoteAddress`
 * allocates and caches a peername object and an address string on every socket: about 130 bytes
 * per idle client that is never logged about (idle memory is a product target, issue 2).
 */
class TcpConnectionInfo implements ConnectionInfo {
  readonly listener: string;
  readonly #socket: net.Socket;

  constructor(listener: string, socket: net.Socket) {
    this.listener = listener;
    this.#socket = socket;
  }

  get transport(): 'tcp' {
    return 'tcp';
  }

  get remoteAddress(): string | undefined {
    return this.#socket.remoteAddress;
  }

  get remotePort(): number | undefined {
    return this.#socket.remotePort;
  }
}

/**
 * Plain MQTT over TCP: every accepted socket goes straight to `handler.handle()`. Nagle is off
 * because the broker already batches its writes per tick; waiting for ACKs would only add latency.
 */
export function createTcpServer(handler: StreamHandler, listener: string): net.Server {
  return net.createServer({ noDelay: true }, (socket) => {
    // Destroyed by admission control at accept (Listeners): nothing to serve.
    if (socket.destroyed) return;
    handler.handle(socket, new TcpConnectionInfo(listener, socket));
  });
}
