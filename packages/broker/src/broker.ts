/**
 * The MQTT 3.1.1 + 5.0 broker engine. Transports hand it any duplex stream (`handle()`); the
 * engine owns sessions, routing, retained messages, wills and persistence through BrokerStorage.
 *
 * Timers: ONE shared coarse sweep (limits-independent 1 s tick through the injected Clock) checks
 * connect timeouts, keepalive deadlines, drain timeouts, lingering closed streams, delayed wills
 * and session expiry. No connection or session owns a timer.
 *
 * Persistence: only sessions with an expiry interval > 0 are written (with subscriptions, outbox
 * and inbound QoS 2 ids). Mutations are recorded synchronously; acknowledgements that depend on
 * them wait for the next storage flush (see `sendAck`). Wills are kept in memory only.
 */
import { randomUUID } from 'node:crypto';
import type { Duplex } from 'node:stream';
import type mqtt from 'mqtt-packet';
import { type Logger, pino } from 'pino';
import { type Clock, systemClock, type TimerHandle } from './clock.js';
import {
  CLOSE_LINGER_MS,
  Connection,
  type ConnectionHost,
  ConnState,
  type ConnStateValue,
} from './connection.js';
import { resumeDeliveries } from './delivery.js';
import { DurableAcks } from './durable-acks.js';
import type { AcceptedConnect, AckCmd, HandlerContext } from './engine-context.js';
import { EngineCounters, type ListenerMetrics } from './engine-counters.js';
import type { AdmissionGate } from './guard/admission/gate.js';
import { answerRefusal } from './handlers/connect.js';
import { toStoredProperties } from './handlers/publish.js';
import { BrokerMetrics } from './metrics.js';
import { type BrokerObserver, MessageTap, type MessageTapHandler } from './observers.js';
import {
  type BrokerHooks,
  type BrokerLimits,
  type BrokerOptions,
  type ConnectionInfo,
  defaultLimits,
} from './options.js';
import { dispatchFrame } from './packet-dispatch.js';
import { ReasonCode } from './reason-codes.js';
import { Router } from './router.js';
import { type Message, Session, type Subscription, type Will } from './session.js';
import type { BrokerStorage, QoS, RetainedRecord } from './storage/types.js';
import { RetainedIndex } from './topics/retained-index.js';
import { SubscriptionTree } from './topics/subscription-tree.js';
import { isValidTopicName } from './topics/validate.js';

/** Sweep period. Timeouts are therefore enforced with up to this much extra delay. */
const SWEEP_INTERVAL_MS = 1000;

export interface ServerPublish {
  topic: string;
  payload: Buffer;
  qos: 0 | 1 | 2;
  retain?: boolean;
  properties?: mqtt.IPublishPacket['properties'];
}

/** v3.1/v3.1.1 CONNACK, return code 0: Session Present 0 or 1 [MQTT-3.2.2-1..3]. Never mutated. */
const CONNACK_ACCEPTED = Buffer.from([0x20, 0x02, 0x00, 0x00]);
const CONNACK_SESSION_PRESENT = Buffer.from([0x20, 0x02, 0x01, 0x00]);

export class Broker implements HandlerContext, ConnectionHost {
  readonly metrics: BrokerMetrics;
  /** @internal */ readonly limits: Readonly<BrokerLimits>;
  /** @internal */ readonly storage: BrokerStorage;
  /** @internal */ readonly logger: Logger;
  /** @internal */ readonly clock: Clock;
  /** @internal */ readonly hooks: BrokerHooks | null;
  /** @internal Admission control (issue 3); null = admit every CONNECT. */
  readonly admission: AdmissionGate | null;
  /** @internal */ readonly sessions = new Map<string, Session>();
  /** @internal */ readonly tree = new SubscriptionTree<Subscription>();
  /** @internal */ readonly retained = new RetainedIndex<RetainedRecord>();
  /** @internal */ readonly router: Router;
  /** @internal */ readonly counters: EngineCounters;
  /** @internal Set by every storage mutation; the PUBLISH handler resets and reads it. */
  storageDirty = false;

