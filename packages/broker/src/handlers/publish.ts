/**
 * Inbound PUBLISH (MQTT 5.0 §3.3, §4.3): validation, topic aliases, authorization, retained
 * store, routing, then the acknowledgement — sent only after the storage flush that follows the
 * routing when routing wrote anything durable, so an acked message survives kill -9.
 */
import { isUtf8 } from 'node:buffer';
import type mqtt from 'mqtt-packet';
import type { Connection } from '../connection.js';
import type { HandlerContext } from '../engine-context.js';
import type { PublishPacket } from '../protocol/codec.js';
import { ReasonCode } from '../reason-codes.js';
import type { Message } from '../session.js';
import type { StoredPublishProperties } from '../storage/types.js';
import { isValidTopicName } from '../topics/validate.js';

type PublishProps = mqtt.IPublishPacket['properties'];

/** The v5 properties that travel with a message to its subscribers [MQTT-3.3.2-?]. */
export function toStoredProperties(
  p: PublishProps | mqtt.IConnectPacket['properties'] | undefined,
): StoredPublishProperties | null {
  if (p === undefined) return null;
  const src = p as NonNullable<PublishProps>;
  const out: StoredPublishProperties = {};
  let any = false;
  if (src.payloadFormatIndicator !== undefined) {
    out.payloadFormatIndicator = src.payloadFormatIndicator;
    any = true;
  }
  if (src.contentType !== undefined) {
    out.contentType = src.contentType;
    any = true;
  }
  if (src.responseTopic !== undefined) {
    out.responseTopic = src.responseTopic;
    any = true;
  }
  if (src.correlationData !== undefined) {
    out.correlationData = Buffer.from(src.correlationData);
    any = true;
  }
  if (src.userProperties !== undefined) {
    out.userProperties = src.userProperties;
    any = true;
  }
  return any ? out : null;
}

