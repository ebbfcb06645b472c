/**
 * Outbound delivery (MQTT 5.0 §4.3, §4.4, §4.9): QoS 0 sent or dropped, QoS 1/2 through an
 * in-flight window of min(client Receive Maximum, limits.maxInflight) with the rest queued up to
 * limits.offlineQueueLimit messages and limits.offlineQueueBytes bytes (a full queue follows
 * limits.queueOverflow), redelivery with DUP on session resume, and the outbox in storage for
 * persistent sessions. With limits.queueQos0 an offline persistent session queues QoS 0 too.
 * Top-level functions with explicit arguments: no closure per message.
 */

import type { Connection } from './connection.js';
import type { DeliveryContext } from './engine-context.js';
import { queuedBytes } from './outbound-queue.js';
import { encode, encodePlainPublish, plainPublishAlias, plainPublishSize } from './protocol/codec.js';
import type { QueueDropReason } from './queue-drops.js';
import { ReasonCode } from './reason-codes.js';
import type { Message, Session } from './session.js';
import type { OutboxRecord, QoS, StoredPublishProperties } from './storage/types.js';

/** Fields shared by a live Message and a stored OutboxRecord. */
interface Deliverable {
  topic: string;
  payload: Buffer;
  properties: StoredPublishProperties | null;
  expiresAt: number | null;
}

function window(b: DeliveryContext, conn: Connection): number {
  const r = conn.clientReceiveMaximum;
  const m = b.limits.maxInflight;
  return Math.min(r, m);
}

/**
 * Deliver one message to one session with the subscription's QoS and flags. Returns false when
 * the session refused it: its queue was full (`limits.queueOverflow` drop-new or disconnect) or,
 * for QoS 0, its connection is congested. Not queueing QoS 0 for an offline session is not a
 * refusal (MQTT does not ask for it).
 */
export function deliver(
  b: DeliveryContext,
  s: Session,
  msg: Message,
  subQos: number,
  retain: boolean,
  subIds: number[] | null,
): boolean {
  const qos = Math.min(msg.qos, subQos) as QoS; // [MQTT-3.8.4-8] min(publish, granted)
  const conn = s.conn;
  if (qos === 0) {
    if (conn === null || !conn.connected) {
      // Offline QoS 0 is queued only on request (MQTT 5.0 §3.1.2.4 allows it either way), and
      // only for a session that outlives its connection.
      if (!b.limits.queueQos0 || !s.persistent || s.ended) return true;
      return enqueue(b, s, outboxRecord(s, msg, 0, retain, subIds));
    }
    if (conn.congested) {
      b.counters.drop('slow_consumer');
      return false;
    }
    if (subIds === null && msg.expiresAt === null && (conn.version !== 5 || msg.properties === null)) {
      sendSharedQos0(b, conn, msg, retain);
    } else {
      sendPublish(b, conn, msg, 0, retain, subIds, 0, false);
    }
    return true;
  }
  return deliverOutbox(b, s, outboxRecord(s, msg, qos, retain, subIds));
}

/**
 * Deliver one QoS 1/2 outbox record (made by `outboxRecord`): sent when the window has room,
 * queued otherwise. Returns false when the queue refused it. Split from `deliver` so a caller that
 * must follow the record (a cluster's shared-subscription handoff) holds it.
 */
export function deliverOutbox(b: DeliveryContext, s: Session, rec: OutboxRecord): boolean {
  const conn = s.conn;
  const qos = rec.qos;
  if (conn?.connected && s.queuedCount === 0 && s.inflightCount < window(b, conn)) {
    const id = s.allocatePacketId();
    if (id !== 0) {
      rec.packetId = id;
      rec.state = 'sent';
      if (s.stored) {
        b.storage.appendOutbox(s.clientId, rec);
        b.storageDirty = true;
      }
      s.inflightMap().set(id, rec);
      b.metrics.inflight.inc();
      if (!sendPublish(b, conn, rec, qos, rec.retain, rec.subscriptionIds, id, false))
        completeOutbound(b, s, id, rec);
      return true;
    }
  }
  return enqueue(b, s, rec);
}

