/**
 * One client connection over any duplex stream: framing, handing complete packets to the broker's
 * dispatch (packet-dispatch.ts), batched writes, backpressure and closing.
 *
 * Memory discipline (≤ 3 KiB per idle client is a product target): no Parser, no timer and no
 * closure per connection. Stream events go to module-level functions that find the connection
 * through a symbol on the stream; timeouts are deadlines checked by the broker's shared sweep.
 */
import type { Logger } from 'pino';
import type { ByteStream } from './byte-stream.js';
import type { Clock } from './clock.js';
import type { EngineCounters } from './engine-counters.js';
import type { AdmissionRefusal } from './guard/admission/verdict.js';
import type { IntakeBudget, IntakeWaiter } from './intake-budget.js';
import type { BrokerMetrics } from './metrics.js';
import type { BrokerLimits, ConnectionInfo } from './options.js';
import type { OutboundTopicAliases } from './outbound-aliases.js';
import { type DecodeFailure, encode, type Packet } from './protocol/codec.js';
import { type FrameSink, feedFrames } from './protocol/framer.js';
import { ReasonCode, reasonCodeName } from './reason-codes.js';
import type { Session } from './session.js';

export const ConnState = {
  /** Accepted, waiting for CONNECT (connect timeout running). */
  AwaitConnect: 0,
  /** CONNECT received, authentication hook pending; reading is suspended. */
  Authenticating: 1,
  Connected: 2,
  Closed: 3,
} as const;
export type ConnStateValue = (typeof ConnState)[keyof typeof ConnState];

const kConn = Symbol('breakwater.connection');
type StreamWithConn = ByteStream & { [kConn]?: Connection };

/** QoS 0 messages are dropped (counted as slow_consumer) while more than this is buffered unsent. */
const QOS0_BUFFER_LIMIT = 4 * 1024 * 1024;
/**
 * Packets sent in one tick are copied into buffers of up to this size, each written at once. Why
 * not one write per packet: libuv writes at most IOV_MAX (1024) buffers per syscall and, once the
 * socket pushed back, one syscall per event-loop turn, so a subscriber owed a backlog of small
 * packets got 1,024 of them per turn (issue 15: fan-in collapsed to a few hundred msgs/s when
 * turns lasted seconds).
 */
const OUTPUT_CHUNK = 64 * 1024;
/** First size of a coalescing buffer: most ticks send a few packets. */
const OUTPUT_INITIAL = 4 * 1024;
/** How long an ended stream may linger before it is destroyed by the sweep. */
export const CLOSE_LINGER_MS = 2000;

function onStreamData(this: StreamWithConn, chunk: Buffer): void {
  this[kConn]?.onData(chunk);
}
function onStreamEnd(this: StreamWithConn): void {
  // No half-open MQTT connections: the peer ending its side ends the connection.
  this[kConn]?.shutdown('peer_closed', true);
  this.destroy();
}
function onStreamError(this: StreamWithConn, err: Error): void {
  const conn = this[kConn];
  if (conn !== undefined) {
    conn.broker.logger.debug({ clientId: conn.clientId, err: err.message }, 'stream error');
    conn.shutdown('stream_error', true);
  }
  this.destroy();
}
function onStreamClose(this: StreamWithConn): void {
  const conn = this[kConn];
  if (conn === undefined) return;
  conn.shutdown('peer_closed', true);
  conn.broker.onStreamClosed(conn);
  delete this[kConn];
}
function onStreamDrain(this: StreamWithConn): void {
  this[kConn]?.onDrain();
}
function destroyStream(this: ByteStream): void {
  this.destroy();
}
function flushConnection(conn: Connection): void {
  conn.flushOutput();
}

/**
 * Deadlines are stored relative to this (module load time) so that they stay small integers: V8
 * keeps those unboxed in the object, while an epoch-ms double costs a 16-byte heap number per
 * connection. After ~24 days of uptime they outgrow that range and are simply boxed again.
 */
const DEADLINE_BASE = Date.now();

