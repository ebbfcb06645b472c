/**
 * Incremental MQTT framer: finds packet boundaries (fixed header + variable-length Remaining Length,
 * MQTT 5.0 §2.1.4) in a byte stream and hands each complete packet to `sink.onFrame()`.
 *
 * Why not one mqtt-packet Parser per connection: a Parser (EventEmitter + BufferList + Packet) costs
 * about a kilobyte per idle connection; this framer keeps two fields on the connection and no
 * buffer at all between packets. The size limit is checked from the header, BEFORE the body is
 * buffered (undici's websocket receiver does the same), so an oversize packet never costs memory.
 */

/** What the framer needs from a connection. Kept as fields on the connection object itself. */
export interface FrameSink {
  /** Bytes of an incomplete header (≤ 5 bytes), or null. */
  headerPart: Buffer | null;
  /** Body of an incomplete packet, allocated at its final size once the header is known, or null. */
  bodyPart: Buffer | null;
  /** How many bytes of `bodyPart` are filled. */
  bodyFill: number;
  /** Largest accepted packet (fixed header included), bytes. */
  maxInboundPacketSize(): number;
  /** One complete packet; returns false to stop framing (connection closing or suspended). */
  onFrame(frame: Buffer): boolean;
  /** Framing stopped early: the unconsumed rest of the input. */
  onBacklog(rest: Buffer): void;
  onFrameError(kind: 'malformed' | 'too_large', size: number): void;
}

/** Feeds one chunk; calls back into the sink for every complete packet. */
export function feedFrames(sink: FrameSink, input: Buffer): void {
  let chunk = input;
  let off = 0;
  const body = sink.bodyPart;
  if (body !== null) {
    const need = body.length - sink.bodyFill;
    const n = Math.min(need, chunk.length);
    chunk.copy(body, sink.bodyFill, 0, n);
    sink.bodyFill += n;
    if (sink.bodyFill < body.length) return;
    sink.bodyPart = null;
    sink.bodyFill = 0;
    off = n;
    if (!sink.onFrame(body)) {
      if (off < chunk.length) sink.onBacklog(chunk.subarray(off));
      return;
    }
  } else if (sink.headerPart !== null) {
    chunk = Buffer.concat([sink.headerPart, chunk]);
    sink.headerPart = null;
  }
  const len = chunk.length;
  while (off < len) {
    // Remaining Length: 1..4 bytes, 7 bits each, high bit = continuation [MQTT-1.5.5-1].
    let remaining = 0;
    let mul = 1;
    let pos = off + 1;
    let complete = false;
    for (let i = 0; i < 4 && pos < len; i++) {
      const b = chunk[pos++]!;
      remaining += (b & 0x7f) * mul;
      mul *= 128;
      if ((b & 0x80) === 0) {
        complete = true;
        break;
      }
      if (i === 3) {
        sink.onFrameError('malformed', 0);
        return;
      }
    }
    if (!complete) {
      sink.headerPart = Buffer.from(chunk.subarray(off));
      return;
    }
    const total = pos - off + remaining;
    if (total > sink.maxInboundPacketSize()) {
      sink.onFrameError('too_large', total);
      return;
    }
    if (off + total <= len) {
      const frame = chunk.subarray(off, off + total);
      off += total;
      if (!sink.onFrame(frame)) {
        if (off < len) sink.onBacklog(chunk.subarray(off));
        return;
      }
    } else {
      const part = Buffer.allocUnsafe(total);
      chunk.copy(part, 0, off, len);
      sink.bodyPart = part;
      sink.bodyFill = len - off;
      return;
    }
  }
}

/** Offset of the variable header: 1 byte of type/flags + the Remaining Length bytes. */
export function headerLength(frame: Buffer): number {
  let pos = 1;
  while (pos < 5 && (frame[pos]! & 0x80) !== 0) pos++;
  return pos + 1;
}
