/**
 * The MQTT 3.1.1 + 5.0 broker engine: the lifecycle, and the seams where its parts meet.
 * Transports hand it any duplex stream (`handle()`). What it delegates, and where:
 * - packets → packet-dispatch.ts → handlers/*.ts (each sees only HandlerContext);
 * - sessions, subscriptions, takeover, offline clock → session-registry.ts;
 * - retained messages → retained-store.ts; fan-out → router.ts → delivery.ts;
 * - acknowledgements that wait for storage → durable-acks.ts;
 * - timeouts of connections → connection-sweep.ts, run by ONE shared 1 s sweep (no timer per
 *   connection or session);
 * - in-process observers and taps (control plane) → observers.ts.
 *
 * Persistence: only sessions with an expiry interval > 0 are written (with subscriptions, outbox
 * and inbound QoS 2 ids). Mutations are recorded synchronously; acknowledgements that depend on
 * them wait for the next storage flush (see `sendAck`). The wills of such sessions are stored
 * with them and survive a restart (session-registry.ts).
 */
import { randomUUID } from 'node:crypto';
import type mqtt from 'mqtt-packet';
import { type Logger, pino } from 'pino';
import type { ByteStream } from './byte-stream.js';
import { type Clock, systemClock, type TimerHandle } from './clock.js';
import type { ClaimResult, ClusterHost, ClusterOption, ClusterSeam, SharedHandoff } from './cluster-seam.js';
import { Connection, type ConnectionHost, ConnState, type ConnStateValue } from './connection.js';
import { sweepConnection } from './connection-sweep.js';
import { deliver, resumeDeliveries, withdrawOutbound } from './delivery.js';
import { DurableAcks } from './durable-acks.js';
import type { AcceptedConnect, AckCmd, HandlerContext } from './engine-context.js';
import { EngineCounters, type ListenerMetrics } from './engine-counters.js';
import type { AdmissionGate } from './guard/admission/gate.js';
import { sendConnack } from './handlers/connack.js';
import { refuse as refuseConnect } from './handlers/connect.js';
import { toStoredProperties } from './handlers/publish.js';
import { IntakeBudget } from './intake-budget.js';
import { BrokerMetrics } from './metrics.js';
import {
  type BrokerObserver,
  InProcessObservers,
  type MessageTapHandler,
  TAP_DURABLE,
  TAP_NONE,
} from './observers.js';
import {
  type BrokerHooks,
  type BrokerLimits,
  type BrokerOptions,
  type ConnectionInfo,
  defaultLimits,
} from './options.js';
import { dispatchFrame } from './packet-dispatch.js';
import { type QueueDropReport, QueueDropReports } from './queue-drops.js';
import { ReasonCode } from './reason-codes.js';
import { RetainedStore } from './retained-store.js';
import { Router } from './router.js';
import type { Message, Session, Subscription, Will } from './session.js';
import { SessionRegistry } from './session-registry.js';
import type { BrokerStorage, OutboxRecord, QoS, RetainedRecord } from './storage/types.js';
import type { RetainedIndex } from './topics/retained-index.js';
import type { SubscriptionTree } from './topics/subscription-tree.js';
import { isValidTopicName } from './topics/validate.js';

/** One session as `Broker.sessionSummary` reports it. */
export interface SessionSummary {
  connected: boolean;
  /** Outlives its connection (session expiry > 0 / clean session false). */
  persistent: boolean;
  subscriptions: Array<{ filter: string; qos: number }>;
  /** Messages waiting for the client (offline, or over its receive maximum). */
  queued: number;
  /** QoS 1/2 messages sent and not yet acknowledged. */
  inflight: number;
}

/** Sweep period. Timeouts are therefore enforced with up to this much extra delay. */
const SWEEP_INTERVAL_MS = 1000;

export interface ServerPublish {
  topic: string;
  payload: Buffer;
  qos: 0 | 1 | 2;
  retain?: boolean;
  properties?: mqtt.IPublishPacket['properties'];
}

/**
 * `limits.intakeBudgetMs` in a cluster when not set: a node must read its NATS connection often
 * enough that NATS never holds 64 MiB for it (nats-server's max_pending: then it closes the node
 * as a slow consumer and what it held is lost), about 2 MiB per turn (libuv reads 32 × 64 KiB).
 * Measured on the 3-node fan-in bench (issue 15).
 */
