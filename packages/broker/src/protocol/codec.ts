/**
 * Packet decoding and encoding on top of mqtt-packet, shared by all connections.
 *
 * Decoding: the framer delivers exactly one complete packet; it is parsed by ONE shared mqtt-packet
 * Parser per protocol version (a Parser per connection would cost ~1 KiB per idle client). A
 * parser that hit an error is replaced by a fresh one. PUBLISH without properties (the hot path)
 * is decoded here directly, without mqtt-packet, and its topic bytes are checked for well-formed
 * UTF-8 on the raw bytes [MQTT-1.5.4-1] (mqtt-packet would silently turn them into U+FFFD).
 *
 * Encoding: `mqtt.generate()` for control packets; PUBLISH without properties is encoded here into
 * one buffer, so a QoS 0 message is encoded once for all its subscribers.
 */
import { isUtf8 } from 'node:buffer';
import mqtt from 'mqtt-packet';
import { checkFields } from './field-validation.js';
import { headerLength } from './framer.js';

export type Packet = mqtt.Packet;
export type PublishPacket = mqtt.IPublishPacket;

export const PacketType = {
  CONNECT: 1,
  CONNACK: 2,
  PUBLISH: 3,
  PUBACK: 4,
  PUBREC: 5,
  PUBREL: 6,
  PUBCOMP: 7,
  SUBSCRIBE: 8,
  SUBACK: 9,
  UNSUBSCRIBE: 10,
  UNSUBACK: 11,
  PINGREQ: 12,
  PINGRESP: 13,
  DISCONNECT: 14,
  AUTH: 15,
} as const;

/** Why a packet could not be decoded; maps to the v5 reason code the connection is closed with. */
export type DecodeFailure = { error: 'malformed' | 'protocol'; message: string };

type ParserInstance = ReturnType<typeof mqtt.parser>;

let lastPacket: Packet | null = null;
let lastError: Error | null = null;

function onParsedPacket(p: Packet): void {
  lastPacket = p;
}
function onParseError(e: Error): void {
  lastError = e;
}

function newParser(protocolVersion: number): ParserInstance {
  const p = mqtt.parser({ protocolVersion: protocolVersion as 3 | 4 | 5 });
  p.on('packet', onParsedPacket);
  p.on('error', onParseError);
  return p;
}

const parsers: ParserInstance[] = [];

function parserFor(version: number): ParserInstance {
  let p = parsers[version];
  if (p === undefined) {
    p = newParser(version);
    parsers[version] = p;
  }
  return p;
}

/** Parse one complete packet with the shared parser of that protocol version. */
export function parseWithMqttPacket(frame: Buffer, version: number): Packet | DecodeFailure {
  const parser = parserFor(version);
  lastPacket = null;
  lastError = null;
  try {
    parser.parse(frame);
  } catch (err) {
    lastError = err instanceof Error ? err : new Error(String(err));
  }
  // _parseConnect replaces the parser settings with the packet; a shared parser must not keep them.
  (parser as unknown as { settings: object }).settings = { protocolVersion: version };
  const packet = lastPacket as Packet | null;
  const error = lastError as Error | null;
  lastPacket = null;
  lastError = null;
  if (error !== null || packet === null) {
    parsers[version] = newParser(version);
    return { error: 'malformed', message: error?.message ?? 'incomplete packet' };
  }
  const props = (packet as { properties?: object }).properties;
  if (props !== undefined) {
    const dup = repeatedProperty(props);
    if (dup !== null) return dup;
  }
  const willProps = (packet as { will?: { properties?: object } }).will?.properties;
  if (willProps !== undefined) {
    const dup = repeatedProperty(willProps);
    if (dup !== null) return dup;
  }
  return checkFields(frame, version) ?? packet;
}

