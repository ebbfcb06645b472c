/**
 * The bytes a message travels in between nodes (issue 15): a small binary header, then the
 * payload as is. The topic travels in the envelope (the subject is for NATS's matching only), so a
 * receiver never decodes a subject.
 *
 *   u8 version (2) · u8 flags (bits 0-1 QoS, 2 retain, 3 properties, 4 expiry, 5 publisher)
 *   u8 origin length · origin node id (ASCII; empty for retained entries)
 *   u16 topic length · topic (UTF-8)
 *   [u16 publisher length · publisher]   [f64 expiresAt epoch ms]
 *   [u32 properties length · properties JSON (correlationData as base64)]
 *   payload (the rest)
 */
import type { Message, StoredPublishProperties } from '@breakwater/broker';

const VERSION = 2;
const F_RETAIN = 4;
const F_PROPS = 8;
const F_EXPIRY = 16;
const F_PUBLISHER = 32;

export class EnvelopeError extends Error {}

/** A decoded envelope: the message and the node that published it ('' when not said). */
export interface Envelope {
  msg: Message;
  origin: string;
}

export function encodeEnvelope(msg: Message, origin = ''): Uint8Array {
  const originLen = origin.length;
  const topicLen = Buffer.byteLength(msg.topic);
  const pubLen = msg.publisherId === null ? -1 : Buffer.byteLength(msg.publisherId);
  let props: Buffer | null = null;
  if (msg.properties !== null) {
    const p = msg.properties;
    const json =
      p.correlationData !== undefined
        ? { ...p, correlationData: Buffer.from(p.correlationData).toString('base64') }
        : p;
    props = Buffer.from(JSON.stringify(json));
  }
  const size =
    5 +
    originLen +
    topicLen +
    (pubLen >= 0 ? 2 + pubLen : 0) +
    (msg.expiresAt !== null ? 8 : 0) +
    (props !== null ? 4 + props.length : 0) +
    msg.payload.length;
  const buf = Buffer.allocUnsafe(size);
  let flags = msg.qos & 3;
  if (msg.retain) flags |= F_RETAIN;
  if (props !== null) flags |= F_PROPS;
  if (msg.expiresAt !== null) flags |= F_EXPIRY;
  if (pubLen >= 0) flags |= F_PUBLISHER;
  buf[0] = VERSION;
  buf[1] = flags;
  buf[2] = originLen;
  let o = 3 + buf.write(origin, 3, 'latin1');
  buf.writeUInt16BE(topicLen, o);
  o += 2;
  o += buf.write(msg.topic, o);
  if (pubLen >= 0) {
    buf.writeUInt16BE(pubLen, o);
    o += 2 + buf.write(msg.publisherId!, o + 2);
  }
  if (msg.expiresAt !== null) o = buf.writeDoubleBE(msg.expiresAt, o);
  if (props !== null) {
    o = buf.writeUInt32BE(props.length, o);
    o += props.copy(buf, o);
  }
  msg.payload.copy(buf, o);
  return buf;
}

export function decodeEnvelope(data: Uint8Array): Message {
  return decode(data, false).msg;
}

/** The message and the node it came from (the durable feed skips a node's own messages). */
export function decodeEnvelopeWithOrigin(data: Uint8Array): Envelope {
  return decode(data, true);
}

function decode(data: Uint8Array, withOrigin: boolean): Envelope {
  const buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  if (buf.length < 5 || buf[0] !== VERSION) throw new EnvelopeError('not a breakwater envelope');
  const flags = buf[1]!;
  const originLen = buf[2]!;
  const origin = withOrigin ? buf.toString('latin1', 3, 3 + originLen) : '';
  let o = 3 + originLen;
  const topicLen = buf.readUInt16BE(o);
  o += 2;
  const topic = buf.toString('utf8', o, o + topicLen);
  o += topicLen;
  let publisherId: string | null = null;
  if (flags & F_PUBLISHER) {
    const n = buf.readUInt16BE(o);
    publisherId = buf.toString('utf8', o + 2, o + 2 + n);
    o += 2 + n;
  }
  let expiresAt: number | null = null;
  if (flags & F_EXPIRY) {
    expiresAt = buf.readDoubleBE(o);
    o += 8;
  }
  let properties: StoredPublishProperties | null = null;
  if (flags & F_PROPS) {
    const n = buf.readUInt32BE(o);
    const p = JSON.parse(buf.toString('utf8', o + 4, o + 4 + n)) as StoredPublishProperties & {
      correlationData?: string;
    };
    if (typeof p.correlationData === 'string')
      (p as StoredPublishProperties).correlationData = Buffer.from(p.correlationData, 'base64');
    properties = p as StoredPublishProperties;
    o += 4 + n;
  }
  if (o > buf.length) throw new EnvelopeError('truncated envelope');
  const msg: Message = {
    topic,
    payload: buf.subarray(o),
    qos: (flags & 3) as 0 | 1 | 2,
    retain: (flags & F_RETAIN) !== 0,
    properties,
    expiresAt,
    publisherId,
    encoded: null,
  };
  return { msg, origin };
}
