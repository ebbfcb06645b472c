/**
 * A simulated-device process for the auth-storm benchmark: holds a share of the fleet on raw
 * sockets (MQTT 5 CONNECT with username/password, built once per device by mqtt-packet) and runs
 * the "naive" reconnect policy of DESIGN.md §3: whatever ended the connection (a refusing
 * CONNACK, a server DISCONNECT, a reset), try again after a fixed period. A server
 * `retry-after-ms` hint is ignored on purpose: that is what common client defaults do.
 * Forked by devices.ts; answers requests over IPC.
 */
import net from 'node:net';
import mqtt from 'mqtt-packet';
import { type FrameHandler, FrameScanner, PacketType } from '../loadgen/wire.js';
import type { DeviceSpec, DeviceStats, Envelope, Request, StartRequest } from './protocol.js';

const DISCONNECT = 14;

const counters = {
  attempts: 0,
  connackOk: 0,
  noConnack: 0,
  connected: 0,
  serverDisconnects: 0,
  refused: {} as Record<string, number>,
  errors: {} as Record<string, number>,
};
let config: StartRequest | null = null;
let stopping = false;
let markAtMs = 0;
const devices: Device[] = [];

function bump(map: Record<string, number>, key: string): void {
  map[key] = (map[key] ?? 0) + 1;
}

class Device implements FrameHandler {
  readonly connectPacket: Buffer;
  socket: net.Socket | null = null;
  scanner: FrameScanner | null = null;
  answered = false;
  connected = false;
  marked = false;
  /** Ms from the mark to the first successful CONNACK after it; -1 while not back. */
  backMs = -1;
  timer: NodeJS.Timeout | null = null;

  constructor(spec: DeviceSpec, keepalive: number) {
    this.connectPacket = mqtt.generate({
      cmd: 'connect',
      protocolId: 'MQTT',
      protocolVersion: 5,
      clean: true,
      clientId: spec.clientId,
      keepalive,
      username: spec.username,
      password: Buffer.from(spec.password),
    });
  }

  onFrame(type: number, _flags: number, buf: Buffer, bodyStart: number): void {
    if (type === PacketType.Connack) {
      this.answered = true;
      this.clearTimer();
      const rc = buf[bodyStart + 1] as number;
      if (rc === 0) {
        counters.connackOk++;
        counters.connected++;
        this.connected = true;
        if (this.marked && this.backMs < 0) this.backMs = Date.now() - markAtMs;
      } else {
        bump(counters.refused, `0x${rc.toString(16).padStart(2, '0')}`);
      }
    } else if (type === DISCONNECT) {
      counters.serverDisconnects++;
    }
  }

  clearTimer(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }
}

// Socket handlers are plain functions bound once per connection (no closure per packet).
function onData(this: Device, chunk: Buffer): void {
  this.scanner?.feed(chunk);
}

function onError(this: Device, err: NodeJS.ErrnoException): void {
  bump(counters.errors, err.code ?? 'unknown');
}

function onClose(this: Device): void {
  this.socket = null;
  this.scanner = null;
  this.clearTimer();
  if (this.connected) {
    this.connected = false;
    counters.connected--;
  } else if (!this.answered) counters.noConnack++;
  if (stopping) return;
  const retry = (config as StartRequest).retryMs;
  this.timer = setTimeout(attempt, retry, this);
}

function onConnectTimeout(device: Device): void {
  device.timer = null;
  bump(counters.errors, 'connect_timeout');
  device.socket?.destroy();
}

function attempt(device: Device): void {
  device.timer = null;
  if (stopping) return;
  const c = config as StartRequest;
  counters.attempts++;
  device.answered = false;
  const socket = net.connect({ host: c.host, port: c.port, localAddress: c.localAddress, noDelay: true });
  device.socket = socket;
  device.scanner = new FrameScanner(device);
  socket.on('data', onData.bind(device));
  socket.on('error', onError.bind(device));
  socket.on('close', onClose.bind(device));
  socket.write(device.connectPacket);
  device.timer = setTimeout(onConnectTimeout, c.connectTimeoutMs, device);
}

function start(req: StartRequest): number {
  config = req;
  for (const spec of req.devices) {
    const d = new Device(spec, req.keepalive);
    devices.push(d);
    d.timer = setTimeout(attempt, Math.random() * req.spreadMs, d);
  }
  return devices.length;
}

function stats(): DeviceStats {
  let marked = 0;
  let markedBack = 0;
  for (const d of devices) {
    if (!d.marked) continue;
    marked++;
    if (d.connected) markedBack++;
  }
  return {
    attempts: counters.attempts,
    connackOk: counters.connackOk,
    refused: { ...counters.refused },
    noConnack: counters.noConnack,
    errors: { ...counters.errors },
    connected: counters.connected,
    serverDisconnects: counters.serverDisconnects,
    marked,
    markedBack,
  };
}

function handle(req: Request): unknown {
  switch (req.op) {
    case 'start':
      return start(req);
    case 'stats':
      return stats();
    case 'mark': {
      markAtMs = req.atMs;
      let n = 0;
      for (const d of devices) {
        d.marked = d.connected;
        d.backMs = -1;
        if (d.marked) n++;
      }
      return n;
    }
    case 'recovery':
      return devices.filter((d) => d.marked).map((d) => (d.backMs < 0 ? null : d.backMs));
    case 'close':
      stopping = true;
      for (const d of devices) {
        d.clearTimer();
        d.socket?.destroy();
      }
      setImmediate(() => process.exit(0));
      return null;
  }
}

process.on('message', (msg: { seq: number; req: Request }) => {
  let reply: Envelope<unknown>;
  try {
    reply = { seq: msg.seq, ok: true, value: handle(msg.req) };
  } catch (err) {
    reply = { seq: msg.seq, ok: false, error: String((err as Error)?.stack ?? err) };
  }
  process.send?.(reply);
});
// The coordinator going away must not leave a process behind holding thousands of sockets.
process.on('disconnect', () => process.exit(0));