const CLUSTER_INTAKE_BUDGET_MS = 10;

export class Broker implements HandlerContext, ConnectionHost, ClusterHost {
  readonly metrics: BrokerMetrics;
  /** @internal */ readonly limits: Readonly<BrokerLimits>;
  /** @internal */ readonly storage: BrokerStorage;
  /** @internal */ readonly logger: Logger;
  /** @internal */ readonly clock: Clock;
  /** @internal */ readonly hooks: BrokerHooks | null;
  /** @internal Admission control (issue 3); null = admit every CONNECT. */
  readonly admission: AdmissionGate | null;
  /** @internal */ readonly router: Router;
  /** @internal */ readonly counters: EngineCounters;
  /** @internal Bytes read from all clients per event-loop turn (ConnectionHost). */
  readonly intake: IntakeBudget;
  /** @internal Drops by full session queues (DeliveryContext). */
  readonly queueDrops: QueueDropReports;
  /** @internal Set by every storage mutation; the PUBLISH handler resets and reads it. */
  storageDirty = false;
  /** @internal The cluster seam (issue 15); null on a single node. */
  readonly cluster: ClusterSeam | null = null;

  readonly #registry: SessionRegistry;
  readonly #retained: RetainedStore;
  readonly #observers: InProcessObservers;
  readonly #acks: DurableAcks;
  readonly #conns = new Set<Connection>();
  /** Routing QoS 0 from other nodes, per event-loop turn (ClusterHost.admitRemote). */
  readonly #remoteIntake: IntakeBudget;
  #sweepTimer: TimerHandle | null = null;
  #started = false;
  #closing = false;

  constructor(options: BrokerOptions & ClusterOption) {
    this.limits = Object.freeze({ ...defaultLimits, ...options.limits });
    this.storage = options.storage;
    this.logger = options.logger ?? pino({ level: 'silent' });
    this.metrics = options.metrics ?? new BrokerMetrics();
    this.clock = options.clock ?? systemClock;
    this.hooks = options.hooks ?? null;
    this.admission = options.admission ?? null;
    this.counters = new EngineCounters(this.metrics);
    const budgetMs =
      this.limits.intakeBudgetMs ?? (options.cluster !== undefined ? CLUSTER_INTAKE_BUDGET_MS : 0);
    this.intake = new IntakeBudget(budgetMs);
    this.#remoteIntake = new IntakeBudget(budgetMs);
    this.queueDrops = new QueueDropReports(this.counters, (r) => this.#queueDropsReported(r));
    // Before the registry, store and router read it.
    if (options.cluster !== undefined) this.cluster = options.cluster.attach(this);
    this.#registry = new SessionRegistry(this, (clientId, will) => this.#publishWill(clientId, will));
    this.#retained = new RetainedStore(this);
    this.#observers = new InProcessObservers((err, what) => this.logger.error({ err }, `${what} failed`));
    this.router = new Router(this);
    const cluster = this.cluster;
    const storage = this.storage;
    // A durable ack waits for storage and, in a cluster, for JetStream (PUBACK after its ack).
    this.#acks = new DurableAcks(
      cluster === null
        ? storage
        : { flush: () => Promise.all([storage.flush(), cluster.flush()]).then(() => undefined) },
      this.logger,
    );
    this.metrics.sessions.labels('online').set(0);
    this.metrics.sessions.labels('offline').set(0);
    this.hooks?.attach?.(this);
  }

  get connectedClients(): number {
    return this.#registry.online;
  }

  get sessionCount(): number {
    return this.#registry.size;
  }

  /** @internal The subscription index (RouterHost). */
  get tree(): SubscriptionTree<Subscription> {
    return this.#registry.tree;
  }

  /** @internal Retained messages by topic (HandlerContext: SUBSCRIBE sends the matching ones). */
  get retained(): RetainedIndex<RetainedRecord> {
    return this.#retained.index;
  }

  /** @internal In-process taps (RouterHost); routing calls `runTaps` only when there is one. */
  get taps(): readonly unknown[] {
    return this.#observers.taps;
  }

