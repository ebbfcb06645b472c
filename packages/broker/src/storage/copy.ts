/**
 * Deep copies of storage records. The memory driver stores and returns copies so that a caller
 * mutating its object (or a payload Buffer) after a call cannot change stored state — the same
 * isolation the SQLite driver gets for free by serialising.
 *
 * Optional keys that are `undefined` are dropped rather than copied, so both drivers return the
 * same shape (a JSON round trip drops them too).
 */
import type {
  OutboxRecord,
  RetainedRecord,
  SessionRecord,
  StoredPublishProperties,
  SubscriptionRecord,
  WillRecord,
} from './types.js';

export function copyProperties(p: StoredPublishProperties | null): StoredPublishProperties | null {
  if (p === null) return null;
  const out: StoredPublishProperties = {};
  if (p.payloadFormatIndicator !== undefined) out.payloadFormatIndicator = p.payloadFormatIndicator;
  if (p.contentType !== undefined) out.contentType = p.contentType;
  if (p.responseTopic !== undefined) out.responseTopic = p.responseTopic;
  if (p.correlationData !== undefined) out.correlationData = Buffer.from(p.correlationData);
  if (p.userProperties !== undefined) {
    const up: Record<string, string | string[]> = {};
    for (const key of Object.keys(p.userProperties)) {
      const value = p.userProperties[key]!;
      up[key] = Array.isArray(value) ? value.slice() : value;
    }
    out.userProperties = up;
  }
  return out;
}

export function copySession(
  s: Omit<SessionRecord, 'subscriptions' | 'will'>,
): Omit<SessionRecord, 'subscriptions' | 'will'> {
  return {
    clientId: s.clientId,
    protocolVersion: s.protocolVersion,
    expiryInterval: s.expiryInterval,
    disconnectedAt: s.disconnectedAt,
  };
}

export function copySubscription(s: SubscriptionRecord): SubscriptionRecord {
  const out: SubscriptionRecord = {
    filter: s.filter,
    qos: s.qos,
    noLocal: s.noLocal,
    retainAsPublished: s.retainAsPublished,
    retainHandling: s.retainHandling,
  };
  if (s.subscriptionId !== undefined) out.subscriptionId = s.subscriptionId;
  return out;
}

export function copyOutbox(r: OutboxRecord): OutboxRecord {
  return {
    seq: r.seq,
    qos: r.qos,
    packetId: r.packetId,
    state: r.state,
    topic: r.topic,
    payload: Buffer.from(r.payload),
    retain: r.retain,
    properties: copyProperties(r.properties),
    subscriptionIds: r.subscriptionIds === null ? null : r.subscriptionIds.slice(),
    expiresAt: r.expiresAt,
  };
}

export function copyRetained(r: RetainedRecord): RetainedRecord {
  return {
    topic: r.topic,
    payload: Buffer.from(r.payload),
    qos: r.qos,
    properties: copyProperties(r.properties),
    expiresAt: r.expiresAt,
    publisherId: r.publisherId,
  };
}

export function copyWill(w: WillRecord): WillRecord {
  return {
    topic: w.topic,
    payload: Buffer.from(w.payload),
    qos: w.qos,
    retain: w.retain,
    properties: copyProperties(w.properties),
    delaySec: w.delaySec,
    expirySec: w.expirySec,
    dueAt: w.dueAt,
  };
}
