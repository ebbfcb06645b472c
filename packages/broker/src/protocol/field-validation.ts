/**
 * What mqtt-packet does not check, checked on the raw bytes of a packet it has already parsed:
 *
 * - every UTF-8 Encoded String is well-formed [MQTT-1.5.4-1] (3.1.1: [MQTT-1.5.3-1]): mqtt-packet
 *   decodes with `Buffer.toString('utf8')`, which silently turns ill-formed sequences into U+FFFD,
 *   so a SUBSCRIBE filter, a User Property or a Reason String with invalid bytes was accepted;
 * - no property but User Property appears twice (MQTT 5.0 §2.2.2.2), whatever its value;
 * - CONNECT: will QoS 3 [MQTT-3.1.2-14] and, in 3.1.1, a password without a user name
 *   [MQTT-3.1.2-22];
 * - Request Problem Information / Request Response Information are 0 or 1 (MQTT 5.0 §3.1.2.11.6-7:
 *   any other value is a Protocol Error); mqtt-packet turns the byte into a boolean.
 *
 * Found by the structure-aware fuzzer (issue 13). Only the packets mqtt-packet decodes come here
 * (CONNECT, SUBSCRIBE, UNSUBSCRIBE, DISCONNECT, acks and PUBLISH with properties), never the plain
 * PUBLISH hot path, whose topic the codec checks itself. The walk trusts the structure mqtt-packet
 * accepted and stops quietly at anything it does not expect.
 */
import { isUtf8 } from 'node:buffer';
import { headerLength } from './framer.js';

const STR = 1;
const BIN = 2;
const PAIR = 3;
const BYTE = 4;
const U16 = 5;
const U32 = 6;
const VBI = 7;

/** Value type per property identifier (MQTT 5.0 §2.2.2.2). */
const PROPERTY_TYPE = new Uint8Array(0x2b);
for (const id of [0x03, 0x08, 0x12, 0x15, 0x1a, 0x1c, 0x1f]) PROPERTY_TYPE[id] = STR;
for (const id of [0x09, 0x16]) PROPERTY_TYPE[id] = BIN;
PROPERTY_TYPE[0x26] = PAIR;
for (const id of [0x01, 0x17, 0x19, 0x24, 0x25, 0x28, 0x29, 0x2a]) PROPERTY_TYPE[id] = BYTE;
for (const id of [0x13, 0x21, 0x22, 0x23]) PROPERTY_TYPE[id] = U16;
for (const id of [0x02, 0x11, 0x18, 0x27]) PROPERTY_TYPE[id] = U32;
PROPERTY_TYPE[0x0b] = VBI;

/** The codec's DecodeFailure (declared here too: codec.ts imports this module). */
type DecodeFailure = { error: 'malformed' | 'protocol'; message: string };

const USER_PROPERTY = 0x26;
const REQUEST_PROBLEM_INFORMATION = 0x17;
const REQUEST_RESPONSE_INFORMATION = 0x19;

const ILL_FORMED: DecodeFailure = { error: 'malformed', message: 'ill-formed UTF-8 string' };