  /** @internal In-process taps (control plane); checked per routed message only when non-empty. */
  readonly taps: MessageTap[] = [];
  readonly #observers: BrokerObserver[] = [];
  readonly #conns = new Set<Connection>();
  /** Offline sessions with a finite expiry or a delayed will pending. */
  readonly #waiting = new Set<Session>();
  #sweepTimer: TimerHandle | null = null;
  #online = 0;
  #offline = 0;
  #started = false;
  #closing = false;

  readonly #acks: DurableAcks;

  constructor(options: BrokerOptions) {
    this.limits = Object.freeze({ ...defaultLimits, ...options.limits });
    this.storage = options.storage;
    this.logger = options.logger ?? pino({ level: 'silent' });
    this.metrics = options.metrics ?? new BrokerMetrics();
    this.clock = options.clock ?? systemClock;
    this.hooks = options.hooks ?? null;
    this.admission = options.admission ?? null;
    this.router = new Router(this);
    this.#acks = new DurableAcks(this.storage, this.logger);
    this.counters = new EngineCounters(this.metrics);
    this.metrics.sessions.labels('online').set(0);
    this.metrics.sessions.labels('offline').set(0);
    this.hooks?.attach?.(this);
  }

  get connectedClients(): number {
    return this.#online;
  }

  get sessionCount(): number {
    return this.sessions.size;
  }

  /** Open storage, load sessions (offline) and retained messages, start the sweep. */
  async start(): Promise<void> {
    if (this.#started) return;
    this.#started = true;
    await this.storage.open();
    const now = this.clock.now();
    for (const r of this.storage.loadRetained()) {
      if (r.expiresAt !== null && r.expiresAt <= now) {
        this.storage.deleteRetained(r.topic);
        continue;
      }
      this.retained.set(r.topic, r);
    }
    this.metrics.retained.set(this.retained.size);
    for (const rec of this.storage.loadSessions()) {
      const s = new Session(rec.clientId, rec.protocolVersion, rec.expiryInterval);
      s.stored = true;
      // A session still marked online crashed with the broker: offline from load time.
      s.disconnectedAt = rec.disconnectedAt ?? now;
      if (rec.disconnectedAt === null) this.storage.putSession({ ...rec, disconnectedAt: now });
      this.sessions.set(s.clientId, s);
      for (const sr of rec.subscriptions) {
        const parsedShare = sr.filter.startsWith('$share/') ? sr.filter.split('/') : null;
        const shareGroup = parsedShare ? parsedShare[1]! : null;
        const topicFilter = parsedShare ? parsedShare.slice(2).join('/') : sr.filter;
        const sub: Subscription = { ...sr, session: s, shareGroup, topicFilter };
        s.subscriptionMap().set(sr.filter, sub);
        this.tree.add(s.clientId, topicFilter, sub, shareGroup);
        this.metrics.subscriptions.inc();
      }
      this.#loadOutbox(s);
      const q2 = this.storage.loadInboundQos2(s.clientId);
      if (q2.length > 0) s.inboundQos2 = new Set(q2);
      this.#offline++;
      if (s.expiresAt() !== Number.POSITIVE_INFINITY) this.#waiting.add(s);
    }
    this.#syncSessionGauges();
    this.#sweepTimer = this.clock.setInterval(() => this.#sweep(), SWEEP_INTERVAL_MS);
  }

  #loadOutbox(s: Session): void {
    const records = this.storage.loadOutbox(s.clientId);
    let maxId = 0;
    for (const r of records) {
      if (r.seq >= s.nextSeq) s.nextSeq = r.seq + 1;
      if (r.state !== 'queued' && r.packetId !== null && !(s.inflight?.has(r.packetId) ?? false)) {
        s.inflightMap().set(r.packetId, r);
        this.metrics.inflight.inc();
        if (r.packetId > maxId) maxId = r.packetId;
      } else {
        r.state = 'queued';
        r.packetId = null;
        s.queueList().push(r);
      }
    }
    s.nextPacketId = maxId >= 65535 ? 1 : maxId + 1;
  }