/** Whether `deliver()` would accept the message now (shared groups pick a member with room). */
export function hasRoom(b: DeliveryContext, s: Session, msg: Message, subQos: number): boolean {
  const qos = Math.min(msg.qos, subQos);
  const conn = s.conn;
  if (qos === 0) {
    if (conn?.connected) return !conn.congested;
    if (!b.limits.queueQos0 || !s.persistent) return true;
  } else if (conn?.connected && s.queuedCount === 0 && s.inflightCount < window(b, conn)) {
    return true;
  }
  const size = msg.topic.length + msg.payload.length;
  const limits = b.limits;
  if (limits.queueOverflow === 'drop-oldest')
    return limits.offlineQueueLimit > 0 && size <= limits.offlineQueueBytes;
  const q = s.queue;
  return overLimit(b, q === null ? 0 : q.length, q === null ? 0 : q.bytes, size) === null;
}

/** The outbox record of one QoS 1/2 delivery of `msg` to `s`. */
export function outboxRecord(
  s: Session,
  msg: Message,
  qos: QoS,
  retain: boolean,
  subIds: number[] | null,
): OutboxRecord {
  return {
    seq: s.nextSeq++,
    qos,
    packetId: null,
    state: 'queued',
    topic: msg.topic,
    payload: msg.payload,
    retain,
    properties: msg.properties,
    subscriptionIds: subIds,
    expiresAt: msg.expiresAt,
  };
}

/** Which limit a queue holding `count` messages of `bytes` bytes breaks by taking `size` more. */
function overLimit(b: DeliveryContext, count: number, bytes: number, size: number): QueueDropReason | null {
  if (count >= b.limits.offlineQueueLimit) return 'queue_full';
  if (bytes + size > b.limits.offlineQueueBytes) return 'queue_bytes_full';
  return null;
}

/**
 * Append to the session's queue (and its outbox row) within both limits; a full queue follows
 * `limits.queueOverflow`. Returns false when the message was refused.
 */
function enqueue(b: DeliveryContext, s: Session, rec: OutboxRecord): boolean {
  const size = queuedBytes(rec);
  const q = s.queue;
  let reason = overLimit(b, q === null ? 0 : q.length, q === null ? 0 : q.bytes, size);
  if (reason !== null) {
    const limits = b.limits;
    // drop-oldest makes room unless nothing could: a zero-length queue, or one message larger
    // than the whole byte budget.
    if (
      limits.queueOverflow !== 'drop-oldest' ||
      limits.offlineQueueLimit === 0 ||
      size > limits.offlineQueueBytes
    ) {
      b.queueDrops.drop(s, reason, b.clock.now());
      if (limits.queueOverflow === 'disconnect') closeSlowConsumer(s.conn);
      return false;
    }
    const now = b.clock.now();
    while (reason !== null && q !== null && q.length > 0) {
      const old = q.shift()!;
      if (s.stored) {
        b.storage.deleteOutbox(s.clientId, old.seq);
        b.storageDirty = true;
      }
      b.queueDrops.drop(s, 'queue_evicted', now);
      reason = overLimit(b, q.length, q.bytes, size);
    }
  }
  if (s.stored) {
    b.storage.appendOutbox(s.clientId, rec);
    b.storageDirty = true;
  }
  s.outboundQueue().push(rec);
  return true;
}

/**
 * `queueOverflow: disconnect`: a connected consumer whose queue is full is closed (MQTT 5:
 * DISCONNECT 0x97 Quota exceeded). Not now: delivery runs inside routing, and a close can end a
 * clean session, change the subscription tree and publish a will.
 */
function closeSlowConsumer(conn: Connection | null): void {
  if (conn === null || !conn.connected || conn.overflowClosing) return;
  conn.overflowClosing = true;
  setImmediate(disconnectOverflowed, conn);
}

function disconnectOverflowed(conn: Connection): void {
  conn.broker.logger.warn({ clientId: conn.clientId }, 'slow consumer: message queue full, disconnecting');
  conn.disconnect(ReasonCode.QuotaExceeded, 'message queue full', 'queue_overflow');
}

/**
 * QoS 0 without per-subscriber fields: encoded once per (v5, retain) for all subscribers. A client
 * that takes Topic Aliases gets the aliased form, shared in the same way by every subscriber that
 * has the same alias for the topic (clients with the same subscriptions usually do).
 */