export function handlePublish(b: HandlerContext, conn: Connection, p: PublishPacket): void {
  const qos = p.qos;
  b.counters.msgIn[qos]!++;
  let topic = p.topic;
  const props = p.properties;
  let properties: StoredPublishProperties | null = null;
  let expiresAt: number | null = null;
  if (props !== undefined) {
    const alias = props.topicAlias;
    if (alias !== undefined) {
      // [MQTT-3.3.2-8] alias 0 or above our Topic Alias Maximum → 0x94.
      if (alias === 0 || alias > b.limits.topicAliasMaximum) {
        conn.protocolError(ReasonCode.TopicAliasInvalid, `topic alias ${alias} out of range`);
        return;
      }
      if (topic === '') {
        const known = conn.inboundAliases?.get(alias);
        if (known === undefined) {
          conn.protocolError(ReasonCode.ProtocolError, `unknown topic alias ${alias}`);
          return;
        }
        topic = known;
      } else if (isValidTopicName(topic)) {
        if (conn.inboundAliases === null) conn.inboundAliases = new Map();
        conn.inboundAliases.set(alias, topic);
      }
    }
    if (props.subscriptionIdentifier !== undefined) {
      // [MQTT-3.3.4-6] A PUBLISH from a client MUST NOT contain a Subscription Identifier.
      conn.protocolError(ReasonCode.ProtocolError, 'Subscription Identifier in PUBLISH from a client');
      return;
    }
    if (props.responseTopic !== undefined && !isValidTopicName(props.responseTopic)) {
      // [MQTT-3.3.2-13] The Response Topic MUST be a valid Topic Name.
      conn.protocolError(ReasonCode.ProtocolError, 'Response Topic is not a valid topic name');
      return;
    }
    if (props.payloadFormatIndicator === true && !isUtf8(p.payload as Buffer)) {
      // MQTT 5.0 §3.3.2.3.2: the receiver may answer 0x99 Payload format invalid.
      b.counters.drop('payload_format_invalid');
      if (qos > 0) ackInvalid(b, conn, p, ReasonCode.PayloadFormatInvalid, 'payload is not valid UTF-8');
      return;
    }
    properties = toStoredProperties(props);
    const exp = props.messageExpiryInterval;
    if (exp !== undefined) expiresAt = b.clock.now() + exp * 1000;
  }
  if (!isValidTopicName(topic)) {
    // [MQTT-3.3.2-2] no wildcards in a Topic Name; [MQTT-4.7.3-1] at least one character.
    conn.protocolError(ReasonCode.TopicNameInvalid, `invalid topic name in PUBLISH`);
    return;
  }
  const session = conn.session!;
  const id = p.messageId ?? 0;
  if (qos > 0) {
    if (qos === 2 && session.inboundQos2 !== null && session.inboundQos2.has(id)) {
      // [MQTT-4.3.3-?] A resent QoS 2 PUBLISH already PUBREC'd is not routed again.
      b.sendAck(conn, 'pubrec', id, ReasonCode.Success, undefined, false, 2);
      return;
    }
    const q2 = session.inboundQos2;
    const carried = conn.carriedQos2;
    const inbound = conn.pendingQos1 + (q2 === null ? 0 : q2.size) - (carried === null ? 0 : carried.size);
    if (inbound >= b.limits.receiveMaximum) {
      // [MQTT-3.3.4-7] The client sent more unacknowledged QoS > 0 PUBLISHes than our Receive
      // Maximum: DISCONNECT 0x93 (MQTT 5.0 §3.3.4).
      conn.protocolError(ReasonCode.ReceiveMaximumExceeded, 'Receive Maximum exceeded');
      return;
    }
  }
  const authorize = b.hooks?.authorizePublish;
  if (authorize !== undefined && !authorize(session.clientId, topic)) {
    b.counters.drop('not_authorized');
    if (qos > 0) {
      if (conn.version === 5) ackInvalid(b, conn, p, ReasonCode.NotAuthorized, 'not authorized');
      // v3.1.1 has no negative ack: acknowledge so the client does not resend forever, do not route.
      else b.sendAck(conn, qos === 1 ? 'puback' : 'pubrec', id, 0, undefined, false, qos);
      if (qos === 2 && conn.version !== 5) session.inboundQos2Set().add(id);
    }
    return;
  }
  const payload = p.payload as Buffer;
  const msg: Message = {
    topic,
    // Stored or queued messages get their own copy; QoS 0 fan-out may reference the read chunk.
    payload: qos > 0 || p.retain ? Buffer.from(payload) : payload,
    qos,
    retain: p.retain,
    properties,
    expiresAt,
    publisherId: session.clientId,
    encoded: null,
  };
  b.storageDirty = false;
  if (p.retain) b.storeRetained(msg); // [MQTT-3.3.1-5]
  const delivered = b.router.route(msg);
  if (qos === 0) return;
  if (conn.version === 5 && b.router.refusedByAll && !p.retain) {
    // Every matching subscriber's queue was full (queueOverflow drop-new or disconnect): nothing
    // holds the message, so the publisher learns it instead of a success — 0x97 Quota exceeded is
    // a valid PUBACK/PUBREC reason (MQTT 5.0 §3.4.2.1, §3.5.2.1), and a PUBREC ≥ 0x80 ends the
    // QoS 2 flow [MQTT-4.3.3-?]. A retained message was stored, so it stays a success. MQTT 3.1.1
    // has no negative acknowledgement: those publishers get a PUBACK and the drop is only counted.
    ackInvalid(b, conn, p, ReasonCode.QuotaExceeded, 'subscriber queues full');
    return;
  }
  if (qos === 2) {
    session.inboundQos2Set().add(id);
    if (session.stored) {
      b.storage.addInboundQos2(session.clientId, id);
      b.storageDirty = true;
    }
  }
  // v5: 0x10 No matching subscribers is informative (still a success) [MQTT-3.4.2-?].
  const rc = conn.version === 5 && delivered === 0 ? ReasonCode.NoMatchingSubscribers : ReasonCode.Success;
  b.sendAck(conn, qos === 1 ? 'puback' : 'pubrec', id, rc, undefined, b.storageDirty, qos);
}

function ackInvalid(b: HandlerContext, conn: Connection, p: PublishPacket, rc: number, reason: string): void {
  b.sendAck(
    conn,
    p.qos === 1 ? 'puback' : 'pubrec',
    p.messageId ?? 0,
    conn.version === 5 ? rc : 0,
    reason,
    false,
    p.qos,
  );
}
