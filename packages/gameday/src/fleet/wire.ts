/**
 * The simulator's view of the wire. Outgoing packets are built with mqtt-packet's generator.
 * Incoming bytes are cut into frames by the fixed header alone and the frequent packets (PUBLISH,
 * PUBACK, PINGRESP, SUBACK, a plain CONNACK) are read by hand: one mqtt-packet Parser per device
 * costs kilobytes each and 15,000 of them would dominate the simulator's memory. The rare packets
 * that carry MQTT 5 properties (CONNACK and DISCONNECT with user properties) go through one
 * shared parser per protocol version, fed one complete frame at a time.
 */
import mqtt from 'mqtt-packet';

export const PacketType = {
  Connack: 2,
  Publish: 3,
  Puback: 4,
  Suback: 9,
  Unsuback: 11,
  Pingresp: 13,
  Disconnect: 14,
} as const;

export const PINGREQ: Buffer = mqtt.generate({ cmd: 'pingreq' });
export const DISCONNECT_V4: Buffer = mqtt.generate({ cmd: 'disconnect' });
export const DISCONNECT_V5: Buffer = mqtt.generate(
  { cmd: 'disconnect', reasonCode: 0 },
  { protocolVersion: 5 },
);

export interface ConnectFields {
  clientId: string;
  protocolVersion: 4 | 5;
  keepalive: number;
  clean: boolean;
  username?: string | undefined;
  password?: string | undefined;
}

export function connectPacket(f: ConnectFields): Buffer {
  const packet: mqtt.IConnectPacket = {
    cmd: 'connect',
    protocolId: 'MQTT',
    protocolVersion: f.protocolVersion,
    clean: f.clean,
    clientId: f.clientId,
    keepalive: f.keepalive,
  };
  if (f.username !== undefined) packet.username = f.username;
  if (f.password !== undefined) packet.password = Buffer.from(f.password, 'utf8');
  if (f.protocolVersion === 5 && !f.clean) packet.properties = { sessionExpiryInterval: 86_400 };
  return mqtt.generate(packet);
}

export function subscribePacket(protocolVersion: 4 | 5, messageId: number, topics: string[]): Buffer {
  return mqtt.generate(
    { cmd: 'subscribe', messageId, subscriptions: topics.map((topic) => ({ topic, qos: 1 as const })) },
    { protocolVersion },
  );
}

export function publishPacket(
  protocolVersion: 4 | 5,
  topic: string,
  payload: Buffer | string,
  qos: 0 | 1,
  messageId: number,
  retain = false,
): Buffer {
  const packet: mqtt.IPublishPacket = { cmd: 'publish', topic, payload, qos, retain, dup: false };
  if (qos > 0) packet.messageId = messageId;
  return mqtt.generate(packet, { protocolVersion });
}

export function pubackPacket(protocolVersion: 4 | 5, messageId: number): Buffer {
  // v5 PUBACK with reason 0 and no properties may omit both (§3.4.2.1): same bytes as v4.
  void protocolVersion;
  return Buffer.from([0x40, 0x02, messageId >> 8, messageId & 0xff]);
}

/** A received PUBLISH, read by hand (no properties kept). */
export interface IncomingPublish {
  topic: string;
  qos: number;
  retain: boolean;
  messageId: number;
  payload: Buffer;
}

/** Reads a PUBLISH body `buf[start..end)` with fixed-header `flags`. Null when malformed. */
export function readPublish(
  protocolVersion: 4 | 5,
  flags: number,
  buf: Buffer,
  start: number,
  end: number,
): IncomingPublish | null {
  const qos = (flags >> 1) & 3;
  let pos = start;
  if (pos + 2 > end) return null;
  const topicLength = buf.readUInt16BE(pos);
  pos += 2;
  if (pos + topicLength > end) return null;
  const topic = buf.toString('utf8', pos, pos + topicLength);
  pos += topicLength;
  let messageId = 0;
  if (qos > 0) {
    if (pos + 2 > end) return null;
    messageId = buf.readUInt16BE(pos);
    pos += 2;
  }
  if (protocolVersion === 5) {
    const v = readVarint(buf, pos, end);
    if (v === null) return null;
    pos = v.next + v.value;
    if (pos > end) return null;
  }
  // Copy: the frame may live in a reused socket read buffer.
  return { topic, qos, retain: (flags & 1) === 1, messageId, payload: Buffer.from(buf.subarray(pos, end)) };
}

function readVarint(buf: Buffer, pos: number, end: number): { value: number; next: number } | null {
  let value = 0;
  let mul = 1;
  for (let i = pos; i < end && i < pos + 4; i++) {
    const b = buf[i] as number;
    value += (b & 0x7f) * mul;
    mul *= 128;
    if ((b & 0x80) === 0) return { value, next: i + 1 };
  }
  return null;
}

/** CONNACK or DISCONNECT, reduced to what the reconnect logic needs. */
export interface ControlOutcome {
  /** v5 reason code or v3.1.1 return code (0 = success / normal disconnection). */
  code: number;
  /** The server's `retry-after-ms` user property, if any. */
  retryAfterMs: number | null;
}

const parsers: Partial<Record<4 | 5, mqtt.Parser>> = {};
let lastParsed: mqtt.Packet | null = null;

