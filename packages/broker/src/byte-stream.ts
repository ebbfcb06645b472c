/**
 * The part of a duplex byte stream a broker Connection uses. A net.Socket, a TLS socket and the
 * WebSocket adapter's Duplex have it; so does the plain-TCP listener's TcpHandleStream
 * (transports/tcp-handle-stream.ts), which has nothing more, to keep an idle connection small.
 */
export interface ByteStream {
  readonly destroyed: boolean;
  readonly writableLength: number;
  readonly readableEnded?: boolean;
  readonly writable?: boolean;
  // biome-ignore lint/suspicious/noExplicitAny: event listeners of any shape, as on EventEmitter
  on(event: string, listener: (...args: any[]) => void): this;
  // biome-ignore lint/suspicious/noExplicitAny: as above
  once(event: string, listener: (...args: any[]) => void): this;
  write(chunk: Buffer): boolean;
  cork(): void;
  uncork(): void;
  end(): this;
  destroy(error?: Error): this;
  pause(): this;
  resume(): this;
}