/** Epoch ms (0 = unset) to an offset from DEADLINE_BASE. */
function toBase(ms: number): number {
  const d = ms === 0 ? 0 : ms - DEADLINE_BASE;
  // `| 0` makes V8 store a small integer (the difference of two doubles stays a double).
  return d === (d | 0) ? d | 0 : d;
}
function fromBase(d: number): number {
  return d === 0 ? 0 : d + DEADLINE_BASE;
}

const F_SUSPENDED = 1;
const F_READ_PAUSED = 2;
const F_CORKED = 4;
const F_PROBLEM_INFORMATION = 8;
const F_WILL_ON_CLOSE = 16;
const F_HOOK_ADMITTED = 32;
const F_HANDSHAKE_PENDING = 64;
const F_OVERFLOW_CLOSING = 128;
const F_INTAKE_WAIT = 256;
/** `#out` is a coalescing buffer of ours (else the one packet sent this tick, not copied). */
const F_OUT_OWNED = 512;

/**
 * What a connection needs of the broker that owns it: the clock, limits and counters, the
 * lifecycle callbacks, and the packet dispatch. Declared here so that this module imports
 * nothing of the engine above it (issue 12: no import cycles).
 */
export interface ConnectionHost {
  readonly clock: Clock;
  readonly counters: EngineCounters;
  readonly limits: Readonly<BrokerLimits>;
  readonly logger: Logger;
  readonly metrics: BrokerMetrics;
  /** Time spent on all clients' input per event-loop turn (intake-budget.ts). */
  readonly intake: IntakeBudget;
  /** Handle one complete packet; false when reading must stop (suspended or closed). */
  dispatchFrame(conn: Connection, frame: Buffer): boolean;
  onConnectionShutdown(
    conn: Connection,
    wasState: ConnStateValue,
    reason: string,
    publishWill: boolean,
  ): void;
  onConnectionDrained(conn: Connection): void;
  onStreamClosed(conn: Connection): void;
}

export class Connection implements FrameSink, IntakeWaiter {
  readonly broker: ConnectionHost;
  readonly stream: StreamWithConn;
  readonly info: ConnectionInfo;
  state: ConnStateValue = ConnState.AwaitConnect;
  /** Protocol level: 3 (3.1), 4 (3.1.1) or 5. 4 until CONNECT says otherwise. */
  version = 4;
  clientId = '';
  session: Session | null = null;
  /** Keepalive enforcement window in ms (1.5 × keepalive), 0 = none. */
  keepaliveMs = 0;
  /** Connect timeout, then keepalive deadline, relative to DEADLINE_BASE; see `deadline`. */
  #deadline = 0;
  /** Booleans, one bit each (F_*): seven boolean fields would cost 56 bytes per connection. */
  #flags = F_PROBLEM_INFORMATION | F_WILL_ON_CLOSE;
  // Times below are kept relative to DEADLINE_BASE as `deadline` is (see there): an epoch-ms
  // double in any one connection makes V8 box that field in every connection (16 bytes each).
  #closedAt = 0;
  #connectedAt = 0;
  #blockedSince = 0;
  #expiresAt = 0;

  // FrameSink state.
  headerPart: Buffer | null = null;
  bodyPart: Buffer | null = null;
  bodyFill = 0;
  /** Input received while suspended (authentication pending) or waiting for the intake budget. */
  backlog: Buffer | null = null;
  /** Output of this tick not written yet (`send`), and its length; written on the next tick. */
  #out: Buffer | null = null;
  #outLen = 0;

  /** What the client announced in CONNECT (v5); defaults per spec. */
  clientReceiveMaximum = 65535;
  clientMaxPacketSize = 0;
  /** Client → broker topic aliases (v5), allocated on first use. */
  inboundAliases: Map<number, string> | null = null;
  /** Broker → client topic aliases (v5), only when the client announced a Topic Alias Maximum. */
  outboundAliases: OutboundTopicAliases | null = null;
  /** Acks waiting for a storage flush, in order, with the flush generation each one needs. */
  acks: Buffer[] | null = null;
  ackGens: number[] | null = null;
  /** QoS 1 PUBACKs not sent yet (Receive Maximum accounting). */
  pendingQos1 = 0;
  /**
   * Inbound QoS 2 ids of the resumed session that earlier connections left unreleased: they do
   * not count against this connection's Receive Maximum (MQTT 5.0 §4.9: the quota is per network
   * connection). Null unless a session resumed with some.
   */
  carriedQos2: Set<number> | null = null;

