/**
 * Every session the broker knows, online or offline (MQTT 5.0 §4.1): who owns a client id, the
 * subscription index built from their subscriptions, takeover, resume and clean start, the
 * session rows in storage, and the offline clock (delayed wills and session expiry, checked by
 * the broker's one sweep — no timer per session).
 *
 * Only sessions with an expiry interval > 0 are written to storage (with subscriptions, outbox,
 * inbound QoS 2 ids and the will); at start they are loaded back as offline sessions. A will
 * that was pending comes back with its due time (fired by the first sweep if that passed while the
 * broker was down); one that was armed — its connection was up when the broker stopped — counts
 * as lost at start, so it is due after its Will Delay Interval, and a client that reconnects
 * before that cancels it (MQTT 5.0 §3.1.3.2.2). In a cluster the wills live in NATS (issue 15)
 * and are not stored here.
 */
import type { ClaimResult, ClusterSeam } from './cluster-seam.js';
import type { Connection } from './connection.js';
import type { AcceptedConnect, DeliveryContext } from './engine-context.js';
import { ReasonCode } from './reason-codes.js';
import { Session, type Subscription, type Will } from './session.js';
import type { QoS, SubscriptionRecord, WillRecord } from './storage/types.js';
import { SubscriptionTree } from './topics/subscription-tree.js';

export type SessionRegistryHost = Pick<DeliveryContext, 'storage' | 'metrics' | 'counters' | 'logger'> & {
  /** The cluster seam (issue 15); null on a single node. */
  readonly cluster: ClusterSeam | null;
};

/** Publishes a will that is due (authorization, retained and routing are the broker's). */
export type WillPublisher = (clientId: string, will: Will) => void;

export class SessionRegistry {
  readonly sessions = new Map<string, Session>();
  readonly tree = new SubscriptionTree<Subscription>();
  readonly #host: SessionRegistryHost;
  readonly #publishWill: WillPublisher;
  /** Offline sessions with a finite expiry or a delayed will pending: what the sweep looks at. */
  readonly #waiting = new Set<Session>();
  #online = 0;
  #offline = 0;

  constructor(host: SessionRegistryHost, publishWill: WillPublisher) {
    this.#host = host;
    this.#publishWill = publishWill;
  }

  /** Sessions with a live connection. */
  get online(): number {
    return this.#online;
  }

  get size(): number {
    return this.sessions.size;
  }

  get(clientId: string): Session | undefined {
    return this.sessions.get(clientId);
  }

  /** Loads the stored sessions as offline ones, with their subscriptions, outbox and QoS 2 ids. */
  restore(now: number): void {
    const { storage, metrics } = this.#host;
    for (const rec of storage.loadSessions()) {
      const s = new Session(rec.clientId, rec.protocolVersion, rec.expiryInterval);
      s.stored = true;
      // A session still marked online crashed with the broker: offline from load time.
      s.disconnectedAt = rec.disconnectedAt ?? now;
      if (rec.disconnectedAt === null) storage.putSession({ ...rec, disconnectedAt: now });
      this.sessions.set(s.clientId, s);
      for (const sr of rec.subscriptions) {
        const parsedShare = sr.filter.startsWith('$share/') ? sr.filter.split('/') : null;
        const shareGroup = parsedShare ? parsedShare[1]! : null;
        const topicFilter = parsedShare ? parsedShare.slice(2).join('/') : sr.filter;
        const sub: Subscription = { ...sr, session: s, shareGroup, topicFilter };
        s.subscriptionMap().set(sr.filter, sub);
        this.#treeAdd(s.clientId, sub);
        metrics.subscriptions.inc();
      }
      this.#loadOutbox(s);
      const q2 = storage.loadInboundQos2(s.clientId);
      if (q2.length > 0) s.inboundQos2 = new Set(q2);
      if (rec.will !== undefined) this.#restoreWill(s, rec.will, now);
      this.#offline++;
      if (s.willAt > 0 || s.expiresAt() !== Number.POSITIVE_INFINITY) this.#waiting.add(s);
    }
    this.#syncGauges();
  }

