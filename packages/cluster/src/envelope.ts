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
 *
 * Between nodes, messages travel in batches of such envelopes (`EnvelopeBatch`, version 3).
 */
import type { Message, StoredPublishProperties } from '@breakwater/broker';

const VERSION = 2;
const BATCH_VERSION = 3;
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
  const props = propertiesJson(msg);
  const buf = Buffer.allocUnsafe(envelopeSize(msg, origin, props));
  writeEnvelope(buf, 0, msg, origin, props);
  return buf;
}

/**
 * Several envelopes as one NATS message (version 3): `u8 3 · (u32 length · envelope)*`. A node
 * sends what it routed for one topic in one event-loop turn as one batch, so NATS, JetStream and
 * nats.js pay their per-message cost (protocol line, subject, parse, ack) once per batch: a
 * flooding publisher's messages otherwise cost more in NATS than in the broker itself. The
 * messages of a batch share its subject, so NATS's interest matching is unchanged.
 */
export class EnvelopeBatch {
  readonly topic: string;
  #buf: Buffer;
  #len = 1;
  #count = 0;
  #qos2 = 0;

  constructor(topic: string, initialBytes = 1024) {
    this.topic = topic;
    this.#buf = Buffer.allocUnsafe(initialBytes);
    this.#buf[0] = BATCH_VERSION;
  }

  /** Messages in the batch, and how many of them are QoS 2 (metrics by QoS). */
  get count(): number {
    return this.#count;
  }

  get qos2Count(): number {
    return this.#qos2;
  }

  get byteLength(): number {
    return this.#len;
  }

  add(msg: Message, origin: string): void {
    const props = propertiesJson(msg);
    const size = envelopeSize(msg, origin, props);
    const need = this.#len + 4 + size;
    if (need > this.#buf.length) {
      const grown = Buffer.allocUnsafe(Math.max(need, this.#buf.length * 2));
      this.#buf.copy(grown, 0, 0, this.#len);
      this.#buf = grown;
    }
    this.#buf.writeUInt32BE(size, this.#len);
    writeEnvelope(this.#buf, this.#len + 4, msg, origin, props);
    this.#len = need;
    this.#count++;
    if (msg.qos === 2) this.#qos2++;
  }

  /** The bytes to send (a view: the batch is not used after this). */
  bytes(): Uint8Array {
    return this.#buf.subarray(0, this.#len);
  }
}

function propertiesJson(msg: Message): Buffer | null {
  const p = msg.properties;
  if (p === null) return null;
  const json =
    p.correlationData !== undefined
      ? { ...p, correlationData: Buffer.from(p.correlationData).toString('base64') }
      : p;
  return Buffer.from(JSON.stringify(json));
}

function envelopeSize(msg: Message, origin: string, props: Buffer | null): number {
  return (
    5 +
    origin.length +
    Buffer.byteLength(msg.topic) +
    (msg.publisherId === null ? 0 : 2 + Buffer.byteLength(msg.publisherId)) +
    (msg.expiresAt !== null ? 8 : 0) +
    (props !== null ? 4 + props.length : 0) +
    msg.payload.length
  );
}

function writeEnvelope(buf: Buffer, at: number, msg: Message, origin: string, props: Buffer | null): void {
  let flags = msg.qos & 3;
  if (msg.retain) flags |= F_RETAIN;
  if (props !== null) flags |= F_PROPS;
  if (msg.expiresAt !== null) flags |= F_EXPIRY;
  if (msg.publisherId !== null) flags |= F_PUBLISHER;
  buf[at] = VERSION;
  buf[at + 1] = flags;
  buf[at + 2] = origin.length;
  let o = at + 3 + buf.write(origin, at + 3, 'latin1');
  const topicLen = buf.write(msg.topic, o + 2);
  buf.writeUInt16BE(topicLen, o);
  o += 2 + topicLen;
  if (msg.publisherId !== null) {
    const n = buf.write(msg.publisherId, o + 2);
    buf.writeUInt16BE(n, o);
    o += 2 + n;
  }
  if (msg.expiresAt !== null) o = buf.writeDoubleBE(msg.expiresAt, o);
  if (props !== null) {
    o = buf.writeUInt32BE(props.length, o);
    o += props.copy(buf, o);
  }
  msg.payload.copy(buf, o);
}

/**
 * Every message in `data`, a single envelope or a batch, in order. `withOrigin`: fill in the node
 * that published each (the durable feed skips its own). Throws EnvelopeError on anything else.
 */
export function decodeEnvelopes(data: Uint8Array, withOrigin = false): Envelope[] {
  if (data.length > 0 && data[0] === BATCH_VERSION) {
    const buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    const out: Envelope[] = [];
    let o = 1;
    while (o < buf.length) {
      if (o + 4 > buf.length) throw new EnvelopeError('truncated batch');
      const n = buf.readUInt32BE(o);
      if (o + 4 + n > buf.length) throw new EnvelopeError('truncated batch');
      out.push(decode(buf.subarray(o + 4, o + 4 + n), withOrigin));
      o += 4 + n;
    }
    return out;
  }
  return [decode(data, withOrigin)];
}

export function decodeEnvelope(data: Uint8Array): Message {
  return decode(data, false).msg;
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
