/**
 * A TCP fault proxy: sits between devices and the broker (or between the broker and its auth
 * backend) and injects what a bad network does: latency, jitter, a bandwidth cap, a black hole,
 * refused connections, a reset of every open connection, or a cut of everything until restored.
 *
 * A small HTTP API on 127.0.0.1 drives it from outside the process:
 *   GET  /faults            → { faults, stats, cut }
 *   PUT  /faults  {…}       → replace the settings (POST works too)
 *   POST /reset             → RST every open connection
 *   POST /cut · /restore    → cut everything / accept again
 *
 * Delays keep byte order per direction: a chunk never overtakes the one before it. Data waiting
 * behind a delay is bounded: past 1 MiB queued, the proxy stops reading that side (TCP pushes back).
 */
import { once } from 'node:events';
import http from 'node:http';
import net from 'node:net';

/**
 * Ends a connection with an RST where TCP allows one. A socket whose write side is already ended
 * (a half-close passed on by a lane) cannot be reset: Node's resetAndDestroy() then fails with
 * EINVAL and leaves the handle half-closed for good, and the process spins at exit waiting for it
 * (Node 20). Such a socket is destroyed instead (a FIN, or an RST if data is unread).
 */
function abort(socket: net.Socket): void {
  if (socket.writableEnded) socket.destroy();
  else socket.resetAndDestroy();
}

export interface FaultSettings {
  /** Added one-way delay per chunk, both directions (ms). */
  latencyMs?: number;
  /** Uniform extra delay in [0, jitterMs] per chunk (order is kept). */
  jitterMs?: number;
  /** Per-connection, per-direction cap (bytes/s); 0 or undefined = unlimited. */
  bandwidthBytesPerSec?: number;
  /** Keep connections open but forward nothing, in either direction. */
  blackhole?: boolean;
  /** Refuse new connections (accept, then RST at once). */
  refuse?: boolean;
}

export interface FaultProxyOptions {
  listen?: { host?: string; port?: number };
  target: { host: string; port: number };
  /** HTTP API on 127.0.0.1 (omit for none; port 0 = any free port). */
  api?: { port?: number };
}

export interface FaultProxyStats {
  /** Client connections open now. */
  open: number;
  /** Client connections accepted (including refused ones). */
  accepted: number;
  /** Bytes client → target and target → client that were forwarded. */
  bytesUp: number;
  bytesDown: number;
}

const MAX_QUEUED_BYTES = 1024 * 1024;

/** One direction of one connection: from `source` to `sink`, through the faults. */
class Lane {
  readonly #source: net.Socket;
  readonly #sink: net.Socket;
  readonly #proxy: FaultProxy;
  readonly #up: boolean;
  readonly #queue: { at: number; chunk: Buffer }[] = [];
  #queued = 0;
  #nextFree = 0;
  #timer: NodeJS.Timeout | null = null;
  #ended = false;