/**
 * A property included twice, or truncated. mqtt-packet turns a repeated property into an array of values
 * (`responseTopic: ['a', 'b']`), which the handlers would then use as a string or number — a
 * remote crash (found by the fuzzer: a PUBLISH with two Response Topics threw in
 * isValidTopicName). MQTT 5.0 §2.2.2.2: every property except User Property (and Subscription
 * Identifier, server to client only) may appear once; more is a Protocol Error.
 */
function repeatedProperty(props: object): DecodeFailure | null {
  for (const name in props) {
    const value = (props as Record<string, unknown>)[name];
    // A string or binary value cut short by its property section: mqtt-packet stores null and
    // reports no error (fuzzer: Buffer.from(null) and isValidTopicName(null) threw).
    if (value === null) return { error: 'malformed', message: `property ${name} is truncated` };
    if (name === 'userProperties') {
      for (const k in value as object) {
        if ((value as Record<string, unknown>)[k] === null)
          return { error: 'malformed', message: 'user property is truncated' };
      }
    } else if (Array.isArray(value)) {
      return { error: 'protocol', message: `property ${name} included more than once` };
    }
  }
  return null;
}

/**
 * CONNECT decoded by hand for MQTT 3.1 / 3.1.1 (every well-formed one), else by mqtt-packet.
 * Why: the shared mqtt-packet parser allocates ~3.5 KB of garbage per CONNECT (BufferList copies,
 * debug() argument arrays), which a reconnect storm of 10,000 clients pays at once. Anything
 * unusual (v5, bridge mode, a flag or length error, trailing bytes) goes to mqtt-packet, so error
 * messages and edge cases stay exactly those of `parseWithMqttPacket`.
 */
export function decodeConnect(frame: Buffer): Packet | DecodeFailure {
  const p = decodeConnectV4(frame);
  return p ?? parseWithMqttPacket(frame, 4);
}

function decodeConnectV4(frame: Buffer): mqtt.IConnectPacket | null {
  if (frame[0] !== 0x10) return null;
  const end = frame.length;
  let pos = headerLength(frame);
  // The framer cut the frame by its Remaining Length; re-checked so the decoder stands alone.
  let remaining = 0;
  for (let i = 1, mul = 1; i < pos; i++, mul *= 128) remaining += (frame[i]! & 0x7f) * mul;
  if (pos + remaining !== end || pos + 2 > end) return null;
  const nameLen = frame.readUInt16BE(pos);
  pos += 2;
  let protocolId: 'MQTT' | 'MQIsdp';
  if (nameLen === 4 && pos + 4 <= end && frame.readUInt32BE(pos) === 0x4d515454) protocolId = 'MQTT';
  else if (nameLen === 6 && pos + 6 <= end && frame.readUIntBE(pos, 6) === 0x4d5149736470)
    protocolId = 'MQIsdp';
  else return null;
  pos += nameLen;
  if (pos + 4 > end) return null;
  const level = frame[pos]!;
  if (level !== 3 && level !== 4) return null;
  const flags = frame[pos + 1]!;
  // Reserved bit set, will QoS/retain without the will flag: mqtt-packet reports those; will QoS 3
  // and a password without a user name: field-validation.ts does (mqtt-packet accepts them).
  if ((flags & 0x01) !== 0 || ((flags & 0x04) === 0 && (flags & 0x38) !== 0)) return null;
  if ((flags & 0x18) === 0x18 || (flags & 0xc0) === 0x40) return null;
  const keepalive = frame.readUInt16BE(pos + 2);
  pos += 4;
  if (pos + 2 > end) return null;
  let n = frame.readUInt16BE(pos);
  pos += 2;
  if (pos + n > end) return null;
  // Ill-formed UTF-8 anywhere: mqtt-packet + checkFields answer it [MQTT-1.5.3-1].
  if (!isUtf8(frame.subarray(pos, pos + n))) return null;
  const clientId = frame.toString('utf8', pos, pos + n);
  pos += n;
  const packet: mqtt.IConnectPacket = {
    cmd: 'connect',
    protocolId,
    protocolVersion: level,
    clean: (flags & 0x02) !== 0,
    keepalive,
    clientId,
  };
  if ((flags & 0x04) !== 0) {
    if (pos + 2 > end) return null;
    n = frame.readUInt16BE(pos);
    pos += 2;
    if (pos + n > end || !isUtf8(frame.subarray(pos, pos + n))) return null;
    const topic = frame.toString('utf8', pos, pos + n);
    pos += n;
    if (pos + 2 > end) return null;
    n = frame.readUInt16BE(pos);
    pos += 2;
    if (pos + n > end) return null;
    // A copy: a view would keep the whole socket read chunk alive with the will.
    const payload = Buffer.from(frame.subarray(pos, pos + n));
    pos += n;
    packet.will = { topic, payload, qos: ((flags >> 3) & 0x03) as mqtt.QoS, retain: (flags & 0x20) !== 0 };
  }
  if ((flags & 0x80) !== 0) {
    if (pos + 2 > end) return null;
    n = frame.readUInt16BE(pos);
    pos += 2;
    if (pos + n > end || !isUtf8(frame.subarray(pos, pos + n))) return null;
    packet.username = frame.toString('utf8', pos, pos + n);
    pos += n;
  }
  if ((flags & 0x40) !== 0) {
    if (pos + 2 > end) return null;
    n = frame.readUInt16BE(pos);
    pos += 2;
    if (pos + n > end) return null;
    packet.password = Buffer.from(frame.subarray(pos, pos + n));
    pos += n;
  }
  return pos === end ? packet : null;
}

