import type { Logger } from 'pino';
import type { Clock } from './clock.js';
import type { AdmissionGate } from './guard/admission/gate.js';
import type { BrokerMetrics } from './metrics.js';
import type { BrokerStorage } from './storage/types.js';

/**
 * What a session's full queue does with one more message (config `mqtt.queueOverflow`):
 * - `drop-new`: the new message is refused (MQTT 5 publishers whose QoS 1/2 message no
 *   subscriber took get PUBACK/PUBREC 0x97 Quota exceeded);
 * - `drop-oldest`: the oldest queued message is evicted to make room;
 * - `disconnect`: the new message is refused and a connected consumer is closed (MQTT 5:
 *   DISCONNECT 0x97); its persistent session keeps the queue.
 */
export type QueueOverflowPolicy = 'drop-new' | 'drop-oldest' | 'disconnect';

/** Per-broker protocol limits. Every one is configurable (config key `mqtt.<name>`). */
export interface BrokerLimits {
  /** A socket that sends no CONNECT within this time is destroyed (DESIGN.md §3). */
  connectTimeoutMs: number;
  /** Keepalive enforced at this multiple of the client's keepalive [MQTT-3.1.2-22]. */
  keepaliveFactor: number;
  /** MQTT 5 Server Keep Alive: the broker caps the client's keepalive to this many seconds (0 = no cap). */
  maxKeepaliveSec: number;
  /** Maximum packet size the broker accepts, bytes (sent to v5 clients in CONNACK). */
  maxPacketSize: number;
  /** Receive Maximum the broker announces: inbound QoS 1/2 publishes in flight per client. */
  receiveMaximum: number;
  /** Outbound in-flight cap per session, in addition to the client's Receive Maximum. */
  maxInflight: number;
  /**
   * Messages a session may hold waiting to be sent (offline, or beyond the in-flight window);
   * beyond it `queueOverflow` decides (queue.ts).
   */
  offlineQueueLimit: number;
  /** The same queue in bytes (topic + payload of each queued message). */
  offlineQueueBytes: number;
  /** What a full queue does with the next message: see `QueueOverflowPolicy`. */
  queueOverflow: QueueOverflowPolicy;
  /** Queue QoS 0 messages for offline persistent sessions too (MQTT 5.0 §4.1 allows it). */
  queueQos0: boolean;
  /** Upper bound on a client's Session Expiry Interval, seconds. */
  maxSessionExpirySec: number;
  /** Topic Alias Maximum the broker announces (client → broker aliases). */
  topicAliasMaximum: number;
  /**
   * Broker → client Topic Aliases per connection: at most this many (and at most the client's
   * own Topic Alias Maximum), least recently used replaced first. 0 = never send aliases.
   */
  outboundTopicAliasMaximum: number;
  /** Topics shorter than this many characters are sent without an alias (1 = alias every topic). */
  outboundTopicAliasMinLength: number;
  /**
   * MQTT 5 Response Information sent in CONNACK to a client that asks for it (Request Response
   * Information = 1): the prefix for its response topics, `{clientId}` substituted. '' = never.
   */
  responseInformation: string;
  /** A connection whose socket stays unwritable (backpressure) this long is cut as a slow consumer. */
  drainTimeoutMs: number;
  /** Longest client id accepted. */
  maxClientIdLength: number;
  /**
   * Per event-loop turn, the broker frames client input for at most this long, ms; clients beyond
   * it wait for the next turn (TCP pushes back on them). In a cluster, QoS 0 from other nodes is
   * routed for at most this long per turn too, the rest dropped and counted (`cluster_overload`).
   * Keeps turns short under overload, so subscribers' sockets, the NATS connection, timers and
   * /metrics are serviced (intake-budget.ts). 0 = no limit; null = 10 in a cluster, no limit on a
   * single node (where it would cost throughput: the paused readers' stop/start, and nothing needs
   * the turn back as urgently as a cluster's NATS connection does).
   */
  intakeBudgetMs: number | null;
}

export const defaultLimits: Readonly<BrokerLimits> = Object.freeze({
  connectTimeoutMs: 10_000,
  keepaliveFactor: 1.5,
  maxKeepaliveSec: 0,
  maxPacketSize: 1024 * 1024,
  receiveMaximum: 1024,
  maxInflight: 1024,
  offlineQueueLimit: 1000,
  offlineQueueBytes: 16 * 1024 * 1024,
  queueOverflow: 'drop-new',
  queueQos0: false,
  maxSessionExpirySec: 7 * 24 * 3600,
  topicAliasMaximum: 64,
  outboundTopicAliasMaximum: 64,
  outboundTopicAliasMinLength: 8,
  responseInformation: '$response/{clientId}/',
  drainTimeoutMs: 30_000,
  intakeBudgetMs: null,
  maxClientIdLength: 256,
});

