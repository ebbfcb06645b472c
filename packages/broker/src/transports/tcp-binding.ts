/**
 * Node's internal TCP handle (`process.binding('tcp_wrap')`) and its stream helpers
 * (`process.binding('stream_wrap')`): what node:net's Socket is built on. The broker's plain-TCP
 * listener uses them directly (tcp-handle-stream.ts) because a net.Socket, a Duplex stream with
 * its readable and writable state, costs about 2 KiB per idle connection (bench/results/
 * socket-floor.md: 3.05-3.35 KiB RSS per connection for node:net, 1.10 for the handle alone).
 *
 * These bindings are not a public API. They have kept this shape from Node 12 to 24, but a
 * future Node may change them, so `loadTcpBinding()` checks the shape once and returns null when
 * anything is missing: the listener then falls back to node:net, with a warning.
 */

/** A libuv TCP handle. Errors are negative libuv codes (`util.getSystemErrorName`). */
export interface TcpHandle {
  /** Read callback: `this` is the handle; bytes and offset are in `streamBaseState`. */
  onread: ((this: TcpHandle, buffer: ArrayBuffer | undefined) => void) | null;
  /** Accept callback of a server handle: `this` is the server handle. */
  onconnection: ((this: TcpHandle, status: number, client: TcpHandle | undefined) => void) | null;
  /** Back reference from the handle to what wraps it, as node:net does (`handle[owner_symbol]`). */
  owner: unknown;
  readStart(): number;
  readStop(): number;
  writeBuffer(req: WriteRequest, data: Uint8Array): number;
  writev(req: WriteRequest, chunks: Uint8Array[], allBuffers: true): number;
  shutdown(req: ShutdownRequest): number;
  close(callback?: () => void): void;
  setNoDelay(on: boolean): number;
  getpeername(out: PeerName): number;
  getsockname(out: PeerName): number;
  bind(host: string, port: number): number;
  bind6(host: string, port: number, flags: number): number;
  listen(backlog: number): number;
}

export interface PeerName {
  address?: string;
  port?: number;
  family?: string;
}

/** A write in flight: libuv keeps it (and whatever it references) alive until `oncomplete`. */
export interface WriteRequest {
  handle: TcpHandle;
  oncomplete: (this: WriteRequest, status: number) => void;
  /** Bytes of an asynchronous write, pending until oncomplete (the stream's writableLength). */
  queued: number;
  /** The written data, referenced so it outlives the asynchronous write. */
  data: unknown;
}

export interface ShutdownRequest {
  handle: TcpHandle;
  oncomplete: (this: ShutdownRequest, status: number) => void;
}

export interface TcpBinding {
  newSocketHandle(): TcpHandle;
  newServerHandle(): TcpHandle;
  newWriteRequest(): WriteRequest;
  newShutdownRequest(): ShutdownRequest;
  /** Shared with C++: the result of the last read and write calls. */
  readonly state: Int32Array;
  readonly kReadBytesOrError: number;
  readonly kArrayBufferOffset: number;
  readonly kBytesWritten: number;
  readonly kLastWriteWasAsync: number;
}

type Ctor<T> = new (...args: unknown[]) => T;

let cached: TcpBinding | null | undefined;

/** The bindings, or null when this Node.js does not have them in the expected shape. */
export function loadTcpBinding(): TcpBinding | null {
  if (cached !== undefined) return cached;
  cached = null;
  try {
    const binding = (process as unknown as { binding(name: string): Record<string, unknown> }).binding;
    const tcp = binding('tcp_wrap') as {
      TCP?: Ctor<TcpHandle>;
      constants?: { SOCKET?: number; SERVER?: number };
    };
    const stream = binding('stream_wrap') as {
      WriteWrap?: Ctor<WriteRequest>;
      ShutdownWrap?: Ctor<ShutdownRequest>;
      streamBaseState?: Int32Array;
      kReadBytesOrError?: number;
      kArrayBufferOffset?: number;
      kBytesWritten?: number;
      kLastWriteWasAsync?: number;
    };
    const TCP = tcp.TCP;
    const SOCKET = tcp.constants?.SOCKET;
    const SERVER = tcp.constants?.SERVER;
    const { WriteWrap, ShutdownWrap, streamBaseState } = stream;
    if (
      typeof TCP !== 'function' ||
      typeof SOCKET !== 'number' ||
      typeof SERVER !== 'number' ||
      typeof WriteWrap !== 'function' ||
      typeof ShutdownWrap !== 'function' ||
      !(streamBaseState instanceof Int32Array) ||
      typeof stream.kReadBytesOrError !== 'number' ||
      typeof stream.kArrayBufferOffset !== 'number' ||
      typeof stream.kBytesWritten !== 'number' ||
      typeof stream.kLastWriteWasAsync !== 'number'
    ) {
      return null;
    }
    const proto = TCP.prototype as Record<string, unknown>;
    for (const method of [
      'readStart',
      'readStop',
      'writeBuffer',
      'writev',
      'shutdown',
      'close',
      'setNoDelay',
      'getpeername',
      'getsockname',
      'bind',
      'bind6',
      'listen',
    ]) {
      if (typeof proto[method] !== 'function') return null;
    }
    cached = {
      newSocketHandle: () => new TCP(SOCKET),
      newServerHandle: () => new TCP(SERVER),
      newWriteRequest: () => new WriteWrap(),
      newShutdownRequest: () => new ShutdownWrap(),
      state: streamBaseState,
      kReadBytesOrError: stream.kReadBytesOrError,
      kArrayBufferOffset: stream.kArrayBufferOffset,
      kBytesWritten: stream.kBytesWritten,
      kLastWriteWasAsync: stream.kLastWriteWasAsync,
    };
  } catch {
    cached = null;
  }
  return cached;
}
