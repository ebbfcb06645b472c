/**
 * The bytes messages travel in between nodes (issue 15): a small binary header, then the payload
 * as is. The topic travels in the envelope (the subject is for NATS's matching only), so a
 * receiver never decodes a subject.
 *
 * One message (version 2; retained entries in KV):
 *
 *   u8 version (2) · u8 flags · u8 origin length · origin node id (ASCII; empty for retained)
 *   u16 topic length · topic (UTF-8) · tail
 *
 * A batch (version 3): the messages one node routed for one topic in one event-loop turn. Topic
 * and origin are written once, so NATS, JetStream and nats.js pay their per-message cost
 * (protocol line, subject, parse, ack) and the envelope its string writes once per batch:
 *
 *   u8 version (3) · u8 origin length · origin · u16 topic length · topic
 *   then per message: u32 record length · u8 flags · tail
 *
 * flags: bits 0-1 QoS, 2 retain, 3 properties, 4 expiry, 5 publisher. tail:
 *   [u16 publisher length · publisher]   [f64 expiresAt epoch ms]
 *   [u32 properties length · properties JSON (correlationData as base64)]
 *   payload (the rest of the envelope or record)
 */
import type { Message, StoredPublishProperties } from '@breakwater/broker';

const VERSION = 2;
const BATCH_VERSION = 3;
const F_RETAIN = 4;
const F_PROPS = 8;
const F_EXPIRY = 16;
const F_PUBLISHER = 32;

export class EnvelopeError extends Error {}

export function encodeEnvelope(msg: Message, origin = ''): Uint8Array {
  const props = propertiesJson(msg);
  const topicLen = Buffer.byteLength(msg.topic);
  const buf = Buffer.allocUnsafe(5 + origin.length + topicLen + tailSize(msg, props));
  buf[0] = VERSION;
  buf[1] = flagsOf(msg, props);
  buf[2] = origin.length;
  let o = 3 + buf.write(origin, 3, 'latin1');
  o = buf.writeUInt16BE(topicLen, o);
  o += buf.write(msg.topic, o);
  writeTail(buf, o, msg, props);
  return buf;
}

/**
 * The messages one node routed for one topic in one event-loop turn, as one NATS message
 * (version 3). A flooding publisher's messages otherwise cost more in NATS than in the broker
 * itself; the messages of a batch share its subject, so NATS's interest matching is unchanged.
 */
export class EnvelopeBatch {
  readonly topic: string;
  #buf: Buffer;
  #len: number;
  #count = 0;
  #qos2 = 0;