  // Guard state (issue 3). Plain fields, no closures: they cost a few bytes per connection.
  /**
   * An admission refusal waiting to be answered: at accept (answered when the CONNECT arrives,
   * destroyed at `deadline` otherwise) or a tarpit (answered by the sweep at `deadline`). When its
   * `tarpitMs` > 0 the connection holds a tarpit slot, released once at shutdown.
   */
  refusal: AdmissionRefusal | null = null;

  constructor(broker: ConnectionHost, stream: ByteStream, info: ConnectionInfo, now: number) {
    this.broker = broker;
    this.stream = stream as StreamWithConn;
    this.info = info;
    this.deadline = now + broker.limits.connectTimeoutMs;
    const s = this.stream;
    s[kConn] = this;
    s.on('data', onStreamData);
    s.on('end', onStreamEnd);
    s.on('error', onStreamError);
    s.on('close', onStreamClose);
    s.on('drain', onStreamDrain);
  }

  get connected(): boolean {
    return this.state === ConnState.Connected;
  }

  /** Connect timeout, then keepalive deadline (epoch ms); 0 = none. */
  get deadline(): number {
    return fromBase(this.#deadline);
  }
  set deadline(ms: number) {
    this.#deadline = toBase(ms);
  }
  /** Epoch ms when shutdown() ended the stream; the sweep destroys it after CLOSE_LINGER_MS. */
  get closedAt(): number {
    return fromBase(this.#closedAt);
  }
  set closedAt(ms: number) {
    this.#closedAt = toBase(ms);
  }
  /** Epoch ms of the CONNACK 0x00 (0: never accepted): a session's lifetime, for flapping. */
  get connectedAt(): number {
    return fromBase(this.#connectedAt);
  }
  set connectedAt(ms: number) {
    this.#connectedAt = toBase(ms);
  }
  /** Epoch ms since the socket refused writes (write() === false); 0 while writable. */
  get blockedSince(): number {
    return fromBase(this.#blockedSince);
  }
  set blockedSince(ms: number) {
    this.#blockedSince = toBase(ms);
  }
  /** Epoch ms when the credentials expire (JWT `exp`); the sweep disconnects then. 0 = never. */
  get expiresAt(): number {
    return fromBase(this.#expiresAt);
  }
  set expiresAt(ms: number) {
    this.#expiresAt = toBase(ms);
  }

  #flag(bit: number): boolean {
    return (this.#flags & bit) !== 0;
  }
  #setFlag(bit: number, on: boolean): void {
    this.#flags = on ? this.#flags | bit : this.#flags & ~bit;
  }

  /** Framing suspended (authentication pending); input goes to the backlog. */
  get suspended(): boolean {
    return this.#flag(F_SUSPENDED);
  }
  set suspended(on: boolean) {
    this.#setFlag(F_SUSPENDED, on);
  }
  /** stream.pause() in effect (suspended, or too many acks waiting for storage). */
  get readPaused(): boolean {
    return this.#flag(F_READ_PAUSED);
  }
  set readPaused(on: boolean) {
    this.#setFlag(F_READ_PAUSED, on);
  }
  /** Output is held until the next tick (`send`). */
  get corked(): boolean {
    return this.#flag(F_CORKED);
  }
  set corked(on: boolean) {
    this.#setFlag(F_CORKED, on);
  }
  /** v5 Request Problem Information (default true) [MQTT-3.1.2-29]. */
  get problemInformation(): boolean {
    return this.#flag(F_PROBLEM_INFORMATION);
  }
  set problemInformation(on: boolean) {
    this.#setFlag(F_PROBLEM_INFORMATION, on);
  }
  /** Publish the will when the connection closes (cleared by a normal DISCONNECT). */
  get willOnClose(): boolean {
    return this.#flag(F_WILL_ON_CLOSE);
  }
  set willOnClose(on: boolean) {
    this.#setFlag(F_WILL_ON_CLOSE, on);
  }
  /** The authenticate hook admitted this connection: `onClientDisconnected` is owed at close. */
  get hookAdmitted(): boolean {
    return this.#flag(F_HOOK_ADMITTED);
  }
  set hookAdmitted(on: boolean) {
    this.#setFlag(F_HOOK_ADMITTED, on);
  }
  /** Admission counted a handshake in progress for this CONNECT: `onHandshakeDone` is owed. */
  get handshakePending(): boolean {
    return this.#flag(F_HANDSHAKE_PENDING);
  }
  set handshakePending(on: boolean) {
    this.#setFlag(F_HANDSHAKE_PENDING, on);
  }

  /** Its session's queue overflowed under `queueOverflow: disconnect`: the close is scheduled. */
  get overflowClosing(): boolean {
    return this.#flag(F_OVERFLOW_CLOSING);
  }
  set overflowClosing(on: boolean) {
    this.#setFlag(F_OVERFLOW_CLOSING, on);
  }

  onData(chunk: Buffer): void {
    if (this.state === ConnState.Closed) return;
    const b = this.broker;
    b.counters.bytesIn += chunk.length;
    if (this.keepaliveMs > 0) this.deadline = b.clock.now() + this.keepaliveMs; // [MQTT-3.1.2-22]
    if (this.suspended) {
      this.onBacklog(chunk);
      return;
    }
    if (this.#flag(F_INTAKE_WAIT) || !b.intake.admit()) {
      this.#waitForIntake(chunk);
      return;
    }
    feedFrames(this, chunk);
  }

  /**
   * The turn's intake budget is spent: keep `chunk` (a socket chunk is ours, no copy) and stop
   * reading until the budget serves this connection (`intakeResume`).
   */
  #waitForIntake(chunk: Buffer): void {
    // More input while waiting only when something else resumed the stream (durable acks).
    this.backlog = this.backlog === null ? chunk : Buffer.concat([this.backlog, chunk]);
    this.stream.pause();
    if (this.#flag(F_INTAKE_WAIT)) return;
    this.#setFlag(F_INTAKE_WAIT, true);
    this.broker.intake.wait(this);
  }

  intakeResume(): void {
    this.#setFlag(F_INTAKE_WAIT, false);
    if (this.state === ConnState.Closed || this.suspended) return;
    const backlog = this.backlog;
    this.backlog = null;
    if (backlog !== null) feedFrames(this, backlog);
    if (
      !this.readPaused &&
      !this.suspended &&
      (this.state as number) !== ConnState.Closed &&
      this.backlog === null
    )
      this.stream.resume();
  }

  maxInboundPacketSize(): number {
    return this.broker.limits.maxPacketSize;
  }

  onBacklog(rest: Buffer): void {
    this.backlog = this.backlog === null ? Buffer.from(rest) : Buffer.concat([this.backlog, rest]);
    if (!this.readPaused) {
      this.readPaused = true;
      this.stream.pause();
    }
  }

  onFrameError(kind: 'malformed' | 'too_large', size: number): void {
    if (kind === 'too_large') {
      // [MQTT-3.2.2-?] v5: the broker announced its Maximum Packet Size in CONNACK; exceeding it is 0x95.
      this.protocolError(
        ReasonCode.PacketTooLarge,
        `packet of ${size} bytes exceeds the maximum packet size`,
      );
    } else {
      this.protocolError(ReasonCode.MalformedPacket, 'invalid Remaining Length');
    }
  }

  /** Suspend framing (authentication pending); input is kept in the backlog. */
  suspend(): void {
    this.suspended = true;
  }

  resume(): void {
    this.suspended = false;
    if (this.state === ConnState.Closed) return;
    const backlog = this.backlog;
    this.backlog = null;
    if (backlog !== null) feedFrames(this, backlog);
    if (
      !this.suspended &&
      this.readPaused &&
      (this.state as number) !== ConnState.Closed &&
      this.acksBelowLimit()
    ) {
      this.readPaused = false;
      this.stream.resume();
    }
  }

  acksBelowLimit(): boolean {
    return this.acks === null || this.acks.length < this.broker.limits.receiveMaximum;
  }

  /** One complete packet from the framer: the broker's dispatch (packet-dispatch.ts) handles it. */
  onFrame(frame: Buffer): boolean {
    return this.broker.dispatchFrame(this, frame);
  }

  decodeFailed(f: DecodeFailure): void {
    this.protocolError(
      f.error === 'protocol' ? ReasonCode.ProtocolError : ReasonCode.MalformedPacket,
      f.message,
    );
  }

  /**
   * Write one encoded packet. The packets of one tick are written together on the next tick: one
   * packet as it is (a fan-out shares one encoding between subscribers), more copied into
   * buffers of up to OUTPUT_CHUNK bytes.
   */
  send(buf: Buffer): void {
    if (this.state === ConnState.Closed) return;
    this.broker.counters.bytesOut += buf.length;
    const out = this.#out;
    if (out === null) {
      this.#out = buf;
      this.#outLen = buf.length;
      if (!this.corked) {
        this.corked = true;
        process.nextTick(flushConnection, this);
      }
      return;
    }
    const len = this.#outLen;
    const need = len + buf.length;
    if (this.#flag(F_OUT_OWNED) && need <= out.length) {
      buf.copy(out, len);
      this.#outLen = need;
      return;
    }
    if (need > OUTPUT_CHUNK) {
      // Full: written now, and `buf` starts the next one.
      this.#write(this.#flag(F_OUT_OWNED) ? out.subarray(0, len) : out);
      this.#setFlag(F_OUT_OWNED, false);
      this.#out = buf;
      this.#outLen = buf.length;
      return;
    }
    const grown = Buffer.allocUnsafe(Math.min(OUTPUT_CHUNK, Math.max(OUTPUT_INITIAL, need * 2)));
    out.copy(grown, 0, 0, len);
    buf.copy(grown, len);
    this.#out = grown;
    this.#outLen = need;
    this.#setFlag(F_OUT_OWNED, true);
  }

  /** Writes what `send` held this tick (next tick, and before the stream ends). */
  flushOutput(): void {
    this.corked = false;
    const out = this.#out;
    if (out === null) return;
    this.#out = null;
    const len = this.#outLen;
    this.#outLen = 0;
    this.#write(this.#flag(F_OUT_OWNED) ? out.subarray(0, len) : out);
    this.#setFlag(F_OUT_OWNED, false);
  }

  #write(buf: Buffer): void {
    const s = this.stream;
    if (s.destroyed) return;
    if (!s.write(buf) && this.blockedSince === 0) this.blockedSince = this.broker.clock.now();
  }

  sendPacket(packet: Packet): void {
    const buf = this.encodePacket(packet, this.version);
    if (buf !== null) this.send(buf);
  }

  /**
   * Encode a control packet for this client. Over the client's Maximum Packet Size (v5) the
   * diagnostics go first: the Reason String, then the User Properties [MQTT-3.2.2-19]
   * [MQTT-3.2.2-20] [MQTT-3.4.2-2] [MQTT-3.4.2-3] [MQTT-3.5.2-2] [MQTT-3.6.2-2] [MQTT-3.7.2-2]
   * [MQTT-3.9.2-1] [MQTT-3.9.2-2] [MQTT-3.11.2-1] [MQTT-3.14.2-3] [MQTT-3.14.2-4]. Null (logged and
   * counted) when it still does not fit, since nothing larger may be sent [MQTT-3.1.2-24].
   */
  encodePacket(packet: Packet, version: number): Buffer | null {
    let buf = encode(packet, version);
    if (buf === null) {
      this.broker.logger.error({ clientId: this.clientId, cmd: packet.cmd }, 'failed to encode packet');
      return null;
    }
    const max = this.clientMaxPacketSize;
    if (max === 0 || buf.length <= max) return buf;
    const props = (packet as { properties?: { reasonString?: string; userProperties?: unknown } }).properties;
    if (props !== undefined && props.reasonString !== undefined) {
      const { reasonString: _dropped, ...rest } = props;
      packet = { ...packet, properties: rest } as Packet;
      buf = encode(packet, version);
      if (buf !== null && buf.length <= max) return buf;
    }
    if (props !== undefined && props.userProperties !== undefined) {
      const { reasonString: _r, userProperties: _u, ...rest } = props;
      buf = encode({ ...packet, properties: rest } as Packet, version);
      if (buf !== null && buf.length <= max) return buf;
    }
    this.broker.logger.debug(
      { clientId: this.clientId, cmd: packet.cmd, maximumPacketSize: max },
      "packet larger than the client's Maximum Packet Size: not sent",
    );
    this.broker.counters.drop('packet_too_large');
    return null;
  }

  /** Too much unsent data buffered: QoS 0 deliveries are dropped instead of growing the buffer. */
  get congested(): boolean {
    return this.stream.writableLength + this.#outLen > QOS0_BUFFER_LIMIT;
  }

  onDrain(): void {
    this.blockedSince = 0;
    this.broker.onConnectionDrained(this);
  }

  /** Reason string only where the client allows it [MQTT-3.1.2-29]. */
  reasonProps(reasonString: string | undefined): { reasonString: string } | undefined {
    return reasonString !== undefined && this.problemInformation ? { reasonString } : undefined;
  }

  /**
   * Close because the client broke the protocol: a log line, a metric, v5 DISCONNECT with the
   * reason code and a reason string (once connected) [MQTT-4.13.1-1], then close. The will is sent.
   */
  protocolError(reasonCode: number, message: string): void {
    if (this.state === ConnState.Closed) return;
    const b = this.broker;
    const name = reasonCodeName(reasonCode);
    b.logger.warn(
      { clientId: this.clientId || undefined, remoteAddress: this.info.remoteAddress, reason: name },
      `closing connection: ${message}`,
    );
    b.metrics.protocolErrors.inc({ reason: name });
    this.disconnect(reasonCode, message, name);
  }

  /**
   * Server-initiated close with a v5 DISCONNECT (when connected and v5). `serverReference` goes
   * with 0x9C/0x9D (MQTT 5.0 §4.11, node drain and redirect).
   */
  disconnect(
    reasonCode: number,
    reasonString: string | undefined,
    reason: string,
    serverReference?: string,
  ): void {
    if (this.state === ConnState.Closed) return;
    if (this.state === ConnState.Connected && this.version === 5) {
      const properties: { reasonString?: string; serverReference?: string } = {};
      // DISCONNECT may carry a Reason String whatever Request Problem Information says [MQTT-3.1.2-29].
      if (reasonString !== undefined) properties.reasonString = reasonString;
      if (serverReference !== undefined) properties.serverReference = serverReference;
      this.sendPacket({
        cmd: 'disconnect',
        reasonCode,
        ...(properties.reasonString !== undefined || serverReference !== undefined ? { properties } : {}),
      } as Packet);
    }
    this.shutdown(reason, true);
  }

  /**
   * End the connection: detach it from its session at once (no socket is ever left in the
   * session map after its close), end the stream and let the sweep destroy it if it lingers.
   */
  shutdown(reason: string, publishWill: boolean): void {
    if (this.state === ConnState.Closed) return;
    const wasState = this.state;
    this.state = ConnState.Closed;
    const b = this.broker;
    this.closedAt = b.clock.now();
    this.backlog = null;
    this.bodyPart = null;
    this.headerPart = null;
    b.onConnectionShutdown(this, wasState, reason, publishWill && this.willOnClose);
    const s = this.stream;
    this.flushOutput();
    if (!s.destroyed) {
      s.once('finish', destroyStream);
      s.end();
    }
  }

  /** Destroy the stream now (takeover, timeouts, slow consumers, broker close). */
  destroy(reason: string): void {
    this.shutdown(reason, true);
    if (!this.stream.destroyed) this.stream.destroy();
  }
}
