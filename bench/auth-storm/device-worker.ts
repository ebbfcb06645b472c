/**
 * A simulated-device process for the auth-storm benchmark: holds a share of the fleet on raw
 * sockets (MQTT 5 CONNECT with username/password, built once per device by mqtt-packet) and runs
 * one of two firmwares (protocol.ts `Firmware`):
 * - `fleet`: the device SDK's own policy objects (`fleetPolicy` and `AuthBreaker` from
 *   @breakwater/device/policy, the same code the SDK and the game-day fleet run): first retry
 *   5–15 s after a loss or refusal, then 30–120 s, then 5–10 min, fresh jitter each time, a
 *   server `retry-after-ms` (CONNACK or DISCONNECT user property) as a lower bound; after 3
 *   authentication refusals in a row (0x86/0x87/0x8C) it stops for 60–90 min;
 * - `naive`: whatever ended the connection (a refusing CONNACK, a server DISCONNECT, a reset),
 *   try again after a fixed period and ignore every hint — what common client defaults do.
 * Forked by devices.ts; answers requests over IPC.
 */
import net from 'node:net';
import {
  AuthBreaker,
  fleetPolicy,
  isAuthFailure,
  mulberry32,
  type Random,
  type ReconnectPolicy,
} from '@breakwater/device/policy';
import mqtt from 'mqtt-packet';
import { type FrameHandler, FrameScanner, PacketType } from '../loadgen/wire.js';
import {
  type DeviceSpec,
  type DeviceStats,
  type DeviceTimeline,
  type Envelope,
  Firmware,
  type FleetConfig,
  type Request,
} from './protocol.js';

const DISCONNECT = 14;
const USER_PROPERTY = 0x26;

const counters = {
  attempts: 0,
  connackOk: 0,
  noConnack: 0,
  connected: 0,
  serverDisconnects: 0,
  hinted: 0,
  refused: {} as Record<string, number>,
  errors: {} as Record<string, number>,
};
let config: FleetConfig | null = null;
let policy: ReconnectPolicy | null = null;
let random: Random = Math.random;
let stopping = false;
const devices: Device[] = [];

function bump(map: Record<string, number>, key: string): void {
  map[key] = (map[key] ?? 0) + 1;
}

/** Byte length of a v5 property value, by property id (MQTT 5 §2.2.2.2); -1: unknown id. */
function propertySize(id: number, buf: Buffer, at: number): number {
  switch (id) {
    case 0x01: // payload format
    case 0x17: // request problem information
    case 0x19: // request response information
    case 0x24: // maximum QoS
    case 0x25: // retain available
    case 0x28: // wildcard subscription available
    case 0x29: // subscription identifiers available
    case 0x2a: // shared subscription available
      return 1;
    case 0x13: // server keep alive
    case 0x21: // receive maximum
    case 0x22: // topic alias maximum
    case 0x23: // topic alias
      return 2;
    case 0x02: // message expiry
    case 0x11: // session expiry
    case 0x18: // will delay
    case 0x27: // maximum packet size
      return 4;
    case 0x03: // content type
    case 0x08: // response topic
    case 0x09: // correlation data
    case 0x12: // assigned client identifier
    case 0x15: // authentication method
    case 0x16: // authentication data
    case 0x1a: // response information
    case 0x1c: // server reference
    case 0x1f: // reason string
      return 2 + buf.readUInt16BE(at);
    case USER_PROPERTY: {
      const k = buf.readUInt16BE(at);
      return 2 + k + 2 + buf.readUInt16BE(at + 2 + k);
    }
    default:
      return -1;
  }
}

/** The `retry-after-ms` user property in v5 properties starting at `at` (varint length first). */
function retryAfterMs(buf: Buffer, at: number, end: number): number | undefined {
  let len = 0;
  let mul = 1;
  let i = at;
  while (i < end) {
    const b = buf[i++] as number;
    len += (b & 0x7f) * mul;
    mul *= 128;
    if ((b & 0x80) === 0) break;
  }
  const stop = Math.min(end, i + len);
  let hint: number | undefined;
  while (i < stop) {
    const id = buf[i++] as number;
    const size = propertySize(id, buf, i);
    if (size < 0) return hint;
    if (id === USER_PROPERTY) {
      const k = buf.readUInt16BE(i);
      const key = buf.toString('utf8', i + 2, i + 2 + k);
      if (key === 'retry-after-ms') {
        const v = buf.readUInt16BE(i + 2 + k);
        const n = Number(buf.toString('utf8', i + 4 + k, i + 4 + k + v));
        if (Number.isFinite(n) && n > 0) hint = n;
      }
    }
    i += size;
  }
  return hint;
}