function sharedParser(protocolVersion: 4 | 5): mqtt.Parser {
  let p = parsers[protocolVersion];
  if (!p) {
    p = mqtt.parser({ protocolVersion });
    p.on('packet', (packet: mqtt.Packet) => {
      lastParsed = packet;
    });
    p.on('error', () => {
      lastParsed = null;
    });
    parsers[protocolVersion] = p;
  }
  return p;
}

/** Reads a CONNACK (type 2) or DISCONNECT (type 14) frame `buf[frameStart..end)`. */
export function readControl(
  protocolVersion: 4 | 5,
  type: number,
  buf: Buffer,
  frameStart: number,
  bodyStart: number,
  end: number,
): ControlOutcome {
  if (type === PacketType.Connack) {
    const code = end - bodyStart >= 2 ? (buf[bodyStart + 1] as number) : 0x80;
    if (protocolVersion === 4 || end - bodyStart <= 3) return { code, retryAfterMs: null };
  } else if (end - bodyStart <= 1) {
    return { code: end > bodyStart ? (buf[bodyStart] as number) : 0, retryAfterMs: null };
  }
  lastParsed = null;
  sharedParser(protocolVersion).parse(Buffer.from(buf.subarray(frameStart, end)));
  const packet = lastParsed as (mqtt.IConnackPacket | mqtt.IDisconnectPacket) | null;
  lastParsed = null;
  if (!packet) return { code: 0x81, retryAfterMs: null }; // malformed
  const code =
    packet.cmd === 'connack'
      ? (packet.reasonCode ?? packet.returnCode ?? 0x80)
      : ((packet as mqtt.IDisconnectPacket).reasonCode ?? 0);
  return { code, retryAfterMs: readRetryAfterMs(packet.properties?.userProperties) };
}

/** The `retry-after-ms` user property (last value wins), as the device SDK reads it. */
export function readRetryAfterMs(
  userProperties: Record<string, string | string[]> | undefined,
): number | null {
  const raw = userProperties?.['retry-after-ms'];
  const v = Array.isArray(raw) ? raw[raw.length - 1] : raw;
  if (v === undefined) return null;
  const n = Number(v);
  return Number.isFinite(n) && n > 0 ? Math.floor(n) : null;
}

/**
 * Calls `onFrame(type, flags, buf, frameStart, bodyStart, end)` for every complete frame in
 * `pending + chunk` and returns the incomplete tail (or null).
 */
export function scanFrames(
  pending: Buffer | null,
  chunk: Buffer,
  onFrame: (
    type: number,
    flags: number,
    buf: Buffer,
    frameStart: number,
    bodyStart: number,
    end: number,
  ) => void,
): Buffer | null {
  const buf = pending === null ? chunk : Buffer.concat([pending, chunk]);
  const n = buf.length;
  let pos = 0;
  while (pos + 2 <= n) {
    let len = 0;
    let mul = 1;
    let i = pos + 1;
    let complete = false;
    while (i < n && i < pos + 5) {
      const b = buf[i] as number;
      len += (b & 0x7f) * mul;
      mul *= 128;
      i++;
      if ((b & 0x80) === 0) {
        complete = true;
        break;
      }
    }
    if (!complete || i + len > n) break;
    const header = buf[pos] as number;
    onFrame(header >> 4, header & 0x0f, buf, pos, i, i + len);
    pos = i + len;
  }
  // Copy the tail: holding a subarray would pin the whole read buffer.
  return pos < n ? Buffer.from(buf.subarray(pos)) : null;
}

const V5_REASONS: Record<number, string> = {
  0: 'success',
  4: 'disconnect-with-will',
  128: 'unspecified-error',
  129: 'malformed-packet',
  130: 'protocol-error',
  131: 'implementation-specific-error',
  132: 'unsupported-protocol-version',
  133: 'client-identifier-not-valid',
  134: 'bad-username-or-password',
  135: 'not-authorized',
  136: 'server-unavailable',
  137: 'server-busy',
  138: 'banned',
  139: 'server-shutting-down',
  140: 'bad-authentication-method',
  141: 'keep-alive-timeout',
  142: 'session-taken-over',
  143: 'topic-filter-invalid',
  144: 'topic-name-invalid',
  147: 'receive-maximum-exceeded',
  148: 'topic-alias-invalid',
  149: 'packet-too-large',
  150: 'message-rate-too-high',
  151: 'quota-exceeded',
  152: 'administrative-action',
  153: 'payload-format-invalid',
  154: 'retain-not-supported',
  155: 'qos-not-supported',
  156: 'use-another-server',
  157: 'server-moved',
  158: 'shared-subscriptions-not-supported',
  159: 'connection-rate-exceeded',
  160: 'maximum-connect-time',
  161: 'subscription-identifiers-not-supported',
  162: 'wildcard-subscriptions-not-supported',
};

const V4_RETURN_CODES: Record<number, string> = {
  0: 'success',
  1: 'unacceptable-protocol-version',
  2: 'identifier-rejected',
  3: 'server-unavailable',
  4: 'bad-username-or-password',
  5: 'not-authorized',
};

/** A stats key for a CONNACK/DISCONNECT code: the MQTT name (e.g. 'not-authorized') or '0xNN'. */
export function reasonName(protocolVersion: 4 | 5, code: number): string {
  const name = protocolVersion === 5 ? V5_REASONS[code] : V4_RETURN_CODES[code];
  return name ?? `0x${code.toString(16).padStart(2, '0')}`;
}
