/**
 * A load-generator process: holds a share of the bench's MQTT connections on raw sockets and
 * publishes / counts / times messages as the coordinator asks over IPC. Forked by pool.ts.
 */
import net from 'node:net';
import { Histogram } from './histogram.js';
import type { ClientSpec, Envelope, Request, SetupRequest, SetupResult, Stats } from './protocol.js';
import {
  connectPacket,
  type FrameHandler,
  FrameScanner,
  PacketType,
  PublishTemplate,
  subscribePacket,
} from './wire.js';

/** Publishes per write in flood mode: one syscall carries many packets, as a real client batches. */
const FLOOD_BATCH = 32;
/** Writes per connection per event-loop turn in flood mode, so one socket cannot starve the rest. */
const FLOOD_WRITES_PER_TURN = 4;

const state = {
  payloadSize: 64,
  qos1Window: 64,
  received: 0,
  receivedBytes: 0,
  sent: 0,
  skipped: 0,
  acked: 0,
  closedUnexpectedly: 0,
  closing: false,
  latencyOn: false,
  /** Monotonic time of the chunk being parsed; one clock read per chunk, not per message. */
  chunkNowNs: 0n,
  mode: 'idle' as 'idle' | 'flood' | 'rate',
  pumpScheduled: false,
  rateTimer: null as NodeJS.Timeout | null,
};
const histogram = new Histogram();
const conns: Conn[] = [];
const publishers: Conn[] = [];

class Conn implements FrameHandler {
  readonly spec: ClientSpec;
  readonly socket: net.Socket;
  readonly scanner: FrameScanner;
  readonly template: PublishTemplate | null;
  /** The QoS 0 flood batch, built once and written again and again (its bytes never change). */
  floodBatch: Buffer | null = null;
  inflight = 0;
  nextPacketId = 1;
  blocked = false;
  onReady: ((err: Error | null) => void) | null = null;
  ready = false;
  acks: number[] = [];

  constructor(spec: ClientSpec, socket: net.Socket) {
    this.spec = spec;
    this.socket = socket;
    this.scanner = new FrameScanner(this);
    this.template = spec.publish
      ? new PublishTemplate(spec.publish.topic, spec.publish.qos, state.payloadSize)
      : null;
  }

  onFrame(type: number, flags: number, buf: Buffer, bodyStart: number, end: number): void {
    switch (type) {
      case PacketType.Publish: {
        state.received++;
        if ((flags & 0x06) !== 0) {
          const topicLen = buf.readUInt16BE(bodyStart);
          this.acks.push(buf.readUInt16BE(bodyStart + 2 + topicLen));
        }
        if (state.latencyOn && end - bodyStart >= state.payloadSize) {
          const sentNs = buf.readBigUInt64BE(end - state.payloadSize);
          histogram.record(Number(state.chunkNowNs - sentNs) / 1000);
        }
        break;
      }
      case PacketType.Puback:
        state.acked++;
        this.inflight--;
        if (state.mode === 'flood' && this.inflight < state.qos1Window / 2) schedulePump();
        break;
      case PacketType.Connack: {
        const rc = buf[bodyStart + 1] as number;
        if (rc !== 0) this.finishSetup(new Error(`CONNACK return code ${rc}`));
        else if (this.spec.subscribe) {
          this.socket.write(subscribePacket(1, this.spec.subscribe.filter, this.spec.subscribe.qos));
        } else this.finishSetup(null);
        break;
      }
      case PacketType.Suback: {
        const granted = buf[end - 1] as number;
        this.finishSetup(granted === 0x80 ? new Error('SUBACK failure') : null);
        break;
      }
      default:
        break;
    }
  }

  finishSetup(err: Error | null): void {
    const cb = this.onReady;
    this.onReady = null;
    if (err === null) this.ready = true;
    cb?.(err);
  }

  flushAcks(): void {
    const n = this.acks.length;
    if (n === 0) return;
    const out = Buffer.allocUnsafe(4 * n);
    for (let i = 0; i < n; i++) {
      out[4 * i] = 0x40;
      out[4 * i + 1] = 2;
      out.writeUInt16BE(this.acks[i] as number, 4 * i + 2);
    }
    this.acks.length = 0;
    this.socket.write(out);
  }

  /** Writes `count` publishes in one buffer; returns false when the socket asks us to wait. */
  publish(count: number, nowNs: bigint): boolean {
    const tpl = this.template as PublishTemplate;
    const out = Buffer.allocUnsafe(tpl.length * count);
    for (let i = 0; i < count; i++) {
      tpl.write(out, i * tpl.length, this.nextPacketId, nowNs);
      this.nextPacketId = this.nextPacketId === 0xffff ? 1 : this.nextPacketId + 1;
    }
    if (tpl.packetIdOffset >= 0) this.inflight += count;
    state.sent += count;
    return this.socket.write(out);
  }
}

// Socket event handlers are plain functions bound once per connection, not per message.
function onData(this: Conn, chunk: Buffer): void {
  state.receivedBytes += chunk.length;
  if (state.latencyOn) state.chunkNowNs = process.hrtime.bigint();
  this.scanner.feed(chunk);
  this.flushAcks();
}

function onDrain(this: Conn): void {
  this.blocked = false;
  if (state.mode === 'flood') schedulePump();
}

function onClose(this: Conn): void {
  if (!state.closing && this.ready) state.closedUnexpectedly++;
  this.finishSetup(new Error('connection closed during setup'));
}

function schedulePump(): void {
  if (state.pumpScheduled || state.mode !== 'flood') return;
  state.pumpScheduled = true;
  setImmediate(pump);
}

