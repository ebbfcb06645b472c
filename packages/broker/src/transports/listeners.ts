import type net from 'node:net';
import type { Logger } from 'pino';
import type { WebSocketServer } from 'ws';
import type { ByteStream } from '../byte-stream.js';
import { BreakwaterError } from '../errors.js';
import type { AdmissionGate } from '../guard/admission/gate.js';
import { type BrokerLimits, defaultLimits } from '../options.js';
import { createTcpServer, type TcpServer } from './tcp.js';
import { TcpHandleServer } from './tcp-handle-server.js';
import { TcpHandleStream } from './tcp-handle-stream.js';
import { createTlsServer } from './tls.js';
import type { ListenerAddress, ListenerSpec, StreamHandler } from './types.js';
import { createWebSocketServer } from './ws.js';

/** A port that is taken. Carries the port and what to change, so the CLI can say it in one line. */
export class PortInUseError extends BreakwaterError {
  readonly port: number;
  readonly host: string;
  /** The flag or config key that sets this port. */
  readonly portSource: string | undefined;

  constructor(what: string, host: string, port: number, portSource: string | undefined, cause: unknown) {
    const change = portSource ? `; change it with ${portSource}` : '';
    super('BW_ERR_PORT_IN_USE', `${port} (${what} on ${host})${change}`, { cause });
    this.name = 'PortInUseError';
    this.port = port;
    this.host = host;
    this.portSource = portSource;
  }
}

/**
 * Turns a `listen()` failure into a catalogued error: EADDRINUSE → BW_ERR_PORT_IN_USE naming the
 * port and the flag/key to change; anything else (EACCES below 1024, EADDRNOTAVAIL) → BW_ERR_LISTEN.
 */
export function listenError(
  err: unknown,
  what: string,
  host: string,
  port: number,
  portSource?: string,
): BreakwaterError {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'EADDRINUSE') return new PortInUseError(what, host, port, portSource, err);
  const change = portSource ? `; change it with ${portSource}` : '';
  return new BreakwaterError(
    'BW_ERR_LISTEN',
    `${host}:${port} for ${what}: ${code ?? String(err)}${change}`,
    {
      cause: err,
    },
  );
}

/**
 * The accept-time admission check (AdmissionGate contract 1). An admitted socket counts until it
 * closes. A refused one is destroyed at once, except on plain TCP when the gate gave it a slot:
 * then it is marked and the engine answers its CONNECT with the refusal (0x89 + retry-after-ms).
 * TLS/WS refusals are not answered: that would mean paying for a handshake under exactly the
 * pressure being refused.
 */
function admissionCheck(gate: AdmissionGate, spec: ListenerSpec): (socket: ByteStream) => void {
  const name = spec.name;
  const onClose = () => gate.onConnectionClosed(name);
  return (socket) => {
    // No peer address: reading it allocates per socket, and the gate does not use it at accept.
    const v = gate.onAccept(name, undefined);
    if (v.ok) {
      // A TcpHandleStream carries a bit, closed through its server's hook (Listeners); other
      // sockets get a listener (on, not once: 'close' fires once anyway, and once() allocates).
      if (socket instanceof TcpHandleStream) socket.admitted = true;
      else socket.on('close', onClose);
      return;
    }
    if (v.tarpitMs > 0 && spec.type === 'tcp') {
      gate.holdRefusal(socket, v);
      return;
    }
    if (v.tarpitMs > 0) gate.releaseTarpitSlot();
    socket.destroy();
  };
}

/**
 * Node's default accept queue is 511. When 12,000 devices reconnect within a second, the overflow
 * is not refused but silently dropped by the kernel, and each dropped device waits for a SYN/ACK
 * retransmit (1, 3, 7, 15 s): the auth-storm bench saw 8 % of a fleet back only after 15 s.
 */
export const DEFAULT_LISTEN_BACKLOG = 4096;

