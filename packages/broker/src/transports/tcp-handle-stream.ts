/**
 * A TCP connection as the broker's Connection uses it, straight on Node's internal TCP handle
 * (tcp-binding.ts) instead of a net.Socket. It has exactly the part of the Duplex surface that
 * connection.ts, the listeners and the sweep use — data/end/error/close/drain/finish events,
 * write/cork/uncork/end/destroy/pause/resume, writableLength — and nothing else: no readable
 * or writable state objects, no EventEmitter dictionary, no per-socket closures.
 *
 * Why: an idle net.Socket costs ~2 KiB of the ~3.9 KiB a Breakwater connection cost
 * (bench/results/socket-floor.md); this object is a dozen fields.
 *
 * Semantics kept from net.Socket where the broker relies on them:
 * - reading starts when a 'data' listener is added, and pause()/resume() stop and restart it;
 * - writes are ordered; `write()` returns false above 16 KiB unsent and 'drain' follows once
 *   everything queued has gone to the kernel;
 * - end() sends FIN after queued writes ('finish' then); the peer's FIN emits 'end' and, like
 *   net's allowHalfOpen = false, ends this side too;
 * - 'error' is emitted on the next tick and 'close' once the handle is closed, after 'error'.
 */
import { getSystemErrorMap, getSystemErrorName } from 'node:util';
import type { ConnectionInfo } from '../options.js';
import {
  loadTcpBinding,
  type ShutdownRequest,
  type TcpBinding,
  type TcpHandle,
  type WriteRequest,
} from './tcp-binding.js';

/** net.Socket's default writable high-water mark. */
const HIGH_WATER_MARK = 16 * 1024;

type Listener = (this: TcpHandleStream, ...args: never[]) => void;
type Listeners = Listener | Listener[] | null;

const F_DESTROYED = 1;
const F_READ_ENDED = 2;
const F_ENDING = 4;
const F_FINISHED = 8;
const F_CORKED = 16;
const F_PAUSED = 32;
const F_READING = 64;
const F_NEED_DRAIN = 128;
const F_CLOSED = 256;

/** A libuv error as node:net reports it: `Error: read ECONNRESET` with `code` and `errno`. */
function uvError(errno: number, syscall: string): NodeJS.ErrnoException {
  let code: string;
  try {
    code = getSystemErrorName(errno);
  } catch {
    code = `UV_${-errno}`;
  }
  const err = new Error(`${syscall} ${code}`) as NodeJS.ErrnoException;
  err.code = code;
  err.errno = errno;
  err.syscall = syscall;
  return err;
}

// Arrays of exactly the listeners: push() would grow a 2-element array to 17 slots (176 bytes).
function addListener(list: Listeners, fn: Listener): Listeners {
  if (list === null) return fn;
  if (typeof list === 'function') return [list, fn];
  return [...list, fn];
}

function removeListener(list: Listeners, fn: Listener): Listeners {
  if (list === fn) return null;
  if (list === null || typeof list === 'function') return list;
  const rest = list.filter((f) => f !== fn);
  return rest.length === 0 ? null : rest.length === 1 ? rest[0]! : rest;
}

function emit(stream: TcpHandleStream, list: Listeners, arg?: unknown): void {
  if (list === null) return;
  if (typeof list === 'function') {
    (list as (this: TcpHandleStream, a: unknown) => void).call(stream, arg);
    return;
  }
  for (const fn of list.slice()) (fn as (this: TcpHandleStream, a: unknown) => void).call(stream, arg);
}

// Module-level callbacks (no closure per connection): libuv calls them with the handle or the
// request as `this`, and the handle's `owner` leads back to the stream.
function onHandleRead(this: TcpHandle, buffer: ArrayBuffer | undefined): void {
  (this.owner as TcpHandleStream | null)?.onRead(buffer);
}
function onWriteComplete(this: WriteRequest, status: number): void {
  (this.handle.owner as TcpHandleStream | null)?.onWriteDone(this.queued, status);
}
function onShutdownComplete(this: ShutdownRequest, status: number): void {
  (this.handle.owner as TcpHandleStream | null)?.onShutdownDone(status);
}
function onHandleClosed(this: TcpHandle): void {
  (this.owner as TcpHandleStream | null)?.onClosed();
}
function emitError(stream: TcpHandleStream, err: Error): void {
  stream.emitError(err);
}
function emitDrain(stream: TcpHandleStream): void {
  stream.drained();
}