  /** Open storage, load sessions (offline) and retained messages, start the sweep. */
  async start(): Promise<void> {
    if (this.#started) return;
    this.#started = true;
    await this.storage.open();
    const now = this.clock.now();
    this.#retained.restore(now);
    this.#registry.restore(now);
    // Wills that fell due while the broker was down go out now, before any client connects.
    this.#registry.sweep(now);
    this.#sweepTimer = this.clock.setInterval(() => this.#sweep(), SWEEP_INTERVAL_MS);
  }

  /** Serve one client over any duplex stream (TCP, TLS, WebSocket, in-memory pair). */
  handle(stream: ByteStream, info: ConnectionInfo): void {
    if (this.#closing) {
      if (this.admission?.takeHeldRefusal(stream) !== undefined) this.admission.releaseTarpitSlot();
      stream.destroy();
      return;
    }
    const now = this.clock.now();
    const conn = new Connection(this, stream, info, now);
    const held = this.admission?.takeHeldRefusal(stream);
    if (held !== undefined) {
      // Refused at accept and held (a tarpit slot) so the refusal can be answered after CONNECT.
      conn.refusal = held;
      conn.deadline = now + held.tarpitMs;
    }
    this.#conns.add(conn);
    const lm = this.listenerMetrics(info.listener);
    lm.openSockets.inc();
    lm.withoutConnect.inc();
  }

  /** @internal One complete packet from a connection's framer (ConnectionHost). */
  dispatchFrame(conn: Connection, frame: Buffer): boolean {
    return dispatchFrame(this, conn, frame);
  }

  listenerMetrics(listener: string): ListenerMetrics {
    return this.counters.listener(listener);
  }

  /** @internal */
  assignClientId(): string {
    return `bw-${randomUUID()}`;
  }

  /** @internal A validated (and authenticated) CONNECT: takeover, clean start or resume, CONNACK. */
  acceptConnection(conn: Connection, a: AcceptedConnect): void {
    if (this.#closing) {
      conn.shutdown('server_shutting_down', false);
      return;
    }
    if (this.cluster !== null) this.#claimThenAccept(this.cluster, conn, a);
    else this.#accept(conn, a, null);
  }

  /**
   * In a cluster a connection owns its client id only once the cluster says so (issue 15): reading
   * stays suspended until the claim resolves; a claim that fails (NATS unreachable) is refused
   * with 0x88 Server unavailable and a retry hint, like any load refusal.
   */
  #claimThenAccept(cluster: ClusterSeam, conn: Connection, a: AcceptedConnect): void {
    conn.state = ConnState.Authenticating;
    conn.suspend();
    const haveLocal = !a.clean && this.#registry.hasResumable(a.clientId);
    cluster.claim(a.clientId, a.clean, haveLocal).then(
      (claim) => {
        if (conn.state !== ConnState.Authenticating) {
          if (conn.hookAdmitted) {
            conn.hookAdmitted = false;
            this.hooks?.onClientDisconnected?.(a.clientId);
          }
          return;
        }
        if (this.#closing) {
          conn.shutdown('server_shutting_down', false);
          return;
        }
        this.#accept(conn, a, claim);
        conn.resume();
      },
      (err: unknown) => {
        this.logger.warn({ err, clientId: a.clientId }, 'cluster claim failed');
        if (conn.state !== ConnState.Authenticating) return;
        refuseConnect(this, conn, ReasonCode.ServerUnavailable, 'cluster unavailable', {
          'retry-after-ms': String(2000 + Math.floor(Math.random() * 3000)),
        });
      },
    );
  }