function sendSharedQos0(b: DeliveryContext, conn: Connection, msg: Message, retain: boolean): void {
  const aliases = conn.outboundAliases;
  const alias = aliases === null ? 0 : aliases.lookup(msg.topic);
  let cache = msg.encoded;
  if (cache === null) {
    cache = [undefined, undefined, undefined, undefined];
    msg.encoded = cache;
  }
  let buf: Buffer | undefined;
  if (alias === 0) {
    const v5 = conn.version === 5;
    const idx = (v5 ? 2 : 0) | (retain ? 1 : 0);
    buf = cache[idx];
    if (buf === undefined) {
      buf = encodePlainPublish(v5 ? 5 : 4, msg.topic, msg.payload, 0, retain, false, 0);
      cache[idx] = buf;
    }
  } else {
    buf = sharedAliasedQos0(cache, msg, retain, alias);
  }
  if (conn.clientMaxPacketSize > 0 && buf.length > conn.clientMaxPacketSize) {
    b.counters.drop('packet_too_large'); // [MQTT-3.1.2-24] [MQTT-3.1.2-25]
    return;
  }
  // The client learns a new mapping only from a packet it receives [MQTT-3.3.2-7].
  if (alias < 0) aliases!.assign(msg.topic, -alias);
  conn.send(buf);
  b.counters.msgOut[0]!++;
}

/**
 * Aliased QoS 0 encodings live in cache slots 4..7, `4 | (new mapping ? 2 : 0) | (retain ? 1 : 0)`,
 * and are reused while the next subscriber has the same alias value (read back from the bytes).
 */
function sharedAliasedQos0(
  cache: Array<Buffer | undefined>,
  msg: Message,
  retain: boolean,
  alias: number,
): Buffer {
  const known = alias > 0;
  const value = known ? alias : -alias;
  const idx = 4 | (known ? 0 : 2) | (retain ? 1 : 0);
  if (cache.length === 4) cache.push(undefined, undefined, undefined, undefined);
  let buf = cache[idx];
  if (buf === undefined || plainPublishAlias(buf) !== value) {
    // [MQTT-3.3.2-11] value ≤ min(client's Topic Alias Maximum, ours); empty topic once known.
    buf = encodePlainPublish(5, known ? '' : msg.topic, msg.payload, 0, retain, false, 0, value);
    cache[idx] = buf;
  }
  return buf;
}

/**
 * Encode and send one PUBLISH. Returns false when it was not sent (expired, or larger than the
 * client's Maximum Packet Size — dropped and counted).
 */
export function sendPublish(
  b: DeliveryContext,
  conn: Connection,
  m: Deliverable,
  qos: number,
  retain: boolean,
  subIds: number[] | null,
  packetId: number,
  dup: boolean,
): boolean {
  const v = conn.version;
  let buf: Buffer | null;
  let remainingSec = 0;
  if (m.expiresAt !== null) {
    const left = m.expiresAt - b.clock.now();
    if (left <= 0) {
      b.counters.drop('expired'); // [MQTT-3.3.2-5]
      return false;
    }
    remainingSec = Math.ceil(left / 1000);
  }
  // Topic Alias (v5 clients that take them): > 0 known to the client, < 0 a new mapping.
  const aliases = conn.outboundAliases;
  const alias = aliases === null ? 0 : aliases.lookup(m.topic);
  const aliasValue = alias < 0 ? -alias : alias;
  const topic = alias > 0 ? '' : m.topic;
  if (v === 5 && (m.properties !== null || subIds !== null || m.expiresAt !== null)) {
    const properties: Record<string, unknown> = m.properties === null ? {} : { ...m.properties };
    // [MQTT-3.3.2-6] The remaining lifetime is sent, not the original interval.
    if (m.expiresAt !== null) properties.messageExpiryInterval = remainingSec;
    // [MQTT-3.3.4-3] all matching Subscription Identifiers.
    if (subIds !== null) properties.subscriptionIdentifier = subIds.length === 1 ? subIds[0] : subIds;
    if (aliasValue !== 0) properties.topicAlias = aliasValue; // [MQTT-3.3.2-11]
    const packet = {
      cmd: 'publish',
      topic,
      payload: m.payload,
      qos,
      retain,
      dup,
      properties,
    } as Record<string, unknown>;
    if (qos > 0) packet.messageId = packetId;
    buf = encode(packet as never, 5);
    if (buf === null) {
      b.logger.error({ clientId: conn.clientId, topic: m.topic }, 'failed to encode PUBLISH');
      return false;
    }
  } else {
    if (
      conn.clientMaxPacketSize > 0 &&
      plainPublishSize(v, topic, m.payload.length, qos, aliasValue) > conn.clientMaxPacketSize
    ) {
      b.counters.drop('packet_too_large');
      return false;
    }
    buf = encodePlainPublish(v, topic, m.payload, qos, retain, dup, packetId, aliasValue);
  }
  if (conn.clientMaxPacketSize > 0 && buf.length > conn.clientMaxPacketSize) {
    // [MQTT-3.1.2-24] Never send a packet larger than the client's Maximum Packet Size; the
    // caller treats it as delivered [MQTT-3.1.2-25]. User Properties of a PUBLISH are application
    // data that must reach subscribers unaltered [MQTT-3.3.2-17]: they are never dropped to fit.
    b.counters.drop('packet_too_large');
    return false;
  }
  if (alias < 0) aliases!.assign(m.topic, aliasValue);
  conn.send(buf);
  b.counters.msgOut[qos]!++;
  return true;
}