/**
 * Protocol level of a CONNECT frame, read from the raw bytes so an unsupported level can be
 * answered with CONNACK "unacceptable protocol version" [MQTT-3.1.2-2] instead of a parse error.
 * Returns -1 when the frame is too short to tell.
 */
export function connectProtocolLevel(frame: Buffer): number {
  const h = headerLength(frame);
  if (frame.length < h + 2) return -1;
  const nameLen = frame.readUInt16BE(h);
  const at = h + 2 + nameLen;
  if (at >= frame.length) return -1;
  return frame[at]! & 0x7f;
}

/** Decode a PUBLISH. Fast path without mqtt-packet when there are no properties. */
export function decodePublish(frame: Buffer, version: number): PublishPacket | DecodeFailure {
  const flags = frame[0]! & 0x0f;
  const qos = (flags >> 1) & 3;
  if (qos === 3) return { error: 'malformed', message: 'PUBLISH with QoS 3' }; // [MQTT-3.3.1-4]
  let pos = headerLength(frame);
  if (pos + 2 > frame.length) return { error: 'malformed', message: 'PUBLISH too short' };
  const topicLen = frame.readUInt16BE(pos);
  pos += 2;
  const topicEnd = pos + topicLen;
  if (topicEnd > frame.length) return { error: 'malformed', message: 'PUBLISH topic exceeds packet' };
  const topicBytes = frame.subarray(pos, topicEnd);
  if (!isUtf8(topicBytes)) return { error: 'malformed', message: 'topic name is not valid UTF-8' }; // [MQTT-1.5.4-1]
  pos = topicEnd;
  let messageId: number | undefined;
  if (qos > 0) {
    if (pos + 2 > frame.length) return { error: 'malformed', message: 'PUBLISH without packet identifier' };
    messageId = frame.readUInt16BE(pos);
    pos += 2;
    if (messageId === 0) return { error: 'protocol', message: 'packet identifier 0' }; // [MQTT-2.2.1-3]
  }
  if (version === 5) {
    if (pos >= frame.length) return { error: 'malformed', message: 'PUBLISH without property length' };
    if (frame[pos] !== 0) {
      // Properties present: let mqtt-packet decode them (validated property table).
      const parsed = parseWithMqttPacket(frame, 5);
      if ('error' in parsed) return parsed;
      return parsed as PublishPacket;
    }
    pos += 1;
  }
  const packet: PublishPacket = {
    cmd: 'publish',
    topic: topicBytes.toString('utf8'),
    payload: frame.subarray(pos),
    qos: qos as 0 | 1 | 2,
    retain: (flags & 1) !== 0,
    dup: (flags & 8) !== 0,
  };
  if (messageId !== undefined) packet.messageId = messageId;
  return packet;
}