function pump(): void {
  state.pumpScheduled = false;
  if (state.mode !== 'flood') return;
  let more = false;
  for (const c of publishers) {
    if (c.blocked || c.socket.destroyed) continue;
    const qos1 = c.template?.packetIdOffset !== -1;
    for (let w = 0; w < FLOOD_WRITES_PER_TURN; w++) {
      let ok: boolean;
      if (qos1) {
        const room = Math.min(FLOOD_BATCH, state.qos1Window - c.inflight);
        if (room <= 0) break;
        ok = c.publish(room, 0n);
      } else {
        if (c.floodBatch === null) {
          const tpl = c.template as PublishTemplate;
          c.floodBatch = Buffer.allocUnsafe(tpl.length * FLOOD_BATCH);
          for (let i = 0; i < FLOOD_BATCH; i++) tpl.write(c.floodBatch, i * tpl.length, 0, 0n);
        }
        state.sent += FLOOD_BATCH;
        ok = c.socket.write(c.floodBatch);
      }
      if (!ok) {
        c.blocked = true;
        break;
      }
      if (w === FLOOD_WRITES_PER_TURN - 1) more = true;
    }
  }
  if (more) schedulePump();
}

function startRate(perSecond: number): void {
  const startNs = process.hrtime.bigint();
  let due = 0;
  let rr = 0;
  const counts = new Array<number>(publishers.length).fill(0);
  // One coarse 1 ms tick for the whole worker; messages due since the last tick go out together.
  state.rateTimer = setInterval(() => {
    const now = process.hrtime.bigint();
    const target = Math.floor((Number(now - startNs) / 1e9) * perSecond);
    let n = target - due;
    due = target;
    if (publishers.length === 0) return;
    while (n > 0) {
      counts[rr] = (counts[rr] as number) + 1;
      rr = (rr + 1) % publishers.length;
      n--;
    }
    for (let i = 0; i < publishers.length; i++) {
      let k = counts[i] as number;
      if (k === 0) continue;
      counts[i] = 0;
      const c = publishers[i] as Conn;
      if (c.socket.destroyed) continue;
      if (c.template?.packetIdOffset !== -1) {
        const room = Math.max(0, state.qos1Window - c.inflight);
        if (k > room) {
          state.skipped += k - room;
          k = room;
        }
      }
      if (k > 0) c.publish(k, now);
    }
  }, 1);
}

function halt(): void {
  state.mode = 'idle';
  if (state.rateTimer !== null) clearInterval(state.rateTimer);
  state.rateTimer = null;
}

async function setup(req: SetupRequest): Promise<SetupResult> {
  state.payloadSize = req.payloadSize;
  state.qos1Window = req.qos1Window;
  let connected = 0;
  let failed = 0;
  let firstError: string | null = null;
  let next = 0;
  const deadline = Date.now() + req.deadlineMs;

  const connectOne = (spec: ClientSpec): Promise<void> =>
    new Promise<void>((resolve) => {
      const socket = net.connect({
        host: req.host,
        port: spec.port ?? req.port,
        ...(spec.localAddress ? { localAddress: spec.localAddress } : {}),
        noDelay: true,
      });
      const conn = new Conn(spec, socket);
      conns.push(conn);
      const timer = setTimeout(
        () => conn.finishSetup(new Error('setup timed out')),
        Math.max(1, deadline - Date.now()),
      );
      conn.onReady = (err) => {
        clearTimeout(timer);
        if (err === null) connected++;
        else {
          failed++;
          firstError ??= `${spec.id}: ${err.message}`;
          socket.destroy();
        }
        resolve();
      };
      socket.on('data', onData.bind(conn));
      socket.on('drain', onDrain.bind(conn));
      socket.on('close', onClose.bind(conn));
      socket.on('error', (err) => conn.finishSetup(err));
      socket.write(connectPacket(spec.id, req.keepalive));
    });

  const lane = async (): Promise<void> => {
    while (next < req.clients.length) {
      const spec = req.clients[next++] as ClientSpec;
      await connectOne(spec);
    }
  };
  await Promise.all(Array.from({ length: Math.min(req.concurrency, req.clients.length) }, lane));
  for (const c of conns) if (c.ready && c.template !== null) publishers.push(c);
  return { connected, failed, firstError };
}

function stats(): Stats {
  const cpu = process.cpuUsage();
  return {
    atMs: Number(process.hrtime.bigint()) / 1e6,
    received: state.received,
    receivedBytes: state.receivedBytes,
    sent: state.sent,
    skipped: state.skipped,
    acked: state.acked,
    closedUnexpectedly: state.closedUnexpectedly,
    cpuMs: (cpu.user + cpu.system) / 1000,
  };
}

async function handle(req: Request): Promise<unknown> {
  switch (req.op) {
    case 'setup':
      return setup(req);
    case 'flood':
      state.mode = 'flood';
      schedulePump();
      return null;
    case 'rate':
      state.mode = 'rate';
      startRate(req.perSecond);
      return null;
    case 'halt':
      halt();
      return null;
    case 'stats':
      return stats();
    case 'latency-reset':
      histogram.reset();
      state.latencyOn = true;
      return null;
    case 'latency':
      return { histogram: histogram.toSparse() };
    case 'close':
      halt();
      state.closing = true;
      for (const c of conns) c.socket.destroy();
      setImmediate(() => process.exit(0));
      return null;
  }
}

process.on('message', (msg: { seq: number; req: Request }) => {
  handle(msg.req).then(
    (value) => process.send?.({ seq: msg.seq, ok: true, value } satisfies Envelope<unknown>),
    (err: unknown) =>
      process.send?.({
        seq: msg.seq,
        ok: false,
        error: String((err as Error)?.stack ?? err),
      } satisfies Envelope<unknown>),
  );
});
// The coordinator going away must not leave a worker behind holding thousands of sockets.
process.on('disconnect', () => process.exit(0));
