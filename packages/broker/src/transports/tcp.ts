import net from 'node:net';
import type { ConnectionInfo } from '../options.js';
import { loadTcpBinding } from './tcp-binding.js';
import { TcpHandleServer } from './tcp-handle-server.js';
import type { TcpHandleStream } from './tcp-handle-stream.js';
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
 * How plain-TCP connections are held: `handle` (the default) on Node's internal TCP handle
 * (tcp-handle-stream.ts: about half the memory per idle connection), `net` on node:net's Socket.
 */
export type TcpEngine = 'handle' | 'net';

/** What a plain-TCP listener serves with: a net.Server, or its handle-based twin. */
export type TcpServer = net.Server | TcpHandleServer;

/**
 * Plain MQTT over TCP: every accepted socket goes straight to `handler.handle()`. Nagle is off
 * because the broker already batches its writes per tick; waiting for ACKs would only add latency.
 * The `handle` engine falls back to `net` (and says so through `onFallback`) on a Node.js whose
 * internal TCP binding does not have the expected shape.
 */
export function createTcpServer(
  handler: StreamHandler,
  listener: string,
  engine: TcpEngine = 'handle',
  onFallback?: () => void,
): TcpServer {
  const binding = engine === 'handle' ? loadTcpBinding() : null;
  if (binding !== null) {
    const server = new TcpHandleServer(binding, listener);
    server.on('connection', (stream: TcpHandleStream) => {
      if (stream.destroyed) return;
      // The stream is its own ConnectionInfo (one object less per connection).
      handler.handle(stream, stream);
    });
    return server;
  }
  if (engine === 'handle') onFallback?.();
  return net.createServer({ noDelay: true }, (socket) => {
    // Destroyed by admission control at accept (Listeners): nothing to serve.
    if (socket.destroyed) return;
    handler.handle(socket, new TcpConnectionInfo(listener, socket));
  });
}