/** Listens and resolves with the bound port, or rejects with the raw listen error. */
export async function listenOn(
  server: net.Server | TcpServer,
  port: number,
  host: string,
  backlog = DEFAULT_LISTEN_BACKLOG,
): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error) => {
      server.off('listening', onListening);
      reject(err);
    };
    const onListening = () => {
      server.off('error', onError);
      resolve();
    };
    server.once('error', onError);
    server.once('listening', onListening);
    server.listen({ port, host, backlog });
  });
  return (server.address() as net.AddressInfo).port;
}

function closed(socket: ByteStream): Promise<void> {
  return new Promise<void>((resolve) => socket.once('close', () => resolve()));
}

/** `0.0.0.0` is not something to connect to; print the loopback address instead. */
export function urlHost(host: string): string {
  if (host === '0.0.0.0') return '127.0.0.1';
  if (host === '::') return '[::1]';
  return host.includes(':') ? `[${host}]` : host;
}

/** The per-listener socket set, on the server object: reached from its sockets via `socket.server`. */
const kSockets = Symbol('breakwater.sockets');
type TrackingServer = TcpServer & { [kSockets]?: Set<ByteStream> };

// One shared pair of functions instead of a closure per socket (idle memory: DESIGN.md, issue 2).
function trackSocket(this: TrackingServer, socket: ByteStream): void {
  this[kSockets]?.add(socket);
  // A TcpHandleStream is untracked by its server's close hook (Listeners constructor).
  if (!(socket instanceof TcpHandleStream)) socket.on('close', untrackSocket);
}
function untrackSocket(this: ByteStream & { server?: TrackingServer | null }): void {
  this.server?.[kSockets]?.delete(this);
}

const schemes = { tcp: 'mqtt', tls: 'mqtts', ws: 'ws', wss: 'wss' } as const;

interface Entry {
  spec: ListenerSpec;
  server: TcpServer;
  wss: WebSocketServer | undefined;
  /** Raw TCP sockets of this server (also before a TLS or WebSocket handshake completes). */
  sockets: Set<ByteStream>;
  address: ListenerAddress | undefined;
  closed: Promise<void> | undefined;
}

export interface ListenersOptions {
  logger?: Logger;
  /** connectTimeoutMs bounds TLS and WebSocket handshakes; maxPacketSize bounds WebSocket messages. */
  limits?: Partial<Pick<BrokerLimits, 'connectTimeoutMs' | 'maxPacketSize'>>;
  /** Admission control (issue 3): connection caps and FD pressure checked at accept, before TLS. */
  admission?: AdmissionGate;
}

/**
 * All configured MQTT listeners (TCP, TLS, WS, WSS) in front of one stream handler (the Broker).
 * `start()` binds them all or none; shutdown is `stopAccepting()` (no new sockets), then the
 * broker's own close (DISCONNECT 0x8B), then `close()` for any socket still open.
 */
export class Listeners {
  readonly #entries: Entry[];
  readonly #logger: Logger | undefined;
  #accepting = false;