class Device implements FrameHandler {
  readonly id: string;
  readonly connectPacket: Buffer;
  readonly breaker = new AuthBreaker();
  socket: net.Socket | null = null;
  scanner: FrameScanner | null = null;
  answered = false;
  connected = false;
  /** Consecutive failed attempts (the policy's `attempt`); a successful CONNACK resets it. */
  retry = 0;
  /** The server's hint from the last refusal or DISCONNECT. */
  hintMs: number | undefined = undefined;
  /** Between a lost connection (or boot) and the next CONNACK 0: the current stretch is open. */
  wanting = false;
  authStopped = false;
  readonly timeline: DeviceTimeline;
  timer: NodeJS.Timeout | null = null;

  constructor(spec: DeviceSpec, keepalive: number) {
    this.id = spec.clientId;
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
    this.timeline = { id: spec.clientId, want: [], ok: [], lost: [] };
  }

  onFrame(type: number, _flags: number, buf: Buffer, bodyStart: number, end: number): void {
    if (type === PacketType.Connack) {
      this.answered = true;
      this.clearTimer();
      const rc = buf[bodyStart + 1] as number;
      if (rc === 0) {
        counters.connackOk++;
        counters.connected++;
        this.connected = true;
        this.retry = 0;
        this.hintMs = undefined;
        this.breaker.recordSuccess();
        if (this.wanting) {
          this.wanting = false;
          this.timeline.ok.push(Date.now());
        }
        return;
      }
      bump(counters.refused, `0x${rc.toString(16).padStart(2, '0')}`);
      this.hintMs = end - bodyStart > 2 ? retryAfterMs(buf, bodyStart + 2, end) : undefined;
      if (this.hintMs !== undefined) counters.hinted++;
      if (isAuthFailure(5, rc)) {
        const openMs = this.breaker.recordAuthFailure(Date.now(), random);
        if (openMs !== null && (config as FleetConfig).firmware === Firmware.Fleet) this.authStopped = true;
      }
    } else if (type === DISCONNECT) {
      counters.serverDisconnects++;
      this.hintMs = end - bodyStart > 1 ? retryAfterMs(buf, bodyStart + 1, end) : undefined;
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

/** The firmware's delay before the next attempt. */
function nextDelay(d: Device): number {
  const c = config as FleetConfig;
  if (c.firmware === Firmware.Naive) return c.retryMs;
  d.retry++;
  if (d.authStopped) return Math.max(0, d.breaker.openUntil - Date.now());
  return (policy as ReconnectPolicy).nextDelayMs({ attempt: d.retry, serverHintMs: d.hintMs }, random);
}

function onClose(this: Device): void {
  this.socket = null;
  this.scanner = null;
  this.clearTimer();
  if (this.connected) {
    this.connected = false;
    counters.connected--;
    this.timeline.lost.push(Date.now());
  } else if (!this.answered) counters.noConnack++;
  if (stopping) return;
  this.timer = setTimeout(attempt, nextDelay(this), this);
}

function onConnectTimeout(device: Device): void {
  device.timer = null;
  bump(counters.errors, 'connect_timeout');
  device.socket?.destroy();
}

function attempt(device: Device): void {
  device.timer = null;
  if (stopping) return;
  const c = config as FleetConfig;
  counters.attempts++;
  device.answered = false;
  device.authStopped = false;
  device.hintMs = undefined;
  if (!device.wanting) {
    device.wanting = true;
    device.timeline.want.push(Date.now());
  }
  const socket = net.connect({ host: c.host, port: c.port, localAddress: c.localAddress, noDelay: true });
  device.socket = socket;
  device.scanner = new FrameScanner(device);
  socket.on('data', onData.bind(device));
  socket.on('error', onError.bind(device));
  socket.on('close', onClose.bind(device));
  socket.write(device.connectPacket);
  device.timer = setTimeout(onConnectTimeout, c.connectTimeoutMs, device);
}

function start(specs: readonly DeviceSpec[], spreadMs: number): number {
  const c = config as FleetConfig;
  for (const spec of specs) {
    const d = new Device(spec, c.keepalive);
    devices.push(d);
    d.timer = setTimeout(attempt, random() * spreadMs, d);
  }
  return devices.length;
}

function stats(): DeviceStats {
  let authStopped = 0;
  for (const d of devices) if (d.authStopped) authStopped++;
  return {
    attempts: counters.attempts,
    connackOk: counters.connackOk,
    refused: { ...counters.refused },
    noConnack: counters.noConnack,
    errors: { ...counters.errors },
    connected: counters.connected,
    serverDisconnects: counters.serverDisconnects,
    hinted: counters.hinted,
    authStopped,
  };
}

function handle(req: Request): unknown {
  switch (req.op) {
    case 'configure':
      config = req.config;
      random = mulberry32(req.config.seed);
      policy = fleetPolicy();
      return null;
    case 'start':
      return start(req.devices, req.spreadMs);
    case 'stats':
      return stats();
    case 'timelines':
      return devices.map((d) => d.timeline);
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
