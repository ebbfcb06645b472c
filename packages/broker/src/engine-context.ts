/**
 * What the engine's parts may ask of the broker, as narrow interfaces. Handlers, delivery and the
 * router are written against these, never against `Broker` (issue 12): a handler can be read —
 * and tested — knowing only what it may do (send, ack, route, persist), and imports point one
 * way: broker.ts → handlers/delivery/router → this module → data types (connection, session,
 * storage). `Broker` implements all of them.
 */
import type { Logger } from 'pino';
import type { Clock } from './clock.js';
import type { ClusterSeam } from './cluster-seam.js';
import type { Connection } from './connection.js';
import type { EngineCounters, ListenerMetrics } from './engine-counters.js';
import type { AdmissionGate } from './guard/admission/gate.js';
import type { BrokerMetrics } from './metrics.js';
import type { BrokerHooks, BrokerLimits } from './options.js';
import type { QueueDropReports } from './queue-drops.js';
import type { Message, Session, Subscription, Will } from './session.js';
import type { BrokerStorage, RetainedRecord } from './storage/types.js';
import type { RetainedIndex } from './topics/retained-index.js';

/** Writing to subscribers: the outbox, its persistence and the counters it bumps. */
export interface DeliveryContext {
  readonly clock: Clock;
  readonly counters: EngineCounters;
  readonly limits: Readonly<BrokerLimits>;
  readonly logger: Logger;
  readonly metrics: BrokerMetrics;
  readonly storage: BrokerStorage;
  /** Drops by full session queues: counted, and reported per session at a bounded rate. */
  readonly queueDrops: QueueDropReports;
  /** Set by every storage mutation; the PUBLISH handler resets and reads it. */
  storageDirty: boolean;
}

/** Fan-out of one message to the matching subscriptions; returns how many got it. */
export interface MessageRouting {
  route(msg: Message): number;
  /**
   * After `route()`: true when the message matched local subscriptions and every one of them
   * refused it (full queues), no in-process tap saw it, and no other node may take it (single
   * node). An MQTT 5 publisher then gets 0x97 Quota exceeded.
   */
  readonly refusedByAll: boolean;
}

export type AckCmd = 'puback' | 'pubrec' | 'pubrel' | 'pubcomp';

/** A CONNECT that passed validation, authentication and admission. */
export interface AcceptedConnect {
  clientId: string;
  assignedClientId: boolean;
  clean: boolean;
  /** Session Expiry Interval after capping, seconds. */
  expiryInterval: number;
  /** Whether the client asked for more than the cap (CONNACK then tells it the real value). */
  expiryCapped: boolean;
  keepalive: number;
  serverKeepAlive: boolean;
  will: Will | null;
  /** MQTT 5 Response Information for the CONNACK (the client asked, and one is configured). */
  responseInformation?: string;
  /** From the authenticate hook: MQTT 5 user properties for the CONNACK. */
  userProperties?: Record<string, string>;
}

/** Everything a packet handler may do. */
export interface HandlerContext extends DeliveryContext {
  readonly hooks: BrokerHooks | null;
  /** Connect admission (issue 3); null = admit every CONNECT. */
  readonly admission: AdmissionGate | null;
  readonly router: MessageRouting;
  readonly retained: RetainedIndex<RetainedRecord>;
  /** The cluster (issue 15); null on a single node. */
  readonly cluster: ClusterSeam | null;
  /**
   * Send PUBACK/PUBREC/PUBREL/PUBCOMP. With `needsFlush` the ack waits for the next storage
   * flush; later acks of the same connection queue behind it [MQTT-4.6.0-2..4].
   */
  sendAck(
    conn: Connection,
    cmd: AckCmd,
    id: number,
    rc: number,
    reasonString: string | undefined,
    needsFlush: boolean,
    qos: number,
  ): void;
  /** Take over or create the session, send CONNACK, resume deliveries. */
  acceptConnection(conn: Connection, a: AcceptedConnect): void;
  assignClientId(): string;
  listenerMetrics(listener: string): ListenerMetrics;
  setSessionExpiry(s: Session, expiry: number): void;
  storeRetained(msg: Message): void;
  deleteRetained(topic: string): void;
  addSubscription(s: Session, sub: Subscription, existed: boolean): void;
  removeSubscription(s: Session, filter: string): boolean;
}