  constructor(handler: StreamHandler, specs: readonly ListenerSpec[], options: ListenersOptions = {}) {
    this.#logger = options.logger;
    const handshakeTimeoutMs = options.limits?.connectTimeoutMs ?? defaultLimits.connectTimeoutMs;
    // A frame may carry more than one packet (a client may batch), so allow two maximal packets.
    const maxPayload = 2 * (options.limits?.maxPacketSize ?? defaultLimits.maxPacketSize) + 16;
    this.#entries = specs.map((spec) => {
      let server: TcpServer;
      let wss: WebSocketServer | undefined;
      switch (spec.type) {
        case 'tcp':
          server = createTcpServer(handler, spec.name, spec.engine ?? 'handle', () =>
            this.#logger?.warn(
              { listener: spec.name, node: process.version },
              'this Node.js has no usable internal TCP handle binding: listener uses node:net (about twice the memory per idle connection)',
            ),
          );
          break;
        case 'tls':
          server = createTlsServer(handler, spec.name, spec.tls!, handshakeTimeoutMs);
          break;
        case 'ws':
        case 'wss': {
          const created = createWebSocketServer(handler, spec.name, {
            path: spec.path ?? '/mqtt',
            maxPayload,
            handshakeTimeoutMs,
            ...(spec.type === 'wss' ? { tls: spec.tls! } : {}),
          });
          server = created.server;
          wss = created.wss;
          break;
        }
      }
      if (spec.maxConnections !== undefined) {
        // With admission the cap is counted and logged like every refusal; without it (library
        // use) Node's own limit is the only one available.
        if (options.admission) options.admission.capListener(spec.name, spec.maxConnections);
        else server.maxConnections = spec.maxConnections;
      }
      const entry: Entry = { spec, server, wss, sockets: new Set(), address: undefined, closed: undefined };
      // Prepended so it runs before the transport's own 'connection' handling (TLS handshake,
      // HTTP upgrade, Broker.handle): the raw socket of every listener type passes here first.
      if (options.admission) server.prependListener('connection', admissionCheck(options.admission, spec));
      (server as TrackingServer)[kSockets] = entry.sockets;
      server.on('connection', trackSocket);
      if (server instanceof TcpHandleServer) {
        const { sockets } = entry;
        const gate = options.admission;
        const name = spec.name;
        server.onClose = (stream) => {
          sockets.delete(stream);
          if (stream.admitted) gate?.onConnectionClosed(name);
        };
      }
      server.on('tlsClientError', (err: Error, socket: net.Socket) => {
        this.#logger?.debug(
          { listener: spec.name, err: err.message, remote: socket.remoteAddress },
          'TLS handshake failed',
        );
      });
      return entry;
    });
  }

  /** Binds every listener; on a failure closes those already bound and throws a BreakwaterError. */
  async start(): Promise<ListenerAddress[]> {
    for (const entry of this.#entries) {
      const { spec, server } = entry;
      let port: number;
      try {
        port = await listenOn(server, spec.port, spec.host, spec.backlog);
      } catch (err) {
        await this.close();
        throw listenError(err, `listener "${spec.name}"`, spec.host, spec.port, spec.portSource);
      }
      // After listen, errors are accept failures (EMFILE when the process runs out of FDs —
      // the reboot-storm incident). Without a listener Node would crash the broker; log instead.
      server.on('error', (err) => this.#logger?.error({ listener: spec.name, err }, 'listener error'));
      const path = spec.type === 'ws' || spec.type === 'wss' ? (spec.path ?? '/mqtt') : '';
      entry.address = {
        name: spec.name,
        type: spec.type,
        host: spec.host,
        port,
        url: `${schemes[spec.type]}://${urlHost(spec.host)}:${port}${path}`,
      };
    }
    this.#accepting = true;
    return this.addresses;
  }

  /** The bound listeners, in config order (empty before `start()`). */
  get addresses(): ListenerAddress[] {
    return this.#entries.flatMap((e) => (e.address ? [e.address] : []));
  }

  /** True between a successful `start()` and `stopAccepting()`. */
  get accepting(): boolean {
    return this.#accepting;
  }

  /** Stops accepting new sockets on every listener; open connections stay up. */
  stopAccepting(): void {
    this.#accepting = false;
    for (const entry of this.#entries) {
      if (entry.closed || !entry.server.listening) continue;
      entry.closed = new Promise<void>((resolve) => entry.server.close(() => resolve()));
    }
  }

  /**
   * Stops accepting, gives open sockets `graceMs` to finish on their own (the broker has just
   * ended them after DISCONNECT 0x8B; let those bytes flush), then destroys what is left.
   */
  async close(options: { graceMs?: number } = {}): Promise<void> {
    this.stopAccepting();
    const open = this.#entries.flatMap((e) => [...e.sockets]);
    if (open.length > 0) {
      let timer: NodeJS.Timeout | undefined;
      const grace = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, options.graceMs ?? 2000);
      });
      await Promise.race([grace, Promise.all(open.map((s) => closed(s)))]);
      clearTimeout(timer);
    }
    for (const entry of this.#entries) {
      if (entry.wss) for (const ws of entry.wss.clients) ws.terminate();
      for (const socket of entry.sockets) socket.destroy();
      entry.wss?.close();
    }
    await Promise.all(this.#entries.map((e) => e.closed));
  }
}