/** Encode any packet; null when mqtt-packet refuses it (invalid field values). */
export function encode(packet: Packet, version: number): Buffer | null {
  try {
    return mqtt.generate(packet, { protocolVersion: version as 3 | 4 | 5 });
  } catch {
    return null;
  }
}

function varIntLength(n: number): number {
  return n < 128 ? 1 : n < 16384 ? 2 : n < 2097152 ? 3 : 4;
}

/**
 * Encode a PUBLISH without properties into one buffer (v5: property length 0). `packetId` is only
 * written for QoS > 0. With `alias` > 0 (v5 only) the one property is that Topic Alias; `topic` is
 * then '' when the client already maps the alias (MQTT 5.0 §3.3.2.3.4).
 */
export function encodePlainPublish(
  version: number,
  topic: string,
  payload: Buffer,
  qos: number,
  retain: boolean,
  dup: boolean,
  packetId: number,
  alias = 0,
): Buffer {
  const topicLen = Buffer.byteLength(topic);
  const props = version === 5 ? (alias > 0 ? 4 : 1) : 0;
  const remaining = 2 + topicLen + (qos > 0 ? 2 : 0) + props + payload.length;
  const buf = Buffer.allocUnsafe(1 + varIntLength(remaining) + remaining);
  buf[0] = 0x30 | (dup ? 8 : 0) | (qos << 1) | (retain ? 1 : 0);
  let pos = 1;
  let n = remaining;
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    buf[pos++] = b;
  } while (n > 0);
  buf.writeUInt16BE(topicLen, pos);
  pos += 2;
  pos += buf.write(topic, pos, 'utf8');
  if (qos > 0) {
    buf.writeUInt16BE(packetId, pos);
    pos += 2;
  }
  if (props === 4) {
    buf[pos++] = 3; // property length
    buf[pos++] = TOPIC_ALIAS_PROPERTY;
    buf.writeUInt16BE(alias, pos);
    pos += 2;
  } else if (props === 1) {
    buf[pos++] = 0;
  }
  payload.copy(buf, pos);
  return buf;
}

/** Property identifier of Topic Alias (MQTT 5.0 §2.2.2.2). */
const TOPIC_ALIAS_PROPERTY = 0x23;

/**
 * The Topic Alias of a PUBLISH made by `encodePlainPublish` (0: none), read from its bytes: lets
 * a shared QoS 0 encoding be reused by every subscriber that has the same alias for the topic.
 */
export function plainPublishAlias(buf: Buffer): number {
  let pos = 1;
  while ((buf[pos++]! & 0x80) !== 0);
  pos += 2 + buf.readUInt16BE(pos);
  if ((buf[0]! & 0x06) !== 0) pos += 2; // packet id
  if (buf[pos] !== 3 || buf[pos + 1] !== TOPIC_ALIAS_PROPERTY) return 0;
  return buf.readUInt16BE(pos + 2);
}

/** Size of a PUBLISH without properties (but the alias, if any), for the client's Maximum Packet Size check. */
export function plainPublishSize(
  version: number,
  topic: string,
  payloadLength: number,
  qos: number,
  alias = 0,
): number {
  const props = version === 5 ? (alias > 0 ? 4 : 1) : 0;
  const remaining = 2 + Buffer.byteLength(topic) + (qos > 0 ? 2 : 0) + props + payloadLength;
  return 1 + varIntLength(remaining) + remaining;
}