/** Cursor over a frame; `pos` = -1 once something unexpected was met (stop checking). */
class Walk {
  pos: number;
  failure: DecodeFailure | null = null;
  constructor(
    readonly frame: Buffer,
    pos: number,
  ) {
    this.pos = pos;
  }
  get done(): boolean {
    return this.pos < 0 || this.failure !== null || this.pos >= this.frame.length;
  }
  skip(n: number): void {
    if (this.pos < 0) return;
    this.pos = this.pos + n <= this.frame.length ? this.pos + n : -1;
  }
  u8(): number {
    if (this.pos < 0 || this.pos >= this.frame.length) {
      this.pos = -1;
      return 0;
    }
    return this.frame[this.pos++]!;
  }
  u16(): number {
    if (this.pos < 0 || this.pos + 2 > this.frame.length) {
      this.pos = -1;
      return 0;
    }
    const v = this.frame.readUInt16BE(this.pos);
    this.pos += 2;
    return v;
  }
  vbi(): number {
    let v = 0;
    let mul = 1;
    for (let i = 0; i < 4; i++) {
      const b = this.u8();
      if (this.pos < 0) return 0;
      v += (b & 0x7f) * mul;
      if ((b & 0x80) === 0) return v;
      mul *= 128;
    }
    this.pos = -1;
    return 0;
  }
  /** A UTF-8 Encoded String: length-prefixed, must be well-formed. */
  str(): void {
    const n = this.u16();
    if (this.pos < 0) return;
    if (this.pos + n > this.frame.length) {
      this.pos = -1;
      return;
    }
    if (!isUtf8(this.frame.subarray(this.pos, this.pos + n))) this.failure = ILL_FORMED;
    this.pos += n;
  }
  bin(): void {
    this.skip(this.u16());
  }
  properties(): void {
    const len = this.vbi();
    if (this.pos < 0) return;
    const end = this.pos + len;
    if (end > this.frame.length) {
      this.pos = -1;
      return;
    }
    // Ids seen, one bit each (ids 1..0x2a span two 32-bit words): a repeated property whose
    // value is falsy (0, false, '') is not even turned into an array by mqtt-packet.
    let seenLo = 0;
    let seenHi = 0;
    while (this.pos >= 0 && this.pos < end && this.failure === null) {
      const id = this.vbi();
      const type = id < PROPERTY_TYPE.length ? PROPERTY_TYPE[id]! : 0;
      if (type !== 0 && id !== USER_PROPERTY) {
        const bit = 1 << (id & 31);
        const seen = id < 32 ? seenLo : seenHi;
        if ((seen & bit) !== 0) {
          // MQTT 5.0 §2.2.2.2: only User Property may repeat (Subscription Identifier only from
          // the server); anything else more than once is a Protocol Error.
          this.failure = {
            error: 'protocol',
            message: `property 0x${id.toString(16)} included more than once`,
          };
          return;
        }
        if (id < 32) seenLo |= bit;
        else seenHi |= bit;
      }
      switch (type) {
        case STR:
          this.str();
          break;
        case BIN:
          this.bin();
          break;
        case PAIR:
          this.str();
          this.str();
          break;
        case BYTE: {
          const v = this.u8();
          if ((id === REQUEST_PROBLEM_INFORMATION || id === REQUEST_RESPONSE_INFORMATION) && v > 1) {
            this.failure = { error: 'protocol', message: `property 0x${id.toString(16)} must be 0 or 1` };
          }
          break;
        }
        case U16:
          this.skip(2);
          break;
        case U32:
          this.skip(4);
          break;
        case VBI:
          this.vbi();
          break;
        default:
          this.pos = -1; // mqtt-packet's decision stands
      }
    }
    if (this.pos >= 0 && this.pos !== end) this.pos = -1;
  }
}

/** Ill-formed strings or out-of-range byte properties in a packet mqtt-packet accepted; null if fine. */
export function checkFields(frame: Buffer, version: number): DecodeFailure | null {
  const type = frame[0]! >> 4;
  const w = new Walk(frame, headerLength(frame));
  const v5 = version === 5;
  switch (type) {
    case 1: {
      // CONNECT: the protocol level in the packet decides, not the connection's default.
      w.str();
      const level = w.u8();
      const flags = w.u8();
      if ((flags & 0x04) !== 0 && (flags & 0x18) === 0x18) {
        w.failure = { error: 'malformed', message: 'will QoS 3' }; // [MQTT-3.1.2-14]
        break;
      }
      if (level !== 5 && (flags & 0xc0) === 0x40) {
        // 3.1.1 only: MQTT 5 allows a password without a user name.
        w.failure = { error: 'malformed', message: 'password without user name' }; // [MQTT-3.1.2-22]
        break;
      }
      w.skip(2);
      if (level === 5) w.properties();
      w.str(); // client identifier
      if ((flags & 0x04) !== 0) {
        if (level === 5) w.properties();
        w.str(); // will topic
        w.bin(); // will payload
      }
      if ((flags & 0x80) !== 0) w.str(); // user name
      break;
    }
    case 3: {
      // PUBLISH (with properties: the plain one never comes here).
      w.str();
      if (((frame[0]! >> 1) & 3) > 0) w.skip(2);
      if (v5) w.properties();
      break;
    }
    case 8: // SUBSCRIBE
    case 10: {
      // UNSUBSCRIBE
      w.skip(2);
      if (v5) w.properties();
      while (!w.done) {
        w.str();
        if (type === 8) w.skip(1);
      }
      break;
    }
    case 4:
    case 5:
    case 6:
    case 7: {
      w.skip(2);
      if (v5 && !w.done) {
        w.skip(1);
        if (!w.done) w.properties();
      }
      break;
    }
    case 14:
    case 15: {
      if (v5 && !w.done) {
        w.skip(1);
        if (!w.done) w.properties();
      }
      break;
    }
  }
  return w.failure;
}