/** An outbound QoS 1/2 flow ended (PUBACK, PUBCOMP, failed PUBREC, or dropped). */
export function completeOutbound(b: DeliveryContext, s: Session, id: number, rec: OutboxRecord): void {
  s.inflight!.delete(id);
  b.metrics.inflight.dec();
  if (s.stored) {
    b.storage.deleteOutbox(s.clientId, rec.seq);
    b.storageDirty = true;
  }
}

/**
 * Takes a message of a shared subscription back from a session whose client is away, for the
 * cluster to offer to another member (MQTT 5.0 §4.8.2 allows it once the connection is lost):
 * one still queued, or a QoS 1 PUBLISH sent and not acknowledged (the client may have it: at
 * least once). False when the session no longer holds it, or for a QoS 2 flow under way, which
 * stays with its client (exactly once).
 */
export function withdrawOutbound(b: DeliveryContext, s: Session, rec: OutboxRecord): boolean {
  if (rec.state === 'queued') {
    const q = s.queue;
    if (q === null || !q.remove(rec)) return false;
    if (q.length === 0) s.queue = null;
    if (s.stored) {
      b.storage.deleteOutbox(s.clientId, rec.seq);
      b.storageDirty = true;
    }
    return true;
  }
  if (rec.qos !== 1 || rec.packetId === null || s.inflight?.get(rec.packetId) !== rec) return false;
  completeOutbound(b, s, rec.packetId, rec);
  return true;
}

/** Move queued messages into the in-flight window while there is room. */
export function pump(b: DeliveryContext, s: Session): void {
  const conn = s.conn;
  const q = s.queue;
  if (conn === null || !conn.connected || q === null || q.length === 0) return;
  const w = window(b, conn);
  const items = q.items;
  let i = 0;
  while (i < items.length && s.inflightCount < w) {
    const rec = items[i++]!;
    if (rec.expiresAt !== null && rec.expiresAt <= b.clock.now()) {
      b.counters.drop('expired');
      if (s.stored) b.storage.deleteOutbox(s.clientId, rec.seq);
      continue;
    }
    if (rec.qos === 0) {
      // Queued while offline (limits.queueQos0): sent once, no packet id, no window.
      if (s.stored) b.storage.deleteOutbox(s.clientId, rec.seq);
      sendPublish(b, conn, rec, 0, rec.retain, rec.subscriptionIds, 0, false);
      continue;
    }
    const id = s.allocatePacketId();
    if (id === 0) {
      i--;
      break;
    }
    rec.packetId = id;
    rec.state = 'sent';
    s.inflightMap().set(id, rec);
    b.metrics.inflight.inc();
    if (s.stored) b.storage.updateOutbox(s.clientId, rec.seq, id, 'sent');
    if (!sendPublish(b, conn, rec, rec.qos, rec.retain, rec.subscriptionIds, id, false))
      completeOutbound(b, s, id, rec);
  }
  if (i > 0) q.removeFirst(i);
  if (q.length === 0) s.queue = null;
}

/**
 * Session resumed: resend every unacknowledged PUBLISH with DUP=1 and PUBREL for released ones,
 * in the original order [MQTT-4.4.0-1], then fill the window from the queue.
 */
export function resumeDeliveries(b: DeliveryContext, s: Session): void {
  const conn = s.conn;
  if (conn === null) return;
  const inflight = s.inflight;
  if (inflight !== null) {
    for (const [id, rec] of inflight) {
      if (rec.state === 'released') {
        conn.sendPacket({ cmd: 'pubrel', messageId: id }); // [MQTT-4.4.0-1]
      } else if (!sendPublish(b, conn, rec, rec.qos, rec.retain, rec.subscriptionIds, id, true)) {
        completeOutbound(b, s, id, rec);
      }
    }
  }
  pump(b, s);
}
