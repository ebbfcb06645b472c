/**
 * A plain-TCP server on Node's internal TCP handle (tcp-binding.ts) that hands out
 * TcpHandleStreams. It has the part of net.Server's surface that Listeners uses — listen(),
 * address(), close(), listening, maxConnections and the 'connection' / 'listening' / 'error' /
 * 'close' events — so the listener code treats both alike.
 */
import { EventEmitter } from 'node:events';
import type net from 'node:net';
import { isIPv6 } from 'node:net';
import { getSystemErrorName } from 'node:util';
import type { TcpBinding, TcpHandle } from './tcp-binding.js';
import { TcpHandleStream, type TcpStreamOwner } from './tcp-handle-stream.js';

function listenError(errno: number, syscall: string, host: string, port: number): NodeJS.ErrnoException {
  let code: string;
  try {
    code = getSystemErrorName(errno);
  } catch {
    code = `UV_${-errno}`;
  }
  const err = new Error(`${syscall} ${code} ${host}:${port}`) as NodeJS.ErrnoException;
  err.code = code;
  err.errno = errno;
  err.syscall = syscall;
  return err;
}

function onConnection(this: TcpHandle, status: number, client: TcpHandle | undefined): void {
  (this.owner as TcpHandleServer | null)?.onConnection(status, client);
}

function emitListening(server: TcpHandleServer): void {
  server.emit('listening');
}

export class TcpHandleServer extends EventEmitter implements TcpStreamOwner {
  readonly #binding: TcpBinding;
  #handle: TcpHandle | null = null;
  #address: net.AddressInfo | null = null;
  #connections = 0;
  #closing = false;
  #emittedClose = false;
  /** As net.Server: sockets beyond this many are closed at accept (library use without admission). */
  maxConnections = 0;
  /** The listener's name: each stream's ConnectionInfo.listener. */
  readonly listener: string;
  /**
   * Called as each accepted stream closes: the listeners' per-connection bookkeeping, one hook per
   * server instead of a close listener per connection.
   */
  onClose: ((stream: TcpHandleStream) => void) | null = null;

  constructor(binding: TcpBinding, listener: string) {
    super();
    this.#binding = binding;
    this.listener = listener;
  }

  get listening(): boolean {
    return this.#handle !== null;
  }

  /** As net.Server.listen({ port, host, backlog }): 'listening' or 'error' follows asynchronously. */
  listen(options: { port: number; host: string; backlog?: number }): this {
    const { port, host } = options;
    const handle = this.#binding.newServerHandle();
    let err = isIPv6(host) ? handle.bind6(host, port, 0) : handle.bind(host, port);
    if (err === 0) err = handle.listen(options.backlog ?? 511);
    if (err !== 0) {
      handle.close();
      process.nextTick(() => this.emit('error', listenError(err, 'listen', host, port)));
      return this;
    }
    const out: { address?: string; port?: number; family?: string } = {};
    handle.getsockname(out);
    this.#address = { address: out.address ?? host, port: out.port ?? port, family: out.family ?? 'IPv4' };
    handle.owner = this;
    handle.onconnection = onConnection;
    this.#handle = handle;
    process.nextTick(emitListening, this);
    return this;
  }

  address(): net.AddressInfo | null {
    return this.#address;
  }

  /** @internal From libuv through onConnection. */
  onConnection(status: number, client: TcpHandle | undefined): void {
    if (status !== 0 || client === undefined) {
      // EMFILE and friends: the listener logs it; the kernel keeps the connection queued.
      this.emit(
        'error',
        listenError(status, 'accept', this.#address?.address ?? '', this.#address?.port ?? 0),
      );
      return;
    }
    if (this.#closing || (this.maxConnections > 0 && this.#connections >= this.maxConnections)) {
      client.close();
      return;
    }
    this.#connections++;
    this.emit('connection', new TcpHandleStream(client, this));
  }

  /** @internal From each accepted stream once its handle is closed. */
  onStreamClosed(stream: TcpHandleStream): void {
    this.#connections--;
    this.onClose?.(stream);
    if (this.#closing && this.#connections === 0) this.#closed();
  }

  /**
   * Stop accepting. As net.Server.close(): the callback (and 'close') come once every accepted
   * connection has closed too.
   */
  close(callback?: (err?: Error) => void): this {
    if (this.#emittedClose) {
      // As net.Server: closing a closed server is an error for the callback, not a wait forever.
      if (callback !== undefined) {
        const err = new Error('Server is not running.') as NodeJS.ErrnoException;
        err.code = 'ERR_SERVER_NOT_RUNNING';
        process.nextTick(callback, err);
      }
      return this;
    }
    if (callback !== undefined) this.once('close', callback);
    if (this.#closing) return this;
    this.#closing = true;
    const handle = this.#handle;
    this.#handle = null;
    if (handle !== null) {
      handle.owner = null;
      handle.onconnection = null;
      handle.close();
    }
    if (this.#connections === 0) process.nextTick(() => this.#closed());
    return this;
  }

  #closed(): void {
    if (this.#emittedClose) return;
    this.#emittedClose = true;
    this.emit('close');
  }
}