/** libuv's end-of-stream "error", looked up once rather than named on every read. */
const UV_EOF = [...getSystemErrorMap()].find(([, [name]]) => name === 'EOF')?.[0] ?? -4095;
const UV_ENOTCONN = [...getSystemErrorMap()].find(([, [name]]) => name === 'ENOTCONN')?.[0] ?? -107;

/** What accepted the connection: names the listener, and is told when the connection closes. */
export interface TcpStreamOwner {
  readonly listener: string;
  onStreamClosed(stream: TcpHandleStream): void;
}

/** Null on a Node.js without the binding; no TcpHandleStream is created then (tcp.ts falls back). */
const binding = loadTcpBinding() as TcpBinding;

const F_ADMITTED = 512;

/**
 * Also the connection's ConnectionInfo (listener, transport, peer address), which saves a
 * separate object per connection.
 */
export class TcpHandleStream implements ConnectionInfo {
  readonly #handle: TcpHandle;
  /** The accepting server: told of the close, and the listeners reach their bookkeeping through it. */
  readonly server: TcpStreamOwner;
  #flags = 0;
  /** Bytes accepted by write() and not yet handed to the kernel (corked or queued in libuv). */
  #pending = 0;
  #corked: Buffer | Buffer[] | null = null;
  #onData: Listeners = null;
  #onEnd: Listeners = null;
  #onError: Listeners = null;
  #onClose: Listeners = null;
  #onDrain: Listeners = null;
  #onFinish: Listeners = null;

  constructor(handle: TcpHandle, server: TcpStreamOwner) {
    this.#handle = handle;
    this.server = server;
    handle.owner = this;
    handle.onread = onHandleRead;
    // The broker batches its writes per tick; Nagle would only add latency (as tcp.ts sets).
    handle.setNoDelay(true);
  }

