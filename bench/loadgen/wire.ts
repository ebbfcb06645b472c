/**
 * The load generator's view of the wire. Control packets (CONNECT, SUBSCRIBE) and the PUBLISH
 * template come from mqtt-packet; the flood path does not parse with it: a PUBLISH is the template
 * copied with a packet id and timestamp patched in, and incoming bytes are cut into frames by the
 * fixed header alone (FrameScanner). Decoding every delivered message with a general parser would
 * make the load generator, not the broker, the bottleneck on a 2-core machine.
 */
import mqtt from 'mqtt-packet';

/** MQTT 3.1.1 everywhere, so all three brokers run the same protocol path. */
const PROTOCOL_VERSION = 4;

export const PacketType = {
  Connack: 2,
  Publish: 3,
  Puback: 4,
  Suback: 9,
  Pingresp: 13,
} as const;

export function connectPacket(clientId: string, keepalive: number): Buffer {
  return mqtt.generate({
    cmd: 'connect',
    protocolId: 'MQTT',
    protocolVersion: PROTOCOL_VERSION,
    clean: true,
    clientId,
    keepalive,
  });
}

export function subscribePacket(messageId: number, filter: string, qos: 0 | 1): Buffer {
  return mqtt.generate({ cmd: 'subscribe', messageId, subscriptions: [{ topic: filter, qos }] });
}

export function disconnectPacket(): Buffer {
  return mqtt.generate({ cmd: 'disconnect' });
}

/**
 * A PUBLISH laid out once; `write()` stamps copies into a batch buffer. The payload's first 8 bytes
 * carry the send time (process.hrtime.bigint(), CLOCK_MONOTONIC, comparable across processes on
 * one host); the rest is filler.
 */
export class PublishTemplate {
  readonly bytes: Buffer;
  readonly length: number;
  /** Offset of the 2-byte packet id, or -1 for QoS 0. */
  readonly packetIdOffset: number;
  readonly timestampOffset: number;

  constructor(topic: string, qos: 0 | 1, payloadSize: number) {
    const payload = Buffer.alloc(payloadSize, 0x61);
    this.bytes = mqtt.generate({
      cmd: 'publish',
      topic,
      qos,
      ...(qos > 0 ? { messageId: 1 } : {}),
      payload,
      retain: false,
      dup: false,
    });
    this.length = this.bytes.length;
    this.timestampOffset = this.length - payloadSize;
    this.packetIdOffset = qos > 0 ? this.timestampOffset - 2 : -1;
  }

  /** Writes one PUBLISH at `offset` of `target`. */
  write(target: Buffer, offset: number, packetId: number, timestamp: bigint): void {
    this.bytes.copy(target, offset);
    if (this.packetIdOffset >= 0) target.writeUInt16BE(packetId, offset + this.packetIdOffset);
    target.writeBigUInt64BE(timestamp, offset + this.timestampOffset);
  }
}

export interface FrameHandler {
  /** One complete packet: `buf[start]` is the fixed header byte, `buf[bodyStart..end)` the rest. */
  onFrame(type: number, flags: number, buf: Buffer, bodyStart: number, end: number): void;
}

/**
 * Cuts a byte stream into MQTT frames using the fixed header (type nibble + remaining-length
 * varint). Partial frames are kept until the rest arrives.
 */
export class FrameScanner {
  #pending: Buffer | null = null;
  readonly #handler: FrameHandler;

  constructor(handler: FrameHandler) {
    this.#handler = handler;
  }

  feed(chunk: Buffer): void {
    let buf = chunk;
    if (this.#pending !== null) {
      buf = Buffer.concat([this.#pending, chunk]);
      this.#pending = null;
    }
    const n = buf.length;
    let pos = 0;
    while (pos < n) {
      if (pos + 2 > n) break;
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
      this.#handler.onFrame(header >> 4, header & 0x0f, buf, i, i + len);
      pos = i + len;
    }
    if (pos < n) this.#pending = buf.subarray(pos);
  }
}