  /** Serve one client over any duplex stream (TCP, TLS, WebSocket, in-memory pair). */
  handle(stream: Duplex, info: ConnectionInfo): void {
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
    const now = this.clock.now();
    let existing = this.sessions.get(a.clientId);
    if (existing?.conn != null) {
      // Session takeover [MQTT-3.1.4-3]: DISCONNECT 0x8E to the old connection (v5), destroyed at
      // once so no zombie socket survives (DESIGN.md §1, reboot storm).
      const old = existing.conn;
      this.logger.info({ clientId: a.clientId }, 'session taken over');
      old.disconnect(
        ReasonCode.SessionTakenOver,
        'another connection with this client id',
        'session_taken_over',
      );
      old.stream.destroy();
      existing = this.sessions.get(a.clientId);
    }
    let s: Session;
    let sessionPresent = false;
    if (existing !== undefined && !existing.ended && !a.clean) {
      // [MQTT-3.1.2-5] resume the existing session.
      s = existing;
      sessionPresent = true;
      this.#waiting.delete(s);
      this.#offline--;
      // A delayed will is cancelled when the session reconnects in time (MQTT 5.0 §3.1.3.2.2).
      s.willAt = 0;
      s.will = null;
      s.disconnectedAt = null;
    } else {
      // [MQTT-3.1.2-4] Clean Start discards any existing session.
      if (existing !== undefined && !existing.ended) {
        this.#offline--;
        this.discardSession(existing);
      }
      s = new Session(a.clientId, conn.version, a.expiryInterval);
      this.sessions.set(a.clientId, s);
    }
    s.protocolVersion = conn.version;
    s.expiryInterval = a.expiryInterval;
    s.will = a.will;
    if (s.expiryInterval > 0) {
      this.storage.putSession({
        clientId: s.clientId,
        protocolVersion: s.protocolVersion,
        expiryInterval: s.expiryInterval,
        disconnectedAt: null,
      });
      s.stored = true;
    } else if (s.stored) {
      this.storage.deleteSession(s.clientId);
      s.stored = false;
    }
    s.conn = conn;
    conn.session = s;
    conn.state = ConnState.Connected;
    conn.connectedAt = now;
    // | 0: an int32 (≤ 65535 s × factor) stays an unboxed small integer in the Connection.
    conn.keepaliveMs = a.keepalive > 0 ? Math.ceil(a.keepalive * 1000 * this.limits.keepaliveFactor) | 0 : 0;
    conn.deadline = conn.keepaliveMs > 0 ? now + conn.keepaliveMs : 0;
    this.#online++;
    this.#syncSessionGauges();
    const lm = this.listenerMetrics(conn.info.listener);
    lm.withoutConnect.dec();
    lm.connections.inc();

    if (conn.version === 5) {
      const l = this.limits;
      const properties: NonNullable<mqtt.IConnackPacket['properties']> = {
        receiveMaximum: l.receiveMaximum,
        maximumPacketSize: l.maxPacketSize,
        retainAvailable: true,
        wildcardSubscriptionAvailable: true,
        subscriptionIdentifiersAvailable: true,
        sharedSubscriptionAvailable: true,
        // Maximum QoS is not sent: absent means 2, and the value 2 may not be sent [MQTT-3.2.2-9].
      };
      if (l.topicAliasMaximum > 0) properties.topicAliasMaximum = l.topicAliasMaximum;
      if (a.assignedClientId) properties.assignedClientIdentifier = a.clientId; // [MQTT-3.2.2-16]
      if (a.serverKeepAlive) properties.serverKeepAlive = a.keepalive; // [MQTT-3.2.2-21]
      if (a.expiryCapped) properties.sessionExpiryInterval = a.expiryInterval;
      if (a.userProperties !== undefined) properties.userProperties = a.userProperties;
      conn.sendPacket({ cmd: 'connack', sessionPresent, reasonCode: ReasonCode.Success, properties });
    } else {
      // [MQTT-3.2.2-1..3] v3.1 has no session present flag. Constant bytes: no encode per CONNECT.
      conn.send(conn.version === 4 && sessionPresent ? CONNACK_SESSION_PRESENT : CONNACK_ACCEPTED);
    }
    this.#handshakeDone(conn);
    if (this.#observers.length !== 0) this.#notifyConnected(conn);
    if (sessionPresent) resumeDeliveries(this, s);
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
    if (conn.hookAdmitted) {
      conn.hookAdmitted = false;
      this.hooks?.onClientDisconnected?.(conn.clientId);
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
    const s = conn.session;
    if (wasState === ConnState.Connected && this.#observers.length !== 0) {
      this.#notifyDisconnected(conn.clientId, reason);
    }
    if (s !== null && s.conn === conn) {
      s.conn = null;
      this.#online--;
      this.#sessionOffline(s, publishWill && !this.#closing);
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

  #sessionOffline(s: Session, publishWill: boolean): void {
    const now = this.clock.now();
    const will = s.will;
    if (!s.persistent) {
      // The session ends with the connection: the will (if any) is due now, whatever its delay.
      s.will = null;
      if (publishWill && will !== null) this.#publishWill(s.clientId, will);
      this.discardSession(s);
      this.#syncSessionGauges();
      return;
    }
    s.disconnectedAt = now;
    this.#offline++;
    if (s.stored) {
      this.storage.putSession({
        clientId: s.clientId,
        protocolVersion: s.protocolVersion,
        expiryInterval: s.expiryInterval,
        disconnectedAt: now,
      });
    }
    if (publishWill && will !== null) {
      if (will.delaySec > 0) {
        // [MQTT-3.1.3-9] at the earlier of the will delay and the session's end.
        const delay = Math.min(will.delaySec, s.expiryInterval);
        s.willAt = now + delay * 1000;
      } else {
        s.will = null;
        this.#publishWill(s.clientId, will);
      }
    } else {
      s.will = null;
    }
    if (s.willAt > 0 || s.expiresAt() !== Number.POSITIVE_INFINITY) this.#waiting.add(s);
    this.#syncSessionGauges();
  }

  /** @internal End a session: subscriptions out of the tree, storage rows deleted, pending will sent. */
  discardSession(s: Session): void {
    if (s.ended) return;
    s.ended = true;
    if (s.willAt > 0 && s.will !== null) {
      const w = s.will;
      s.will = null;
      s.willAt = 0;
      this.#publishWill(s.clientId, w);
    }
    if (s.subscriptions !== null) {
      for (const sub of s.subscriptions.values())
        this.tree.remove(s.clientId, sub.topicFilter, sub.shareGroup);
      this.metrics.subscriptions.dec(s.subscriptions.size);
      s.subscriptions = null;
    }
    if (s.inflight !== null) {
      this.metrics.inflight.dec(s.inflight.size);
      s.inflight = null;
    }
    s.queue = null;
    if (s.stored) {
      this.storage.deleteSession(s.clientId);
      s.stored = false;
    }
    this.#waiting.delete(s);
    if (this.sessions.get(s.clientId) === s) this.sessions.delete(s.clientId);
  }

  #syncSessionGauges(): void {
    this.counters.sessionsOnline = this.#online;
    this.counters.sessionsOffline = this.#offline;
  }

  /** @internal DISCONNECT with a new Session Expiry Interval. */
  setSessionExpiry(s: Session, expiry: number): void {
    s.expiryInterval = expiry;
    if (expiry === 0 && s.stored) {
      this.storage.deleteSession(s.clientId);
      s.stored = false;
    } else if (expiry > 0) {
      this.storage.putSession({
        clientId: s.clientId,
        protocolVersion: s.protocolVersion,
        expiryInterval: expiry,
        disconnectedAt: null,
      });
      if (!s.stored && s.subscriptions !== null) {
        for (const sub of s.subscriptions.values())
          this.storage.putSubscription(s.clientId, subscriptionRecord(sub));
      }
      s.stored = true;
    }
  }

  /** @internal */
  addSubscription(s: Session, sub: Subscription, existed: boolean): void {
    this.tree.add(s.clientId, sub.topicFilter, sub, sub.shareGroup);
    s.subscriptionMap().set(sub.filter, sub);
    if (!existed) this.metrics.subscriptions.inc();
    if (s.stored) this.storage.putSubscription(s.clientId, subscriptionRecord(sub));
  }

  /** @internal */
  removeSubscription(s: Session, filter: string): boolean {
    const sub = s.subscriptions?.get(filter);
    if (sub === undefined) return false;
    this.tree.remove(s.clientId, sub.topicFilter, sub.shareGroup);
    s.subscriptions!.delete(filter);
    this.metrics.subscriptions.dec();
    if (s.stored) this.storage.deleteSubscription(s.clientId, filter);
    return true;
  }

  /** @internal Set or clear (empty payload) the retained message of a topic [MQTT-3.3.1-5..7]. */
  storeRetained(msg: Message): void {
    if (msg.payload.length === 0) {
      this.deleteRetained(msg.topic);
      return;
    }
    const rec: RetainedRecord = {
      topic: msg.topic,
      payload: msg.payload,
      qos: msg.qos,
      properties: msg.properties,
      expiresAt: msg.expiresAt,
      publisherId: msg.publisherId,
    };
    this.retained.set(msg.topic, rec);
    this.storage.putRetained(rec);
    this.storageDirty = true;
    this.metrics.retained.set(this.retained.size);
  }

  /** @internal */
  deleteRetained(topic: string): void {
    if (this.retained.delete(topic)) {
      this.storage.deleteRetained(topic);
      this.storageDirty = true;
      this.metrics.retained.set(this.retained.size);
    }
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
    const l = this.limits;
    for (const conn of this.#conns) {
      const state = conn.state;
      if (state === ConnState.Closed) {
        if (now - conn.closedAt >= CLOSE_LINGER_MS && !conn.stream.destroyed) conn.stream.destroy();
        continue;
      }
      if (state !== ConnState.Connected) {
        if (now >= conn.deadline && conn.refusal !== null && state === ConnState.Authenticating) {
          // Tarpit hold over: answer the admission refusal (the slot is released at shutdown).
          answerRefusal(this, conn, conn.refusal);
        } else if (now >= conn.deadline) {
          // DESIGN.md §3: a socket that sends no CONNECT in time is destroyed.
          this.logger.info({ remoteAddress: conn.info.remoteAddress }, 'connect timeout');
          conn.destroy('connect_timeout');
        }
        continue;
      }
      if (conn.keepaliveMs > 0 && now >= conn.deadline) {
        // [MQTT-3.1.2-22] 1.5 × keepalive without a packet: close, publish the will.
        this.logger.info({ clientId: conn.clientId }, 'keepalive timeout');
        conn.disconnect(ReasonCode.KeepAliveTimeout, 'keepalive timeout', 'keepalive_timeout');
        conn.stream.destroy();
        continue;
      }
      if (conn.expiresAt > 0 && now >= conn.expiresAt) {
        // The credentials expired (JWT `exp`): 0xA0 Maximum Connect Time, see ConnectDecision.
        this.logger.info({ clientId: conn.clientId }, 'credentials expired: disconnecting');
        conn.disconnect(ReasonCode.MaximumConnectTime, 'credentials expired', 'credentials_expired');
        conn.stream.destroy();
        continue;
      }
      if (conn.blockedSince > 0 && now - conn.blockedSince >= l.drainTimeoutMs) {
        this.logger.warn({ clientId: conn.clientId }, 'slow consumer: socket not writable, closing');
        this.counters.drop('slow_consumer');
        conn.destroy('slow_consumer');
      }
    }
    for (const s of this.#waiting) {
      if (s.conn !== null) {
        this.#waiting.delete(s);
        continue;
      }
      if (s.willAt > 0 && now >= s.willAt) {
        const w = s.will;
        s.will = null;
        s.willAt = 0;
        if (w !== null) this.#publishWill(s.clientId, w);
      }
      if (now >= s.expiresAt()) {
        // Session expiry (MQTT 5.0 §4.1.1): everything of the session is deleted.
        this.#offline--;
        this.discardSession(s);
        this.#syncSessionGauges();
        continue;
      }
      if (s.willAt === 0 && s.expiresAt() === Number.POSITIVE_INFINITY) this.#waiting.delete(s);
    }
    this.counters.sync();
  }

  /**
   * Stop: v5 clients get DISCONNECT 0x8B, every stream is destroyed, the sweep stops, storage is
   * flushed and closed. Wills are not published on shutdown.
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
    const conn = this.sessions.get(clientId)?.conn;
    if (conn == null) return false;
    conn.disconnect(reasonCode, reasonString, 'administrative', options.serverReference);
    conn.stream.destroy();
    return true;
  }

  /** Client ids with a live connection now. */
  connectedClientIds(): string[] {
    const ids: string[] = [];
    for (const s of this.sessions.values()) if (s.conn !== null) ids.push(s.clientId);
    return ids;
  }

  /** Follow connects and disconnects in-process; returns the function that removes the observer. */
  addObserver(observer: BrokerObserver): () => void {
    this.#observers.push(observer);
    return () => {
      const i = this.#observers.indexOf(observer);
      if (i !== -1) this.#observers.splice(i, 1);
    };
  }

  /**
   * See every message routed on topics matching `filter` (wildcards allowed), whoever published
   * it and whether or not a client subscribes. Throws on an invalid filter. Returns the remover.
   */
  tap(filter: string, handler: MessageTapHandler): () => void {
    const tap = new MessageTap(filter, handler);
    this.taps.push(tap);
    return () => {
      const i = this.taps.indexOf(tap);
      if (i !== -1) this.taps.splice(i, 1);
    };
  }

  /** @internal Called by the router when `taps` is not empty. */
  runTaps(msg: Message): void {
    for (const tap of this.taps) {
      if (!tap.matches(msg.topic)) continue;
      try {
        tap.handler(msg.topic, msg.payload, msg.publisherId);
      } catch (err) {
        this.logger.error({ err, filter: tap.filter }, 'message tap failed');
      }
    }
  }

  /**
   * Revocation clean-up: forget the pending will of `clientId` (so kicking it publishes nothing)
   * and delete every retained message it published. Resolves when the deletions are durable.
   */
  async purgePublishedBy(clientId: string): Promise<{ retained: number; wills: number }> {
    let wills = 0;
    const s = this.sessions.get(clientId);
    if (s !== undefined && s.will !== null) {
      s.will = null;
      s.willAt = 0;
      wills = 1;
    }
    const topics: string[] = [];
    for (const [topic, rec] of this.retained.entries()) if (rec.publisherId === clientId) topics.push(topic);
    for (const topic of topics) this.deleteRetained(topic);
    if (topics.length > 0) await this.storage.flush();
    return { retained: topics.length, wills };
  }

  #notifyConnected(conn: Connection): void {
    const at = this.clock.now();
    for (const o of this.#observers) {
      try {
        o.clientConnected?.(conn.clientId, conn.info, at);
      } catch (err) {
        this.logger.error({ err }, 'broker observer failed');
      }
    }
  }

  #notifyDisconnected(clientId: string, reason: string): void {
    const at = this.clock.now();
    for (const o of this.#observers) {
      try {
        o.clientDisconnected?.(clientId, reason, at);
      } catch (err) {
        this.logger.error({ err }, 'broker observer failed');
      }
    }
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
  }
}

function subscriptionRecord(sub: Subscription) {
  const r: {
    filter: string;
    qos: QoS;
    noLocal: boolean;
    retainAsPublished: boolean;
    retainHandling: 0 | 1 | 2;
    subscriptionId?: number;
  } = {
    filter: sub.filter,
    qos: sub.qos,
    noLocal: sub.noLocal,
    retainAsPublished: sub.retainAsPublished,
    retainHandling: sub.retainHandling,
  };
  if (sub.subscriptionId !== undefined) r.subscriptionId = sub.subscriptionId;
  return r;
}