  #accept(conn: Connection, a: AcceptedConnect, claim: ClaimResult | null): void {
    const now = this.clock.now();
    const { session, sessionPresent, replayFrom } = this.#registry.open(conn, a, claim);
    conn.state = ConnState.Connected;
    conn.connectedAt = now;
    // | 0: an int32 (≤ 65535 s × factor) stays an unboxed small integer in the Connection.
    conn.keepaliveMs = a.keepalive > 0 ? Math.ceil(a.keepalive * 1000 * this.limits.keepaliveFactor) | 0 : 0;
    conn.deadline = conn.keepaliveMs > 0 ? now + conn.keepaliveMs : 0;
    const lm = this.listenerMetrics(conn.info.listener);
    lm.withoutConnect.dec();
    lm.connections.inc();
    if (sessionPresent && session.inboundQos2 !== null && session.inboundQos2.size > 0) {
      conn.carriedQos2 = new Set(session.inboundQos2); // not this connection's quota (§4.9)
    }
    sendConnack(conn, this.limits, a, sessionPresent);
    this.#handshakeDone(conn);
    if (this.#observers.watched) this.#observers.connected(conn.clientId, conn.info, now);
    if (sessionPresent) resumeDeliveries(this, session);
    const cluster = this.cluster;
    if (cluster !== null) {
      if (replayFrom >= 0) cluster.replay(session, replayFrom);
      cluster.sessionChanged(session, 'online');
    }
  }

