/**
 * Session state (MQTT 5.0 §4.1): subscriptions, outbound QoS 1/2 messages (in flight and queued),
 * inbound QoS 2 packet ids, the will and the expiry clock. A session outlives its connection when
 * its expiry interval is > 0; only such sessions are written to storage.
 *
 * Memory discipline: every collection is allocated lazily, so an idle connected client with no
 * subscriptions costs one small object here.
 */
import type { Connection } from './connection.js';
import { OutboundQueue } from './outbound-queue.js';
import type { OutboxRecord, QoS, StoredPublishProperties, SubscriptionRecord } from './storage/types.js';

/** An application message as it travels through the broker. */
export interface Message {
  topic: string;
  payload: Buffer;
  qos: QoS;
  retain: boolean;
  /** v5 properties passed through to subscribers (no alias, no subscription id, no expiry). */
  properties: StoredPublishProperties | null;
  /** Epoch ms after which the message must not be delivered; null = never (MQTT 5.0 §3.3.2.3.3). */
  expiresAt: number | null;
  /** Client id of the publisher (no-local, retained purge); null for server-originated messages. */
  publisherId: string | null;
  /**
   * QoS 0 encodings shared by every subscriber that needs no per-subscriber field, indexed
   * `(v5 ? 2 : 0) | (retain ? 1 : 0)`; slots 4..7 hold Topic Alias forms (delivery.ts). Null until
   * the first QoS 0 delivery.
   */
  encoded: Array<Buffer | undefined> | null;
}

export interface Subscription extends SubscriptionRecord {
  session: Session;
  /** Share group name for `$share/{group}/{filter}`, else null. */
  shareGroup: string | null;
  /** The filter without the `$share/{group}/` prefix. */
  topicFilter: string;
}

export interface Will {
  topic: string;
  payload: Buffer;
  qos: QoS;
  retain: boolean;
  properties: StoredPublishProperties | null;
  /** Seconds (MQTT 5 Will Delay Interval). */
  delaySec: number;
  /** Message Expiry Interval of the will, seconds, or null. */
  expirySec: number | null;
}

export const NEVER_EXPIRES = 0xffffffff;

const S_STORED = 1;
const S_ENDED = 2;
const S_ROUTE_RETAIN = 4;

export class Session {
  readonly clientId: string;
  protocolVersion: number;
  /** Session Expiry Interval, seconds (0: ends with the connection). */
  expiryInterval: number;
  conn: Connection | null = null;
  subscriptions: Map<string, Subscription> | null = null;
  /** Outbound QoS 1/2 messages sent and not completed, by packet id, in send order. */
  inflight: Map<number, OutboxRecord> | null = null;
  /**
   * Outbound messages waiting for the in-flight window or for the client to return: QoS 1/2, and
   * QoS 0 for an offline session with `mqtt.queueQos0`.
   */
  queue: OutboundQueue | null = null;
  /** Inbound QoS 2 packet ids PUBREC'd and not yet released [MQTT-4.3.3-?]. */
  inboundQos2: Set<number> | null = null;
  will: Will | null = null;
  /** Epoch ms at which a delayed will is due; 0 = none pending. */
  willAt = 0;
  /** Epoch ms when the session went offline; null while online. */
  disconnectedAt: number | null = null;
  nextPacketId = 1;
  nextSeq = 1;
  /** Cluster ownership epoch of this node's copy (issue 15); 0 on a single node. */
  clusterEpoch = 0;

  // Router scratch space: dedupes one client's overlapping subscriptions per routed message
  // without allocating (MQTT 5.0 §3.3.4: one delivery, max QoS, all subscription identifiers).
  routeStamp = 0;
  routeQos = 0;
  routeSubIds: number[] | null = null;
  /** Booleans, one bit each (S_*), to keep an idle session small. */
  #flags = 0;

  constructor(clientId: string, protocolVersion: number, expiryInterval: number) {
    this.clientId = clientId;
    this.protocolVersion = protocolVersion;
    this.expiryInterval = expiryInterval;
  }

  /** Whether this session is in storage (expiry > 0 when it was last written). */
  get stored(): boolean {
    return (this.#flags & S_STORED) !== 0;
  }
  set stored(on: boolean) {
    this.#flags = on ? this.#flags | S_STORED : this.#flags & ~S_STORED;
  }
  /** Set when the session was discarded (clean start, expiry, takeover with clean start). */
  get ended(): boolean {
    return (this.#flags & S_ENDED) !== 0;
  }
  set ended(on: boolean) {
    this.#flags = on ? this.#flags | S_ENDED : this.#flags & ~S_ENDED;
  }
  /** Router scratch: RETAIN flag of the current routed message for this session. */
  get routeRetain(): boolean {
    return (this.#flags & S_ROUTE_RETAIN) !== 0;
  }
  set routeRetain(on: boolean) {
    this.#flags = on ? this.#flags | S_ROUTE_RETAIN : this.#flags & ~S_ROUTE_RETAIN;
  }

  get persistent(): boolean {
    return this.expiryInterval > 0;
  }

  /** Epoch ms at which an offline session expires; Infinity when it never does or is online. */
  expiresAt(): number {
    if (this.disconnectedAt === null || this.expiryInterval === NEVER_EXPIRES)
      return Number.POSITIVE_INFINITY;
    return this.disconnectedAt + this.expiryInterval * 1000;
  }

  /** Next free packet id, skipping ids still in flight [MQTT-2.2.1-4]. 0 when all 65535 are in use. */
  allocatePacketId(): number {
    const inflight = this.inflight;
    for (let i = 0; i < 65535; i++) {
      const id = this.nextPacketId;
      this.nextPacketId = id === 65535 ? 1 : id + 1;
      if (inflight === null || !inflight.has(id)) return id;
    }
    return 0;
  }

  /** The in-flight map, allocated on first use. */
  inflightMap(): Map<number, OutboxRecord> {
    if (this.inflight === null) this.inflight = new Map();
    return this.inflight;
  }

  /** The queue, allocated on first use. */
  outboundQueue(): OutboundQueue {
    if (this.queue === null) this.queue = new OutboundQueue();
    return this.queue;
  }

  subscriptionMap(): Map<string, Subscription> {
    if (this.subscriptions === null) this.subscriptions = new Map();
    return this.subscriptions;
  }

  inboundQos2Set(): Set<number> {
    if (this.inboundQos2 === null) this.inboundQos2 = new Set();
    return this.inboundQos2;
  }

  get queuedCount(): number {
    return this.queue === null ? 0 : this.queue.length;
  }

  get inflightCount(): number {
    return this.inflight === null ? 0 : this.inflight.size;
  }
}