  get destroyed(): boolean {
    return (this.#flags & F_DESTROYED) !== 0;
  }
  get readableEnded(): boolean {
    return (this.#flags & F_READ_ENDED) !== 0;
  }
  get writable(): boolean {
    return (this.#flags & (F_DESTROYED | F_ENDING)) === 0;
  }
  get writableLength(): number {
    return this.#pending;
  }
  get listener(): string {
    return this.server.listener;
  }
  get transport(): 'tcp' {
    return 'tcp';
  }
  // Asked of the kernel each time rather than kept: most connections are asked once (at CONNECT)
  // or never, and a cached peer name would cost an object and a string per connection.
  get remoteAddress(): string | undefined {
    return this.#peerName().address;
  }
  get remotePort(): number | undefined {
    return this.#peerName().port;
  }

  #peerName(): { address?: string; port?: number } {
    const out: { address?: string; port?: number } = {};
    if ((this.#flags & F_CLOSED) === 0) this.#handle.getpeername(out);
    return out;
  }

  /**
   * Admitted by the listener's admission check (and so owed `onConnectionClosed` at close): a
   * bit here instead of a close listener per connection.
   */
  get admitted(): boolean {
    return (this.#flags & F_ADMITTED) !== 0;
  }
  set admitted(on: boolean) {
    this.#flags = on ? this.#flags | F_ADMITTED : this.#flags & ~F_ADMITTED;
  }

  on(event: string, fn: Listener): this {
    switch (event) {
      case 'data':
        this.#onData = addListener(this.#onData, fn);
        this.#startReading();
        break;
      case 'end':
        this.#onEnd = addListener(this.#onEnd, fn);
        break;
      case 'error':
        this.#onError = addListener(this.#onError, fn);
        break;
      case 'close':
        this.#onClose = addListener(this.#onClose, fn);
        break;
      case 'drain':
        this.#onDrain = addListener(this.#onDrain, fn);
        break;
      case 'finish':
        this.#onFinish = addListener(this.#onFinish, fn);
        break;
      default:
        throw new TypeError(`TcpHandleStream has no '${event}' event`);
    }
    return this;
  }

  /** For the events that fire at most once (all but 'data' and 'drain'), once() is on(). */
  once(event: string, fn: Listener): this {
    if (event === 'data' || event === 'drain') throw new TypeError(`TcpHandleStream has no once('${event}')`);
    return this.on(event, fn);
  }

  off(event: string, fn: Listener): this {
    switch (event) {
      case 'data':
        this.#onData = removeListener(this.#onData, fn);
        break;
      case 'end':
        this.#onEnd = removeListener(this.#onEnd, fn);
        break;
      case 'error':
        this.#onError = removeListener(this.#onError, fn);
        break;
      case 'close':
        this.#onClose = removeListener(this.#onClose, fn);
        break;
      case 'drain':
        this.#onDrain = removeListener(this.#onDrain, fn);
        break;
      case 'finish':
        this.#onFinish = removeListener(this.#onFinish, fn);
        break;
    }
    return this;
  }

  removeListener(event: string, fn: Listener): this {
    return this.off(event, fn);
  }

  pause(): this {
    this.#flags |= F_PAUSED;
    if ((this.#flags & F_READING) !== 0) {
      this.#flags &= ~F_READING;
      this.#handle.readStop();
    }
    return this;
  }

  resume(): this {
    this.#flags &= ~F_PAUSED;
    this.#startReading();
    return this;
  }

  #startReading(): void {
    const f = this.#flags;
    if ((f & (F_READING | F_PAUSED | F_DESTROYED | F_READ_ENDED)) !== 0 || this.#onData === null) return;
    this.#flags = f | F_READING;
    const err = this.#handle.readStart();
    if (err < 0) this.destroy(uvError(err, 'read'));
  }

  /** @internal From libuv through onHandleRead. */
  onRead(buffer: ArrayBuffer | undefined): void {
    const b = binding;
    const nread = b.state[b.kReadBytesOrError]!;
    if (nread > 0 && buffer !== undefined) {
      emit(this, this.#onData, Buffer.from(buffer, b.state[b.kArrayBufferOffset]!, nread));
      return;
    }
    if (nread === 0) return;
    this.#flags = (this.#flags | F_READ_ENDED) & ~F_READING;
    if (nread === UV_EOF) {
      emit(this, this.#onEnd);
      // No half-open connections (net's allowHalfOpen = false): the peer's FIN ends this side.
      if ((this.#flags & (F_ENDING | F_DESTROYED)) === 0) this.end();
      return;
    }
    this.destroy(uvError(nread, 'read'));
  }

  cork(): void {
    this.#flags |= F_CORKED;
  }

  uncork(): void {
    if ((this.#flags & F_CORKED) === 0) return;
    this.#flags &= ~F_CORKED;
    const chunks = this.#corked;
    if (chunks === null) return;
    this.#corked = null;
    let bytes = 0;
    if (Array.isArray(chunks)) for (let i = 0; i < chunks.length; i++) bytes += chunks[i]!.length;
    else bytes = chunks.length;
    this.#pending -= bytes;
    this.#dispatch(chunks, bytes);
    // Everything went to the kernel at once: no write completes later to say so.
    if (this.#pending === 0 && (this.#flags & F_NEED_DRAIN) !== 0) process.nextTick(emitDrain, this);
  }

  write(buf: Buffer): boolean {
    if ((this.#flags & (F_DESTROYED | F_ENDING)) !== 0) return false;
    if ((this.#flags & F_CORKED) !== 0) {
      const c = this.#corked;
      if (c === null) this.#corked = buf;
      else if (Array.isArray(c)) c.push(buf);
      else this.#corked = [c, buf];
      this.#pending += buf.length;
    } else {
      this.#dispatch(buf, buf.length);
    }
    if (this.#pending < HIGH_WATER_MARK) return true;
    this.#flags |= F_NEED_DRAIN;
    return false;
  }

  #dispatch(data: Buffer | Buffer[], bytes: number): void {
    if ((this.#flags & F_DESTROYED) !== 0) return;
    const b = binding;
    const req = b.newWriteRequest();
    req.handle = this.#handle;
    req.oncomplete = onWriteComplete;
    req.data = data;
    const err = Array.isArray(data)
      ? this.#handle.writev(req, data, true)
      : this.#handle.writeBuffer(req, data);
    if (err !== 0) {
      this.destroy(uvError(err, 'write'));
      return;
    }
    if (b.state[b.kLastWriteWasAsync] !== 0) {
      // Pending until oncomplete, the whole write as net.Socket counts it (kBytesWritten is the
      // write's size, not what the kernel took at once).
      req.queued = bytes;
      this.#pending += bytes;
    } else {
      req.data = null;
    }
  }

  /** @internal From libuv through onWriteComplete. */
  onWriteDone(queued: number, status: number): void {
    this.#pending -= queued;
    if ((this.#flags & F_DESTROYED) !== 0) return;
    if (status < 0) {
      this.destroy(uvError(status, 'write'));
      return;
    }
    if (this.#pending === 0) this.drained();
  }

  /** @internal 'drain' once nothing is pending, if a write() returned false. */
  drained(): void {
    if (this.#pending !== 0 || (this.#flags & (F_NEED_DRAIN | F_DESTROYED)) !== F_NEED_DRAIN) return;
    this.#flags &= ~F_NEED_DRAIN;
    emit(this, this.#onDrain);
  }

  /** Flush, then send FIN once everything queued is written; 'finish' follows. */
  end(): this {
    if ((this.#flags & (F_ENDING | F_DESTROYED)) !== 0) return this;
    this.uncork();
    this.#flags |= F_ENDING;
    const req = binding.newShutdownRequest();
    req.handle = this.#handle;
    req.oncomplete = onShutdownComplete;
    const err = this.#handle.shutdown(req);
    // 1: finished synchronously (node:net treats it, and ENOTCONN, as done).
    if (err === 1 || err === UV_ENOTCONN) {
      process.nextTick(finishStream, this);
    } else if (err !== 0) {
      this.destroy(uvError(err, 'shutdown'));
    }
    return this;
  }

  /** @internal From libuv through onShutdownComplete. */
  onShutdownDone(status: number): void {
    if ((this.#flags & F_DESTROYED) !== 0) return;
    if (status < 0 && status !== UV_ENOTCONN) {
      this.destroy(uvError(status, 'shutdown'));
      return;
    }
    this.finish();
  }

  /** @internal */
  finish(): void {
    if ((this.#flags & (F_FINISHED | F_DESTROYED)) !== 0) return;
    this.#flags |= F_FINISHED;
    const list = this.#onFinish;
    this.#onFinish = null;
    emit(this, list);
  }

  /**
   * Close the handle now; pending writes are dropped. With an error, 'error' is emitted on the
   * next tick; 'close' always follows once libuv has closed the handle.
   */
  destroy(err?: Error): this {
    if ((this.#flags & F_DESTROYED) !== 0) return this;
    this.#flags = (this.#flags | F_DESTROYED) & ~F_READING;
    this.#corked = null;
    if (err !== undefined) process.nextTick(emitError, this, err);
    this.#handle.close(onHandleClosed);
    return this;
  }

  /** @internal */
  emitError(err: Error): void {
    emit(this, this.#onError, err);
  }

  /** @internal Once libuv closed the handle. */
  onClosed(): void {
    this.#flags |= F_CLOSED;
    // (onread stays: Node's setter takes only a function; with no owner it does nothing.)
    this.#handle.owner = null;
    const list = this.#onClose;
    this.#onClose = null;
    this.#onData = null;
    this.#onEnd = null;
    this.#onDrain = null;
    this.#onFinish = null;
    this.server.onStreamClosed(this);
    emit(this, list);
    this.#onError = null;
  }

  setNoDelay(on = true): this {
    if ((this.#flags & F_CLOSED) === 0) this.#handle.setNoDelay(on);
    return this;
  }
}

function finishStream(stream: TcpHandleStream): void {
  stream.finish();
}
