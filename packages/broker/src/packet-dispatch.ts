/**
 * The one dispatch switch: a complete packet from a connection's framer goes to its handler (one
 * module per packet type). PUBLISH is decoded by our own codec, the frequent tiny acks by hand,
 * the rest by mqtt-packet. Broker.dispatchFrame calls this; Connection knows nothing of handlers.
 */
import { type Connection, ConnState } from './connection.js';
import type { HandlerContext } from './engine-context.js';
import { handlePuback, handlePubcomp, handlePubrec, handlePubrel } from './handlers/acks.js';
import { handleConnect } from './handlers/connect.js';
import { handleDisconnect } from './handlers/disconnect.js';
import { handlePingreq } from './handlers/pingreq.js';
import { handlePublish } from './handlers/publish.js';
import { handleSubscribe } from './handlers/subscribe.js';
import { handleUnsubscribe } from './handlers/unsubscribe.js';
import { decodePublish, type Packet, PacketType, parseWithMqttPacket } from './protocol/codec.js';
import { headerLength } from './protocol/framer.js';
import { ReasonCode } from './reason-codes.js';

/** One complete packet from the framer. The one dispatch switch. */
export function dispatchFrame(b: HandlerContext, conn: Connection, frame: Buffer): boolean {
  const type = frame[0]! >> 4;
  if (conn.state === ConnState.AwaitConnect) {
    if (type !== PacketType.CONNECT) {
      // [MQTT-3.1.0-1] The first packet from the client MUST be CONNECT.
      conn.protocolError(ReasonCode.ProtocolError, 'first packet is not CONNECT');
      return false;
    }
    handleConnect(b, conn, frame);
    return !conn.suspended && (conn.state as number) !== ConnState.Closed;
  }
  const v = conn.version;
  switch (type) {
    case PacketType.PUBLISH: {
      const p = decodePublish(frame, v);
      if ('error' in p) conn.decodeFailed(p);
      else handlePublish(b, conn, p);
      break;
    }
    case PacketType.PUBACK:
    case PacketType.PUBREC:
    case PacketType.PUBREL:
    case PacketType.PUBCOMP:
      dispatchAck(b, conn, type, frame);
      break;
    case PacketType.SUBSCRIBE: {
      const p = parseWithMqttPacket(frame, v);
      if ('error' in p) conn.decodeFailed(p);
      else if (p.messageId === 0)
        conn.protocolError(ReasonCode.ProtocolError, 'packet identifier 0'); // [MQTT-2.2.1-3]
      else handleSubscribe(b, conn, p as Packet & { cmd: 'subscribe' });
      break;
    }
    case PacketType.UNSUBSCRIBE: {
      const p = parseWithMqttPacket(frame, v);
      if ('error' in p) conn.decodeFailed(p);
      else if (p.messageId === 0)
        conn.protocolError(ReasonCode.ProtocolError, 'packet identifier 0'); // [MQTT-2.2.1-3]
      else handleUnsubscribe(b, conn, p as Packet & { cmd: 'unsubscribe' });
      break;
    }
    case PacketType.PINGREQ:
      if (frame[0] !== 0xc0 || frame.length !== 2)
        conn.protocolError(ReasonCode.MalformedPacket, 'invalid PINGREQ');
      else handlePingreq(conn);
      break;
    case PacketType.DISCONNECT: {
      const p = parseWithMqttPacket(frame, v);
      if ('error' in p) conn.decodeFailed(p);
      else handleDisconnect(b, conn, p as Packet & { cmd: 'disconnect' });
      break;
    }
    case PacketType.CONNECT:
      // [MQTT-3.1.0-2] A second CONNECT is a protocol violation.
      conn.protocolError(ReasonCode.ProtocolError, 'second CONNECT');
      break;
    case PacketType.AUTH:
      // No enhanced authentication is offered (CONNACK refuses any Authentication Method), so an
      // AUTH packet can only be a protocol error [MQTT-4.12.0-1].
      conn.protocolError(v === 5 ? ReasonCode.ProtocolError : ReasonCode.MalformedPacket, 'unexpected AUTH');
      break;
    default:
      // Server-to-client packet types (CONNACK, SUBACK, UNSUBACK, PINGRESP) and reserved type 0.
      conn.protocolError(ReasonCode.MalformedPacket, `unexpected packet type ${type}`);
  }
  return conn.state !== ConnState.Closed && !conn.suspended;
}

/** A v5 ack with properties or a long Remaining Length: decoded by mqtt-packet; false when closed. */
function validAck(conn: Connection, frame: Buffer): boolean {
  const p = parseWithMqttPacket(frame, 5);
  if ('error' in p) {
    conn.decodeFailed(p);
    return false;
  }
  return true;
}

/** PUBACK/PUBREC/PUBREL/PUBCOMP decoded by hand: they are frequent and tiny. */
function dispatchAck(b: HandlerContext, conn: Connection, type: number, frame: Buffer): void {
  // [MQTT-3.6.1-1] PUBREL flags are 0010; the others 0000 [MQTT-2.2.2-2].
  const flags = frame[0]! & 0x0f;
  if (flags !== (type === PacketType.PUBREL ? 2 : 0)) {
    conn.protocolError(ReasonCode.MalformedPacket, 'invalid fixed header flags');
    return;
  }
  // The framer checked the Remaining Length; `frame.length - 2` is it when it fits one byte.
  const remaining = frame.length - 2;
  if (frame[1]! !== remaining || remaining < 2 || (conn.version < 5 && remaining !== 2)) {
    // A v5 ack whose properties push it past 127 bytes, or one with an overlong length: let
    // mqtt-packet judge it (its id is then read at offset 2 + length bytes). Rare, never the hot path.
    if (conn.version === 5 && remaining >= 2 && !validAck(conn, frame)) return;
    if (conn.version < 5 || frame.length < 4) {
      conn.protocolError(ReasonCode.MalformedPacket, 'invalid acknowledgement length');
      return;
    }
  } else if (remaining > 3 && !validAck(conn, frame)) {
    // v5 ack with properties: validated (property table, UTF-8 of the reason string).
    return;
  }
  const at = headerLength(frame);
  const id = frame.readUInt16BE(at);
  const rc = conn.version === 5 && frame.length > at + 2 ? frame[at + 2]! : 0;
  if (id === 0) {
    conn.protocolError(ReasonCode.ProtocolError, 'packet identifier 0');
    return;
  }
  if (type === PacketType.PUBACK) handlePuback(b, conn, id);
  else if (type === PacketType.PUBREC) handlePubrec(b, conn, id, rc);
  else if (type === PacketType.PUBREL) handlePubrel(b, conn, id);
  else handlePubcomp(b, conn, id);
}