  /** Admission's handshake count: exactly once per admitted CONNECT, whatever its outcome. */
  #handshakeDone(conn: Connection): void {
    if (!conn.handshakePending) return;
    conn.handshakePending = false;
    this.admission?.onHandshakeDone(conn.info.listener);
  }

  /** @internal Called once per connection when it stops (any reason). */
  onConnectionShutdown(
    conn: Connection,
    wasState: ConnStateValue,
    reason: string,
    publishWill: boolean,
  ): void {
    this.counters.disconnect(reason);
    this.#handshakeDone(conn);
    if (conn.refusal !== null) {
      if (conn.refusal.tarpitMs > 0) this.admission?.releaseTarpitSlot();
      conn.refusal = null;
    }
    const lm = this.listenerMetrics(conn.info.listener);
    if (wasState !== ConnState.Connected) lm.withoutConnect.dec();
    else {
      lm.connections.dec();
      // Flapping counts accepted sessions that end quickly, never refused attempts (issue 11).
      this.admission?.onSessionEnded(
        conn.info.listener,
        conn.clientId,
        conn.info.remoteAddress,
        conn.closedAt - conn.connectedAt,
        reason,
      );
    }
    if (conn.acks !== null) {
      // Unsent acks are dropped: the client resends those publishes (DUP) after reconnecting.
      this.#acks.forget(conn);
    }
    if (wasState === ConnState.Connected && this.#observers.watched) {
      this.#observers.disconnected(conn.clientId, reason, this.clock.now());
    }
    const s = conn.session;
    if (s !== null && s.conn === conn) {
      this.#registry.connectionEnded(s, publishWill && !this.#closing, this.clock.now(), this.#closing);
    }
    // After the will: the hooks still know this client's principal when they authorize it.
    if (conn.hookAdmitted) {
      conn.hookAdmitted = false;
      this.hooks?.onClientDisconnected?.(conn.clientId);
    }
  }

  /** @internal The stream emitted 'close'. */
  onStreamClosed(conn: Connection): void {
    if (this.#conns.delete(conn)) this.listenerMetrics(conn.info.listener).openSockets.dec();
  }

  /** @internal */
  onConnectionDrained(_conn: Connection): void {
    // QoS 1/2 are bounded by the in-flight window, QoS 0 by the buffer limit: nothing to resume.
  }

  /** @internal End a session: subscriptions out of the tree, storage rows deleted, pending will sent. */
  discardSession(s: Session): void {
    this.#registry.discard(s);
  }

  /** @internal DISCONNECT with a new Session Expiry Interval. */
  setSessionExpiry(s: Session, expiry: number): void {
    this.#registry.setExpiry(s, expiry);
  }

  /** @internal */
  addSubscription(s: Session, sub: Subscription, existed: boolean): void {
    this.#registry.addSubscription(s, sub, existed);
  }

  /** @internal */
  removeSubscription(s: Session, filter: string): boolean {
    return this.#registry.removeSubscription(s, filter);
  }

  /** @internal Set or clear (empty payload) the retained message of a topic [MQTT-3.3.1-5..7]. */
  storeRetained(msg: Message): void {
    this.#retained.set(msg);
  }

  /** @internal */
  deleteRetained(topic: string): void {
    this.#retained.delete(topic);
  }

  /**
   * @internal Send PUBACK/PUBREC/PUBREL/PUBCOMP. With `needsFlush` the ack waits for the next
   * storage flush (DurableAcks); later acks of the same connection queue behind it so the order is
   * kept [MQTT-4.6.0-2..4].
   */
  sendAck(
    conn: Connection,
    cmd: AckCmd,
    id: number,
    rc: number,
    reasonString: string | undefined,
    needsFlush: boolean,
    qos: number,
  ): void {
    this.#acks.send(conn, cmd, id, rc, reasonString, needsFlush, qos);
  }

  /** @internal ClusterHost: a message from another node, for the local subscriptions on `filter`. */
  admitRemote(): boolean {
    return this.#remoteIntake.admit();
  }

  droppedRemote(count: number): void {
    this.counters.drop('cluster_overload', count);
  }

  routeRemote(msg: Message, filter: string | null): void {
    this.router.routeRemote(msg, filter);
  }

  /** @internal ClusterHost: a NATS queue group picked this node for one shared group's message. */
  routeShared(
    msg: Message,
    shareGroup: string,
    filter: string,
    onlineOnly: boolean,
  ): SharedHandoff | 'away' | null {
    return this.router.routeShared(msg, shareGroup, filter, onlineOnly);
  }

  /** @internal ClusterHost: a shared-subscription message taken back from a client that went away. */
  withdrawShared(s: Session, rec: OutboxRecord): boolean {
    return withdrawOutbound(this, s, rec);
  }

  /** @internal ClusterHost: a retained message changed on another node. */
  applyRetained(topic: string, rec: RetainedRecord | null): void {
    this.#retained.applyRemote(topic, rec);
  }

  /** @internal ClusterHost: another node claimed `clientId` with a newer epoch. */
  ownershipLost(clientId: string, epoch: number): void {
    this.#registry.ownershipLost(clientId, epoch);
  }

  /** @internal ClusterHost: publish the will of a client whose node died. */
  publishWill(clientId: string, will: Will): void {
    this.#publishWill(clientId, will);
  }

  /** @internal ClusterHost: one replayed message for a session resumed from another node. */
  deliverReplayed(s: Session, msg: Message, sub: Subscription): void {
    if (s.ended || (sub.noLocal && msg.publisherId === s.clientId)) return;
    deliver(
      this,
      s,
      msg,
      sub.qos,
      sub.retainAsPublished && msg.retain,
      sub.subscriptionId !== undefined ? [sub.subscriptionId] : null,
    );
  }

  #publishWill(clientId: string, will: Will): void {
    const authorize = this.hooks?.authorizePublish;
    if (authorize !== undefined && !authorize(clientId, will.topic)) {
      this.counters.drop('not_authorized');
      return;
    }
    const msg: Message = {
      topic: will.topic,
      payload: will.payload,
      qos: will.qos,
      retain: will.retain,
      properties: will.properties,
      expiresAt: will.expirySec !== null ? this.clock.now() + will.expirySec * 1000 : null,
      publisherId: clientId,
      encoded: null,
    };
    if (msg.retain) this.storeRetained(msg);
    this.router.route(msg);
  }

  #sweep(): void {
    const now = this.clock.now();
    for (const conn of this.#conns) sweepConnection(this, conn, now);
    this.#registry.sweep(now);
    this.queueDrops.sweep(now);
    this.counters.sync();
  }

  /**
   * Stop: v5 clients get DISCONNECT 0x8B, every stream is destroyed, the sweep stops, storage is
   * flushed and closed. Wills are not published on shutdown; those of stored sessions stay armed
   * in storage and count from the next start (session-registry.ts).
   */
  async close(): Promise<void> {
    if (this.#closing) return;
    this.#closing = true;
    if (this.#sweepTimer !== null) {
      this.clock.clearInterval(this.#sweepTimer);
      this.#sweepTimer = null;
    }
    for (const conn of this.#conns) {
      conn.disconnect(ReasonCode.ServerShuttingDown, 'server shutting down', 'server_shutting_down');
      conn.stream.destroy();
    }
    this.admission?.close();
    this.counters.sync();
    if (this.#started) await this.storage.close();
  }

  /**
   * Disconnect a connected client (revocation, admin action, node drain). MQTT 5 clients get
   * DISCONNECT with the reason code, the reason string and, for 0x9C Use Another Server / 0x9D
   * Server Moved, a Server Reference (MQTT 5.0 §4.11). False when it is not connected.
   */
  disconnectClient(
    clientId: string,
    reasonCode: number,
    reasonString?: string,
    options: { serverReference?: string } = {},
  ): boolean {
    const conn = this.#registry.get(clientId)?.conn;
    if (conn == null) return false;
    conn.disconnect(reasonCode, reasonString, 'administrative', options.serverReference);
    conn.stream.destroy();
    return true;
  }

  /** BrokerControl: removes the client's subscriptions that `keep` refuses; returns how many. */
  dropSubscriptions(clientId: string, keep: (filter: string) => boolean): number {
    const s = this.#registry.get(clientId);
    const subs = s?.subscriptions;
    if (s === undefined || subs == null) return 0;
    let dropped = 0;
    for (const filter of [...subs.keys()]) {
      if (!keep(filter) && this.#registry.removeSubscription(s, filter)) dropped++;
    }
    return dropped;
  }

  /** Client ids with a live connection now. */
  connectedClientIds(): string[] {
    return this.#registry.connectedClientIds();
  }

  /** What an operator sees of one session (issue 14, the console's device detail); null: none held. */
  sessionSummary(clientId: string): SessionSummary | null {
    const s = this.#registry.get(clientId);
    if (s === undefined) return null;
    return {
      connected: s.conn !== null,
      persistent: s.persistent,
      subscriptions:
        s.subscriptions === null
          ? []
          : [...s.subscriptions.values()].map((x) => ({ filter: x.filter, qos: x.qos })),
      queued: s.queuedCount,
      inflight: s.inflightCount,
    };
  }

  /** Follow connects and disconnects in-process; returns the function that removes the observer. */
  addObserver(observer: BrokerObserver): () => void {
    return this.#observers.add(observer);
  }

  /**
   * See every message routed on topics matching `filter` (wildcards allowed), whoever published
   * it and whether or not a client subscribes. Throws on an invalid filter. Returns the remover.
   */
  tap(filter: string, handler: MessageTapHandler): () => void {
    return this.#observers.tap(filter, handler);
  }

  /** @internal Called by the router when `taps` is not empty; true when a tap matched. */
  runTaps(msg: Message): boolean {
    const outcome = this.#observers.runTaps(msg.topic, msg.payload, msg.publisherId);
    // A tap wrote the message durably: the PUBACK waits for the storage flush (issue 16).
    if (outcome === TAP_DURABLE) this.storageDirty = true;
    return outcome !== TAP_NONE;
  }

  #queueDropsReported(report: QueueDropReport): void {
    this.logger.warn(
      { clientId: report.clientId, dropped: report.dropped, policy: this.limits.queueOverflow },
      'session queue full: messages dropped',
    );
    if (this.#observers.watched) this.#observers.messagesDropped(report);
  }

  /**
   * Revocation clean-up: forget the pending will of `clientId` (so kicking it publishes nothing)
   * and delete every retained message it published. Resolves when the deletions are durable.
   */
  async purgePublishedBy(clientId: string): Promise<{ retained: number; wills: number }> {
    const wills = this.#registry.forgetWill(clientId) ? 1 : 0;
    const retained = this.#retained.deletePublishedBy(clientId);
    if (retained > 0) await this.storage.flush();
    return { retained, wills };
  }

  /** Publish a server-originated message (control plane). Resolves when it is durable. */
  async publish(message: ServerPublish): Promise<void> {
    if (!isValidTopicName(message.topic)) throw new Error(`invalid topic name: ${message.topic}`);
    const props = message.properties;
    const exp = props?.messageExpiryInterval;
    const msg: Message = {
      topic: message.topic,
      payload: Buffer.from(message.payload),
      qos: message.qos as QoS,
      retain: message.retain === true,
      properties: toStoredProperties(props),
      expiresAt: exp !== undefined ? this.clock.now() + exp * 1000 : null,
      publisherId: null,
      encoded: null,
    };
    if (msg.retain) this.storeRetained(msg);
    this.router.route(msg);
    await this.storage.flush();
    await this.cluster?.flush();
  }
}