  constructor(source: net.Socket, sink: net.Socket, proxy: FaultProxy, up: boolean) {
    this.#source = source;
    this.#sink = sink;
    this.#proxy = proxy;
    this.#up = up;
    source.on('data', (chunk: Buffer) => this.#onData(chunk));
    source.on('end', () => {
      this.#ended = true;
      if (this.#queue.length === 0) sink.end();
    });
    sink.on('drain', () => {
      if (this.#queued < MAX_QUEUED_BYTES) source.resume();
    });
  }

  #onData(chunk: Buffer): void {
    const f = this.#proxy.faults;
    if (f.blackhole) return;
    const latency = (f.latencyMs ?? 0) + (f.jitterMs ? Math.random() * f.jitterMs : 0);
    const bw = f.bandwidthBytesPerSec ?? 0;
    if (latency <= 0 && bw <= 0 && this.#queue.length === 0) {
      this.#forward(chunk);
      return;
    }
    const now = Date.now();
    // Order kept: never before the previous chunk; bandwidth: each chunk occupies the lane.
    let at = Math.max(now + latency, this.#nextFree);
    if (bw > 0) at += (chunk.length / bw) * 1000;
    this.#nextFree = at;
    this.#queue.push({ at, chunk });
    this.#queued += chunk.length;
    if (this.#queued >= MAX_QUEUED_BYTES) this.#source.pause();
    if (!this.#timer) this.#arm();
  }

  #arm(): void {
    const head = this.#queue[0];
    if (!head) return;
    this.#timer = setTimeout(() => this.#drain(), Math.max(0, head.at - Date.now()));
  }

  #drain(): void {
    this.#timer = null;
    const now = Date.now();
    while (this.#queue.length > 0 && this.#queue[0]!.at <= now) {
      const { chunk } = this.#queue.shift()!;
      this.#queued -= chunk.length;
      if (!this.#proxy.faults.blackhole) this.#forward(chunk);
    }
    if (this.#queued < MAX_QUEUED_BYTES && this.#source.isPaused() && this.#sink.writableLength === 0)
      this.#source.resume();
    if (this.#queue.length > 0) this.#arm();
    else if (this.#ended) this.#sink.end();
  }

  #forward(chunk: Buffer): void {
    if (this.#sink.destroyed) return;
    this.#proxy.count(this.#up, chunk.length);
    if (!this.#sink.write(chunk)) this.#source.pause();
  }

  close(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    this.#queue.length = 0;
    this.#queued = 0;
  }
}

export class FaultProxy {
  readonly options: FaultProxyOptions;
  faults: Readonly<FaultSettings> = {};
  readonly #connections = new Set<{ client: net.Socket; upstream: net.Socket; lanes: Lane[] }>();
  #server: net.Server | null = null;
  #api: http.Server | null = null;
  #cut = false;
  #stats = { accepted: 0, bytesUp: 0, bytesDown: 0 };

  constructor(options: FaultProxyOptions) {
    this.options = options;
  }

  async start(): Promise<{ port: number; apiPort: number | null }> {
    const server = net.createServer((client) => this.#accept(client));
    this.#server = server;
    server.listen(this.options.listen?.port ?? 0, this.options.listen?.host ?? '127.0.0.1');
    await once(server, 'listening');
    const port = (server.address() as net.AddressInfo).port;
    let apiPort: number | null = null;
    if (this.options.api) {
      const api = http.createServer((req, res) => this.#handleApi(req, res));
      this.#api = api;
      api.listen(this.options.api.port ?? 0, '127.0.0.1');
      await once(api, 'listening');
      apiPort = (api.address() as net.AddressInfo).port;
    }
    return { port, apiPort };
  }

  /** Replaces the fault settings; they apply to open connections at once. */
  set(faults: FaultSettings): void {
    for (const [k, v] of Object.entries(faults)) {
      if (k === 'blackhole' || k === 'refuse') {
        if (v !== undefined && typeof v !== 'boolean') throw new TypeError(`${k} must be a boolean`);
      } else if (['latencyMs', 'jitterMs', 'bandwidthBytesPerSec'].includes(k)) {
        if (v !== undefined && !(typeof v === 'number' && Number.isFinite(v) && v >= 0))
          throw new TypeError(`${k} must be a non-negative number`);
      } else {
        throw new TypeError(`unknown fault '${k}'`);
      }
    }
    this.faults = Object.freeze({ ...faults });
  }

  /** RST every open connection (both sides). New connections are accepted as before. */
  resetAll(): void {
    for (const c of this.#connections) this.#reset(c);
  }

  /** Resets everything and refuses new connections until restore(). */
  cut(): void {
    this.#cut = true;
    this.resetAll();
  }

  restore(): void {
    this.#cut = false;
  }

  get isCut(): boolean {
    return this.#cut;
  }

  stats(): FaultProxyStats {
    return { open: this.#connections.size, ...this.#stats };
  }

  /** @internal Lanes report forwarded bytes here. */
  count(up: boolean, bytes: number): void {
    if (up) this.#stats.bytesUp += bytes;
    else this.#stats.bytesDown += bytes;
  }

  async close(): Promise<void> {
    const server = this.#server;
    this.#server = null;
    this.resetAll();
    const closing: Promise<unknown>[] = [];
    if (server) closing.push(new Promise((resolve) => server.close(resolve)));
    if (this.#api) {
      const api = this.#api;
      this.#api = null;
      api.closeAllConnections();
      closing.push(new Promise((resolve) => api.close(resolve)));
    }
    await Promise.all(closing);
  }

  #accept(client: net.Socket): void {
    this.#stats.accepted++;
    if (this.#cut || this.faults.refuse) {
      client.on('error', () => {});
      abort(client);
      return;
    }
    client.setNoDelay(true);
    const upstream = net.connect({
      host: this.options.target.host,
      port: this.options.target.port,
      noDelay: true,
    });
    const conn = { client, upstream, lanes: [] as Lane[] };
    this.#connections.add(conn);
    conn.lanes.push(new Lane(client, upstream, this, true), new Lane(upstream, client, this, false));
    let closed = 0;
    const onClose = () => {
      // One side gone: the other follows (a half-close was already passed on by the lane).
      if (++closed === 1) {
        for (const lane of conn.lanes) lane.close();
        this.#connections.delete(conn);
      }
    };
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => abort(client));
    client.on('close', () => {
      onClose();
      if (!upstream.destroyed) upstream.end();
    });
    upstream.on('close', () => {
      onClose();
      if (!client.destroyed) client.end();
    });
  }

  #reset(c: { client: net.Socket; upstream: net.Socket; lanes: Lane[] }): void {
    for (const lane of c.lanes) lane.close();
    this.#connections.delete(c);
    if (!c.client.destroyed) abort(c.client);
    if (!c.upstream.destroyed) abort(c.upstream);
  }

  #handleApi(req: http.IncomingMessage, res: http.ServerResponse): void {
    const send = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    const state = () => ({ faults: this.faults, stats: this.stats(), cut: this.#cut });
    const url = new URL(req.url ?? '/', 'http://proxy');
    const route = `${req.method} ${url.pathname}`;
    if (route === 'GET /faults' || route === 'GET /stats') {
      send(200, state());
      return;
    }
    if (route === 'POST /reset' || route === 'POST /cut' || route === 'POST /restore') {
      if (route === 'POST /reset') this.resetAll();
      else if (route === 'POST /cut') this.cut();
      else this.restore();
      req.resume();
      send(200, state());
      return;
    }
    if (route === 'PUT /faults' || route === 'POST /faults') {
      let body = '';
      req.setEncoding('utf8');
      req.on('data', (s: string) => {
        body += s;
        if (body.length > 64 * 1024) req.destroy();
      });
      req.on('end', () => {
        try {
          const v: unknown = JSON.parse(body || '{}');
          if (typeof v !== 'object' || v === null || Array.isArray(v))
            throw new TypeError('body must be a JSON object');
          this.set(v as FaultSettings);
          send(200, state());
        } catch (err) {
          send(400, { error: { code: 'BAD_REQUEST', message: (err as Error).message } });
        }
      });
      return;
    }
    req.resume();
    send(404, { error: { code: 'NOT_FOUND', message: `${route}: no such route` } });
  }
}