  constructor(topic: string, origin: string, initialBytes = 2048) {
    this.topic = topic;
    const topicLen = Buffer.byteLength(topic);
    this.#buf = Buffer.allocUnsafe(Math.max(initialBytes, 4 + origin.length + topicLen));
    this.#buf[0] = BATCH_VERSION;
    this.#buf[1] = origin.length;
    let o = 2 + this.#buf.write(origin, 2, 'latin1');
    o = this.#buf.writeUInt16BE(topicLen, o);
    this.#len = o + this.#buf.write(topic, o);
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

  /** Adds `msg`, whose topic must be the batch's. */
  add(msg: Message): void {
    const props = msg.properties === null ? null : propertiesJson(msg);
    const size = 1 + tailSize(msg, props);
    const need = this.#len + 4 + size;
    if (need > this.#buf.length) {
      const grown = Buffer.allocUnsafe(Math.max(need, this.#buf.length * 2));
      this.#buf.copy(grown, 0, 0, this.#len);
      this.#buf = grown;
    }
    const buf = this.#buf;
    const o = this.#len;
    buf.writeUInt32BE(size, o);
    buf[o + 4] = flagsOf(msg, props);
    writeTail(buf, o + 5, msg, props);
    this.#len = need;
    this.#count++;
    if (msg.qos === 2) this.#qos2++;
  }

  /** The bytes to send (a view: the batch is not used after this). */
  bytes(): Uint8Array {
    return this.#buf.subarray(0, this.#len);
  }
}

export function decodeEnvelope(data: Uint8Array): Message {
  return decodeSingle(asBuffer(data));
}

/** Every message in `data`, a single envelope or a batch, in order. Throws EnvelopeError on anything else. */
export function decodeEnvelopes(data: Uint8Array): Message[] {
  const buf = asBuffer(data);
  if (buf.length === 0 || buf[0] !== BATCH_VERSION) return [decodeSingle(buf)];
  if (buf.length < 4) throw new EnvelopeError('truncated batch');
  let o = 2 + buf[1]!;
  if (o + 2 > buf.length) throw new EnvelopeError('truncated batch');
  const topicLen = buf.readUInt16BE(o);
  o += 2;
  if (o + topicLen > buf.length) throw new EnvelopeError('truncated batch');
  const topic = buf.toString('utf8', o, o + topicLen);
  o += topicLen;
  const out: Message[] = [];
  while (o < buf.length) {
    if (o + 5 > buf.length) throw new EnvelopeError('truncated batch');
    const end = o + 4 + buf.readUInt32BE(o);
    if (end > buf.length) throw new EnvelopeError('truncated batch');
    out.push(readTail(buf, o + 5, end, buf[o + 4]!, topic));
    o = end;
  }
  return out;
}

/**
 * How many messages `data` (a single envelope or a batch) holds, from the record lengths alone
 * (a batch dropped unread is still counted by message). 0 when `data` is not an envelope.
 */
export function envelopeCount(data: Uint8Array): number {
  const buf = asBuffer(data);
  if (buf[0] === VERSION) return 1;
  if (buf[0] !== BATCH_VERSION || buf.length < 4) return 0;
  let o = 2 + buf[1]!;
  if (o + 2 > buf.length) return 0;
  o += 2 + buf.readUInt16BE(o);
  let n = 0;
  while (o + 4 <= buf.length) {
    o += 4 + buf.readUInt32BE(o);
    n++;
  }
  return n;
}

/**
 * The node that published `data` (a single envelope or a batch: one origin for all of it), read
 * from the header alone, so a node can skip its own messages without decoding them. '' when
 * `data` is not an envelope.
 */
export function envelopeOrigin(data: Uint8Array): string {
  const buf = asBuffer(data);
  if (buf[0] === BATCH_VERSION && buf.length >= 2) return buf.toString('latin1', 2, 2 + buf[1]!);
  if (buf[0] === VERSION && buf.length >= 3) return buf.toString('latin1', 3, 3 + buf[2]!);
  return '';
}

function decodeSingle(buf: Buffer): Message {
  if (buf.length < 5 || buf[0] !== VERSION) throw new EnvelopeError('not a breakwater envelope');
  const flags = buf[1]!;
  let o = 3 + buf[2]!;
  if (o + 2 > buf.length) throw new EnvelopeError('truncated envelope');
  const topicLen = buf.readUInt16BE(o);
  o += 2;
  const topic = buf.toString('utf8', o, o + topicLen);
  return readTail(buf, o + topicLen, buf.length, flags, topic);
}

function asBuffer(data: Uint8Array): Buffer {
  return Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}

function flagsOf(msg: Message, props: Buffer | null): number {
  let flags = msg.qos & 3;
  if (msg.retain) flags |= F_RETAIN;
  if (props !== null) flags |= F_PROPS;
  if (msg.expiresAt !== null) flags |= F_EXPIRY;
  if (msg.publisherId !== null) flags |= F_PUBLISHER;
  return flags;
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

function tailSize(msg: Message, props: Buffer | null): number {
  return (
    (msg.publisherId === null ? 0 : 2 + Buffer.byteLength(msg.publisherId)) +
    (msg.expiresAt !== null ? 8 : 0) +
    (props !== null ? 4 + props.length : 0) +
    msg.payload.length
  );
}

function writeTail(buf: Buffer, at: number, msg: Message, props: Buffer | null): void {
  let o = at;
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

function readTail(buf: Buffer, at: number, end: number, flags: number, topic: string): Message {
  let o = at;
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
  if (o > end) throw new EnvelopeError('truncated envelope');
  return {
    topic,
    payload: buf.subarray(o, end),
    qos: (flags & 3) as 0 | 1 | 2,
    retain: (flags & F_RETAIN) !== 0,
    properties,
    expiresAt,
    publisherId,
    encoded: null,
  };
}