/** What a transport knows about the peer of a stream handed to `broker.handle()`. */
export interface ConnectionInfo {
  /** Listener name, used as the `listener` metric label. */
  listener: string;
  transport: 'tcp' | 'tls' | 'ws' | 'wss' | 'memory';
  remoteAddress?: string;
  remotePort?: number;
  /** DER/PEM-derived peer certificate for mTLS (set by the TLS adapters). */
  peerCertificate?: unknown;
}

/** The CONNECT as the guard sees it. */
export interface ConnectRequest {
  clientId: string;
  username?: string;
  password?: Buffer;
  protocolVersion: number;
  keepalive: number;
  clean: boolean;
  info: ConnectionInfo;
}

export type ConnectDecision =
  | {
      ok: true;
      /** Identity used for authorization; defaults to the client id. */
      identity?: string;
      /**
       * Epoch ms at which the credentials stop being valid (JWT `exp`). The broker's 1 s sweep
       * then ends the connection: MQTT 5 DISCONNECT 0xA0 Maximum Connect Time ("the maximum
       * connection time authorized for this connection has been exceeded", MQTT 5.0 §3.14.2.1 —
       * closer to an expired token than 0x87 Not Authorized, and not counted as an authentication
       * failure by clients such as the device SDK's auth breaker); MQTT 3.1.1: the socket closes.
       */
      expiresAt?: number;
      /** MQTT 5 user properties for the CONNACK (ignored for 3.1.1). */
      userProperties?: Record<string, string>;
    }
  | {
      ok: false;
      reasonCode: number;
      reasonString: string;
      /** MQTT 5 user properties for the CONNACK, e.g. `retry-after-ms` (DESIGN.md §3). */
      userProperties?: Record<string, string>;
      /**
       * MQTT 5 Server Reference (§4.11): sent with 0x9C Use Another Server / 0x9D Server Moved so
       * the client connects elsewhere (node drain and redirect, DESIGN.md §3).
       */
      serverReference?: string;
    };

/** What hooks may do to the broker (set through `BrokerHooks.attach`). */
export interface BrokerControl {
  /** See `Broker.disconnectClient`. */
  disconnectClient(
    clientId: string,
    reasonCode: number,
    reasonString?: string,
    options?: { serverReference?: string },
  ): boolean;
  /**
   * Removes the client's subscriptions that `keep` refuses (authorization rules changed, issue
   * 13); returns how many. MQTT has no packet to tell the client: it simply stops receiving.
   */
  dropSubscriptions?(clientId: string, keep: (filter: string) => boolean): number;
}

/**
 * Seams for the guard (issue 3): admission, authentication and authorization plug in here.
 * Without hooks the broker admits every well-formed CONNECT and authorizes everything.
 * `authenticate`, `authorizePublish` and `authorizeSubscribe` are read once and called as plain
 * functions (no `this`): a class implementing them must bind them (as Guard does).
 */
export interface BrokerHooks {
  authenticate?(request: ConnectRequest): ConnectDecision | Promise<ConnectDecision>;
  authorizePublish?(clientId: string, topic: string): boolean;
  authorizeSubscribe?(clientId: string, filter: string): boolean;
  /**
   * Cheap and synchronous: whether `authenticate` can decide this CONNECT without a backend call
   * (JWT, mTLS, password file, cache hit). Admission lets such clients in first after an outage.
   */
  verifiesLocally?(request: ConnectRequest): boolean;
  /** A connection that `authenticate` admitted has ended (once per admitted connection). */
  onClientDisconnected?(clientId: string): void;
  /** Called once by the Broker constructor, so hooks can act on live sessions (revocation). */
  attach?(broker: BrokerControl): void;
}

export interface BrokerOptions {
  storage: BrokerStorage;
  limits?: Partial<BrokerLimits>;
  logger?: Logger;
  metrics?: BrokerMetrics;
  clock?: Clock;
  hooks?: BrokerHooks;
  /**
   * Admission control (issue 3). The same gate must be given to `Listeners` (accept-time checks);
   * the engine calls `onConnect` before authentication and answers refusals.
   */
  admission?: AdmissionGate;
}
