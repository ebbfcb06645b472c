/**
 * The broker's durable state, behind one interface with two drivers (memory, SQLite) that run
 * through one contract suite (test/storage/contract.ts).
 *
 * Write model: every mutation is a synchronous call that is *recorded*, not yet durable. The
 * driver commits all recorded mutations in one transaction per event-loop turn (group commit);
 * `flush()` resolves once everything recorded before the call is durable. The engine sends a
 * PUBACK/PUBREC for a QoS 1/2 publish only after the `flush()` that follows its routing resolves,
 * so an acknowledged message survives `kill -9` of the broker.
 *
 * Reads (`load*`) are only used at start-up and when an offline session comes back online.
 */

export type QoS = 0 | 1 | 2;

/** MQTT 5 PUBLISH properties that travel with a stored message (JSON-serialisable form). */
export interface StoredPublishProperties {
  payloadFormatIndicator?: boolean;
  contentType?: string;
  responseTopic?: string;
  /** base64 in storage drivers that need text; a Buffer in memory. */
  correlationData?: Buffer;
  userProperties?: Record<string, string | string[]>;
}

export interface SubscriptionRecord {
  /** The filter as the client sent it, including a `$share/{group}/` prefix. */
  filter: string;
  qos: QoS;
  noLocal: boolean;
  retainAsPublished: boolean;
  retainHandling: 0 | 1 | 2;
  subscriptionId?: number;
}

export interface SessionRecord {
  clientId: string;
  /** 3, 4 or 5 — the protocol level of the last CONNECT. */
  protocolVersion: number;
  /** Seconds; 0xffffffff never expires. */
  expiryInterval: number;
  /**
   * Epoch ms when the session went offline; null while it is online. After a crash, a session
   * still marked online is treated as disconnected at load time.
   */
  disconnectedAt: number | null;
  subscriptions: SubscriptionRecord[];
  /** The session's will, when one is armed or pending (see putWill); absent when it has none. */
  will?: WillRecord;
}

/**
 * The will of a stored session (MQTT 5.0 §3.1.2.5, §3.1.3.2), kept with it so that a broker
 * restart neither loses a pending delayed will nor forgets an armed one.
 */
export interface WillRecord {
  topic: string;
  payload: Buffer;
  qos: QoS;
  retain: boolean;
  properties: StoredPublishProperties | null;
  /** Will Delay Interval, seconds. */
  delaySec: number;
  /** Message Expiry Interval of the will, seconds, or null. */
  expirySec: number | null;
  /**
   * Epoch ms at which it is to be published (its connection ended); null while the connection is
   * up (armed: after a restart it counts as lost when the broker started).
   */
  dueAt: number | null;
}

export type OutboxState = 'queued' | 'sent' | 'released';

/**
 * One message queued for (or in flight to) one subscriber session: QoS 1 or 2, or QoS 0 queued
 * for an offline session (`mqtt.queueQos0`; always 'queued', never in flight).
 */
export interface OutboxRecord {
  /** Monotonic per session; delivery order. */
  seq: number;
  qos: QoS;
  /** Assigned when the message is first sent; null while queued. */
  packetId: number | null;
  /** queued: not sent yet; sent: PUBLISH sent, awaiting PUBACK/PUBREC; released: PUBREL sent. */
  state: OutboxState;
  topic: string;
  payload: Buffer;
  /** The RETAIN flag as it is to be delivered (after retain-as-published). */
  retain: boolean;
  properties: StoredPublishProperties | null;
  subscriptionIds: number[] | null;
  /** Epoch ms after which the message must not be delivered (message expiry interval); null = never. */
  expiresAt: number | null;
}

export interface RetainedRecord {
  topic: string;
  payload: Buffer;
  qos: QoS;
  properties: StoredPublishProperties | null;
  expiresAt: number | null;
  /** Who published it (for purge on revocation); null when unknown. */
  publisherId: string | null;
}

export interface BrokerStorage {
  /** Open files, create the schema. Called once before any other method. */
  open(): Promise<void>;

  loadSessions(): SessionRecord[];
  loadOutbox(clientId: string): OutboxRecord[];
  /** Packet ids of inbound QoS 2 publishes that were PUBREC'd but not yet released. */
  loadInboundQos2(clientId: string): number[];
  loadRetained(): RetainedRecord[];

  /** Insert or replace the session row (subscriptions are ignored here; see putSubscription). */
  putSession(session: Omit<SessionRecord, 'subscriptions' | 'will'>): void;
  /** Delete the session and everything that belongs to it (subscriptions, outbox, inbound QoS 2, will). */
  deleteSession(clientId: string): void;

  /** Insert or replace the will of a stored session; `loadSessions` returns it with the session. */
  putWill(clientId: string, will: WillRecord): void;
  deleteWill(clientId: string): void;

  putSubscription(clientId: string, sub: SubscriptionRecord): void;
  deleteSubscription(clientId: string, filter: string): void;

  appendOutbox(clientId: string, record: OutboxRecord): void;
  updateOutbox(clientId: string, seq: number, packetId: number | null, state: OutboxState): void;
  deleteOutbox(clientId: string, seq: number): void;

  addInboundQos2(clientId: string, packetId: number): void;
  deleteInboundQos2(clientId: string, packetId: number): void;

  putRetained(record: RetainedRecord): void;
  deleteRetained(topic: string): void;

  /** Resolves when every mutation recorded before this call is durable. */
  flush(): Promise<void>;
  /** Flush, then release files. */
  close(): Promise<void>;
}