  #restoreWill(s: Session, w: WillRecord, now: number): void {
    if (this.#host.cluster !== null) {
      this.#host.storage.deleteWill(s.clientId); // a cluster keeps wills in NATS
      return;
    }
    s.will = {
      topic: w.topic,
      payload: w.payload,
      qos: w.qos,
      retain: w.retain,
      properties: w.properties,
      delaySec: w.delaySec,
      expirySec: w.expirySec,
    };
    if (w.dueAt !== null) {
      s.willAt = w.dueAt;
      return;
    }
    // Armed when the broker stopped: its connection is lost as of now [MQTT-3.1.3-9]. A will due
    // at once still waits for the first sweep, after every session is loaded.
    s.willAt = now + Math.min(w.delaySec, s.expiryInterval) * 1000;
    this.#storeWill(s);
  }

  /** Writes the session's will (or its absence) when the session is stored and not clustered. */
  #storeWill(s: Session): void {
    if (!s.stored || this.#host.cluster !== null) return;
    const w = s.will;
    const storage = this.#host.storage;
    if (w === null) {
      storage.deleteWill(s.clientId);
      return;
    }
    storage.putWill(s.clientId, {
      topic: w.topic,
      payload: w.payload,
      qos: w.qos,
      retain: w.retain,
      properties: w.properties,
      delaySec: w.delaySec,
      expirySec: w.expirySec,
      dueAt: s.willAt > 0 ? s.willAt : null,
    });
  }

  #loadOutbox(s: Session): void {
    const records = this.#host.storage.loadOutbox(s.clientId);
    let maxId = 0;
    for (const r of records) {
      if (r.seq >= s.nextSeq) s.nextSeq = r.seq + 1;
      if (r.state !== 'queued' && r.packetId !== null && !(s.inflight?.has(r.packetId) ?? false)) {
        s.inflightMap().set(r.packetId, r);
        this.#host.metrics.inflight.inc();
        if (r.packetId > maxId) maxId = r.packetId;
      } else {
        r.state = 'queued';
        r.packetId = null;
        s.outboundQueue().push(r);
      }
    }
    s.nextPacketId = maxId >= 65535 ? 1 : maxId + 1;
  }

  /** Whether a connection for `clientId` could resume the session this node holds. */
  hasResumable(clientId: string): boolean {
    const s = this.sessions.get(clientId);
    return s !== undefined && !s.ended && s.persistent;
  }

  /**
   * Gives an accepted connection its session: takes over a live one with the same client id,
   * resumes an offline one, or starts clean; writes the session row; links session and connection.
   * In a cluster `claim` is this node's ownership (issue 15): a session held by another node is
   * restored from its description (`replayFrom` then says since when to replay messages).
   */
  open(
    conn: Connection,
    a: AcceptedConnect,
    claim: ClaimResult | null = null,
  ): { session: Session; sessionPresent: boolean; replayFrom: number } {
    let existing = this.sessions.get(a.clientId);
    if (existing?.conn != null) {
      // Session takeover [MQTT-3.1.4-3]: DISCONNECT 0x8E to the old connection (v5), destroyed at
      // once so no zombie socket survives (DESIGN.md §1, reboot storm). Its shutdown runs now and
      // may end the session (clean), hence the second look.
      const old = existing.conn;
      this.#host.logger.info({ clientId: a.clientId }, 'session taken over');
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
    let replayFrom = -1;
    const remote = claim?.remote ?? null;
    if (remote !== null && !a.clean) {
      // The session lives on another node's last word: our copy (if any) is stale.
      if (existing !== undefined && !existing.ended) {
        if (existing.conn === null) this.#offline--;
        this.discard(existing);
      }
      s = new Session(a.clientId, remote.protocolVersion, remote.expiryInterval);
      this.sessions.set(a.clientId, s);
      s.expiryInterval = remote.expiryInterval;
      for (const r of remote.subscriptions) {
        const parsedShare = r.filter.startsWith('$share/') ? r.filter.split('/') : null;
        const sub: Subscription = {
          ...r,
          session: s,
          shareGroup: parsedShare ? parsedShare[1]! : null,
          topicFilter: parsedShare ? parsedShare.slice(2).join('/') : r.filter,
        };
        s.subscriptionMap().set(r.filter, sub);
        this.#treeAdd(s.clientId, sub);
        this.#host.metrics.subscriptions.inc();
      }
      sessionPresent = true;
      replayFrom = remote.deliveredUntil;
    } else if (existing !== undefined && !existing.ended && !a.clean) {
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
        this.discard(existing);
      }
      s = new Session(a.clientId, conn.version, a.expiryInterval);
      this.sessions.set(a.clientId, s);
    }
    if (claim !== null) s.clusterEpoch = claim.epoch;
    s.protocolVersion = conn.version;
    s.expiryInterval = a.expiryInterval;
    s.will = a.will;
    const cluster = this.#host.cluster;
    if (cluster !== null) {
      if (a.will !== null) cluster.willArmed(s.clientId, s.clusterEpoch, a.will);
      else cluster.willDisarmed(s.clientId);
    }
    const storage = this.#host.storage;
    if (s.expiryInterval > 0) {
      storage.putSession({
        clientId: s.clientId,
        protocolVersion: s.protocolVersion,
        expiryInterval: s.expiryInterval,
        disconnectedAt: null,
      });
      const wasStored = s.stored;
      s.stored = true;
      if (replayFrom >= 0 && s.subscriptions !== null) {
        for (const sub of s.subscriptions.values())
          storage.putSubscription(s.clientId, subscriptionRecord(sub));
      }
      // The new connection's will replaces (or, absent, cancels) whatever the session had.
      if (s.will !== null || (wasStored && sessionPresent)) this.#storeWill(s);
    } else if (s.stored) {
      storage.deleteSession(s.clientId);
      s.stored = false;
    }
    s.conn = conn;
    conn.session = s;
    this.#online++;
    this.#syncGauges();
    return { session: s, sessionPresent, replayFrom };
  }

  /**
   * Another node owns `clientId` from `epoch` on (issue 15): a local connection with an older
   * epoch is taken over (0x8E, like a local takeover) and this node's copy of the session is
   * dropped without its pending will (the session lives on at the new owner).
   */
  ownershipLost(clientId: string, epoch: number): void {
    const s = this.sessions.get(clientId);
    if (s === undefined || s.ended || s.clusterEpoch >= epoch) return;
    const conn = s.conn;
    if (conn !== null) {
      this.#host.logger.info({ clientId, epoch }, 'session taken over by another node');
      conn.disconnect(
        ReasonCode.SessionTakenOver,
        'another connection with this client id',
        'session_taken_over',
      );
      conn.stream.destroy();
    }
    const left = this.sessions.get(clientId);
    if (left === undefined || left.ended || left.clusterEpoch >= epoch) return;
    left.will = null;
    left.willAt = 0;
    if (left.conn === null) this.#offline--;
    this.discard(left);
    this.#syncGauges();
  }

  /**
   * The connection of `s` ended. A clean session ends with it (its will is due now, whatever its
   * delay); a persistent one goes offline, its will sent now or scheduled [MQTT-3.1.3-9]. While
   * the broker shuts down (`shuttingDown`) nothing is published and a stored will stays armed:
   * the next start counts the connection as lost then.
   */
  connectionEnded(s: Session, publishWill: boolean, now: number, shuttingDown = false): void {
    s.conn = null;
    this.#online--;
    const will = s.will;
    const cluster = this.#host.cluster;
    if (!s.persistent) {
      s.will = null;
      if (publishWill && will !== null) this.#publishWill(s.clientId, will);
      cluster?.willDisarmed(s.clientId);
      this.discard(s);
      this.#syncGauges();
      return;
    }
    s.disconnectedAt = now;
    this.#offline++;
    if (s.stored) {
      this.#host.storage.putSession({
        clientId: s.clientId,
        protocolVersion: s.protocolVersion,
        expiryInterval: s.expiryInterval,
        disconnectedAt: now,
      });
    }
    if (shuttingDown) {
      // Keep the will as it is stored (armed); the in-memory session goes with the process.
    } else if (publishWill && will !== null) {
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
    if (will !== null && !shuttingDown) this.#storeWill(s);
    if (cluster !== null) {
      if (s.willAt === 0) cluster.willDisarmed(s.clientId);
      cluster.sessionChanged(s, 'offline');
    }
    if (s.willAt > 0 || s.expiresAt() !== Number.POSITIVE_INFINITY) this.#waiting.add(s);
    this.#syncGauges();
  }

  /** End a session: subscriptions out of the tree, storage rows deleted, pending will sent. */
  discard(s: Session): void {
    if (s.ended) return;
    s.ended = true;
    const cluster = this.#host.cluster;
    if (s.willAt > 0 && s.will !== null) {
      const w = s.will;
      s.will = null;
      s.willAt = 0;
      this.#publishWill(s.clientId, w);
      cluster?.willDisarmed(s.clientId);
    }
    const { metrics, storage } = this.#host;
    if (s.subscriptions !== null) {
      for (const sub of s.subscriptions.values()) this.#treeRemove(s.clientId, sub);
      metrics.subscriptions.dec(s.subscriptions.size);
      s.subscriptions = null;
    }
    if (s.inflight !== null) {
      metrics.inflight.dec(s.inflight.size);
      s.inflight = null;
    }
    s.queue = null;
    if (s.stored) {
      storage.deleteSession(s.clientId);
      s.stored = false;
    }
    this.#waiting.delete(s);
    if (this.sessions.get(s.clientId) === s) this.sessions.delete(s.clientId);
    cluster?.sessionChanged(s, 'ended');
  }

  /** DISCONNECT with a new Session Expiry Interval. */
  setExpiry(s: Session, expiry: number): void {
    const storage = this.#host.storage;
    s.expiryInterval = expiry;
    if (expiry === 0 && s.stored) {
      storage.deleteSession(s.clientId);
      s.stored = false;
    } else if (expiry > 0) {
      storage.putSession({
        clientId: s.clientId,
        protocolVersion: s.protocolVersion,
        expiryInterval: expiry,
        disconnectedAt: null,
      });
      if (!s.stored && s.subscriptions !== null) {
        for (const sub of s.subscriptions.values())
          storage.putSubscription(s.clientId, subscriptionRecord(sub));
      }
      s.stored = true;
    }
  }

  addSubscription(s: Session, sub: Subscription, existed: boolean): void {
    this.#treeAdd(s.clientId, sub);
    s.subscriptionMap().set(sub.filter, sub);
    if (!existed) this.#host.metrics.subscriptions.inc();
    if (s.stored) this.#host.storage.putSubscription(s.clientId, subscriptionRecord(sub));
    if (s.persistent) this.#host.cluster?.sessionChanged(s, 'subscriptions');
  }

  removeSubscription(s: Session, filter: string): boolean {
    const sub = s.subscriptions?.get(filter);
    if (sub === undefined) return false;
    this.#treeRemove(s.clientId, sub);
    s.subscriptions!.delete(filter);
    this.#host.metrics.subscriptions.dec();
    if (s.stored) this.#host.storage.deleteSubscription(s.clientId, filter);
    if (s.persistent) this.#host.cluster?.sessionChanged(s, 'subscriptions');
    return true;
  }

  /** Into the index; in a cluster the first subscription on a filter subscribes it on NATS. */
  #treeAdd(clientId: string, sub: Subscription): void {
    if (this.tree.add(clientId, sub.topicFilter, sub, sub.shareGroup))
      this.#host.cluster?.filterAdded(sub.topicFilter, sub.shareGroup);
  }

  #treeRemove(clientId: string, sub: Subscription): void {
    if (this.tree.remove(clientId, sub.topicFilter, sub.shareGroup))
      this.#host.cluster?.filterRemoved(sub.topicFilter, sub.shareGroup);
  }

  /** The offline clock: delayed wills that are due, sessions that expired (MQTT 5.0 §4.1.1). */
  sweep(now: number): void {
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
        this.#host.cluster?.willDisarmed(s.clientId);
        this.#storeWill(s);
      }
      if (now >= s.expiresAt()) {
        this.#offline--;
        this.discard(s);
        this.#syncGauges();
        continue;
      }
      if (s.willAt === 0 && s.expiresAt() === Number.POSITIVE_INFINITY) this.#waiting.delete(s);
    }
  }

  /** Forgets the pending will of `clientId` (revocation: kicking it must publish nothing). */
  forgetWill(clientId: string): boolean {
    const s = this.sessions.get(clientId);
    if (s === undefined || s.will === null) return false;
    s.will = null;
    s.willAt = 0;
    this.#host.cluster?.willDisarmed(clientId);
    this.#storeWill(s);
    return true;
  }

  /** Client ids with a live connection now. */
  connectedClientIds(): string[] {
    const ids: string[] = [];
    for (const s of this.sessions.values()) if (s.conn !== null) ids.push(s.clientId);
    return ids;
  }

  #syncGauges(): void {
    this.#host.counters.sessionsOnline = this.#online;
    this.#host.counters.sessionsOffline = this.#offline;
  }
}

function subscriptionRecord(sub: Subscription): SubscriptionRecord {
  const r: SubscriptionRecord = {
    filter: sub.filter,
    qos: sub.qos as QoS,
    noLocal: sub.noLocal,
    retainAsPublished: sub.retainAsPublished,
    retainHandling: sub.retainHandling,
  };
  if (sub.subscriptionId !== undefined) r.subscriptionId = sub.subscriptionId;
  return r;
}
