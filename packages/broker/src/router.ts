/**
 * Routing: one topic-tree walk per message, then one delivery per matching session.
 *
 * The router is the tree's match visitor itself and keeps its per-message state in fields, so a
 * routed message allocates nothing here. A client matching several overlapping filters gets ONE
 * copy with the highest granted QoS and every subscription identifier (MQTT 5.0 §3.3.4); the
 * dedupe uses a stamp on the session instead of a Set per message.
 *
 * Shared subscriptions ($share/{group}/{filter}, MQTT 5.0 §4.8.2): each message goes to one
 * member, round-robin from the group's cursor, preferring members that are online. When no member
 * is online, the next member in turn (always a persistent session, since clean sessions end with
 * their connection) gets the message in its offline queue, to be delivered when it returns.
 */
import type { ClusterSeam, SharedHandoff } from './cluster-seam.js';
import { deliver, deliverOutbox, hasRoom, outboxRecord } from './delivery.js';
import type { DeliveryContext } from './engine-context.js';
import type { Message, Session, Subscription } from './session.js';
import type { QoS } from './storage/types.js';
import type { MatchVisitor, SharedGroup, SubscriptionTree } from './topics/subscription-tree.js';

/** What routing needs of the broker: the subscriptions, in-process taps, and delivery. */
export interface RouterHost extends DeliveryContext {
  readonly tree: SubscriptionTree<Subscription>;
  /** In-process taps; routing calls `runTaps` only when there is at least one. */
  readonly taps: readonly unknown[];
  /** Runs the taps matching the message; true when at least one matched. */
  runTaps(msg: Message): boolean;
  /** The cluster seam (issue 15); null on a single node. */
  readonly cluster: ClusterSeam | null;
}

export class Router implements MatchVisitor<Subscription> {
  readonly #broker: RouterHost;
  #stamp = 0;
  #msg: Message | null = null;
  #targets: Session[] = [];
  #count = 0;
  /** Deliveries of the current message that a session accepted (shared groups included). */
  #accepted = 0;
  /** See MessageRouting.refusedByAll; set by the last top-level `route()`. */
  refusedByAll = false;
  /**
   * Clustered routing (issue 15): a message that came from another node on the NATS subscription
   * of one filter goes to the local subscriptions on that filter only (the MQTT matcher re-check:
   * the tree walk confirms the topic matches under MQTT rules, e.g. `#` never matches `$SYS/…`),
   * and shared groups are served by NATS queue groups, never by the local walk. Null: everything.
   */
  #onlyFilter: string | null = null;
  #onlyGroup: string | null = null;
  /** Routing a message from another node (no taps: each node taps what is published on it). */
  #remote = false;
  /** `routeShared`: the member the message went to. */
  #handoff: SharedHandoff | null = null;
  /** `routeShared`: only a member whose client is connected may take it. */
  #onlineOnly = false;
  /** `routeShared` with `onlineOnly`: the group has members here, none of them online. */
  #noneOnline = false;

  constructor(broker: RouterHost) {
    this.#broker = broker;
  }

  /**
   * Route a message published on this node to every matching subscription; in a cluster it is
   * forwarded to the other nodes first (a durable forward marks the storage dirty, so the PUBACK
   * waits for JetStream's ack). Returns the number of local sessions it went to — in a cluster at
   * least 1, as remote interest is not known here (no 0x10 No matching subscribers).
   */
  route(msg: Message): number {
    const cluster = this.#broker.cluster;
    if (cluster === null) return this.#route(msg);
    if (cluster.forward(msg)) this.#broker.storageDirty = true;
    const n = this.#route(msg);
    this.refusedByAll = false; // another node may have taken it
    return n === 0 ? 1 : n;
  }

  /**
   * A message from another node, received on the NATS subscription for `filter` (or for every
   * filter: null). Not forwarded again.
   */
  routeRemote(msg: Message, filter: string | null): number {
    this.#onlyFilter = filter;
    this.#remote = true;
    try {
      return this.#route(msg);
    } finally {
      this.#onlyFilter = null;
      this.#remote = false;
    }
  }

  /**
   * A message for one shared group of this node (a NATS queue group or the group's JetStream
   * consumer picked this node). Returns the member that took it, or null. `onlineOnly`: not to a
   * member whose client is away (the cluster offers it again, to whichever member is online);
   * 'away' when the group has members here and none is online.
   */
  routeShared(
    msg: Message,
    group: string,
    filter: string,
    onlineOnly: boolean,
  ): SharedHandoff | 'away' | null {
    this.#onlyFilter = filter;
    this.#onlyGroup = group;
    this.#onlineOnly = onlineOnly;
    this.#noneOnline = false;
    this.#remote = true;
    this.#handoff = null;
    try {
      this.#route(msg);
      return this.#noneOnline ? 'away' : this.#handoff;
    } finally {
      this.#onlyFilter = null;
      this.#onlyGroup = null;
      this.#onlineOnly = false;
      this.#remote = false;
      this.#handoff = null;
    }
  }

  #route(msg: Message): number {
    // Re-entrancy guard: delivery never routes synchronously, but keep state safe if it ever does.
    const prevMsg = this.#msg;
    const prevTargets = this.#targets;
    const prevCount = this.#count;
    const prevAccepted = this.#accepted;
    if (prevMsg !== null) this.#targets = [];
    this.#msg = msg;
    this.#count = 0;
    this.#accepted = 0;
    this.#stamp = (this.#stamp + 1) | 0;
    this.#broker.tree.match(msg.topic, this);
    // Taps see the messages published on this node (in a cluster each node taps its own).
    const tapped = this.#broker.taps.length !== 0 && !this.#remote && this.#broker.runTaps(msg);
    const targets = this.#targets;
    const b = this.#broker;
    let accepted = this.#accepted;
    for (let i = 0; i < targets.length; i++) {
      const s = targets[i]!;
      if (deliver(b, s, msg, s.routeQos, s.routeRetain, s.routeSubIds)) accepted++;
      s.routeSubIds = null;
    }
    const n = targets.length + this.#count;
    this.refusedByAll = n > 0 && accepted === 0 && !tapped;
    targets.length = 0;
    this.#msg = prevMsg;
    this.#targets = prevTargets;
    this.#count = prevCount;
    this.#accepted = prevAccepted;
    return n;
  }

  subscriber(_key: string, sub: Subscription): void {
    if (this.#onlyFilter !== null && (this.#onlyGroup !== null || sub.topicFilter !== this.#onlyFilter))
      return;
    const msg = this.#msg!;
    const s = sub.session;
    // [MQTT-3.8.3-3] No Local: not to the publishing client.
    if (sub.noLocal && msg.publisherId === s.clientId) return;
    // [MQTT-3.3.1-12/13] Retain As Published keeps the flag, otherwise RETAIN=0 on forwarding.
    const retain = sub.retainAsPublished && msg.retain;
    if (s.routeStamp !== this.#stamp) {
      s.routeStamp = this.#stamp;
      s.routeQos = sub.qos;
      s.routeRetain = retain;
      s.routeSubIds = sub.subscriptionId !== undefined ? [sub.subscriptionId] : null;
      this.#targets.push(s);
      return;
    }
    if (sub.qos > s.routeQos) s.routeQos = sub.qos;
    if (retain) s.routeRetain = true;
    if (sub.subscriptionId !== undefined) {
      if (s.routeSubIds === null) s.routeSubIds = [sub.subscriptionId];
      else s.routeSubIds.push(sub.subscriptionId);
    }
  }

  sharedGroup(group: SharedGroup<Subscription>): void {
    if (this.#broker.cluster !== null) {
      // In a cluster one member cluster-wide gets each message: the NATS queue group decides.
      if (this.#onlyGroup !== group.group || this.#onlyFilter !== group.filter) return;
    }
    const members = group.members;
    const n = members.length;
    if (n === 0) return;
    let pick = -1;
    for (let i = 0; i < n; i++) {
      const idx = (group.cursor + i) % n;
      const conn = members[idx]!.value.session.conn;
      if (conn?.connected) {
        pick = idx;
        break;
      }
    }
    if (pick === -1) {
      if (this.#onlineOnly) {
        this.#noneOnline = true;
        return;
      }
      pick = group.cursor % n;
    }
    const msg = this.#msg!;
    // A member whose queue is full would refuse: the next member in turn that has room gets it.
    for (let i = 0; i < n; i++) {
      const idx = (pick + i) % n;
      const sub = members[idx]!.value;
      if (this.#onlineOnly && sub.session.conn?.connected !== true) continue;
      if (hasRoom(this.#broker, sub.session, msg, sub.qos)) {
        pick = idx;
        break;
      }
    }
    group.cursor = (pick + 1) % n;
    const sub = members[pick]!.value;
    this.#count++;
    if (this.#onlyGroup !== null) {
      if (this.#deliverShared(sub, msg)) this.#accepted++;
      return;
    }
    const ok = deliver(
      this.#broker,
      sub.session,
      msg,
      sub.qos,
      sub.retainAsPublished && msg.retain,
      sub.subscriptionId !== undefined ? [sub.subscriptionId] : null,
    );
    if (ok) this.#accepted++;
  }

  /** `routeShared`'s delivery: as `deliver`, keeping the QoS 1/2 record the cluster follows. */
  #deliverShared(sub: Subscription, msg: Message): boolean {
    const s = sub.session;
    const retain = sub.retainAsPublished && msg.retain;
    const subIds = sub.subscriptionId !== undefined ? [sub.subscriptionId] : null;
    const qos = Math.min(msg.qos, sub.qos) as QoS;
    if (qos === 0) {
      if (!deliver(this.#broker, s, msg, 0, retain, subIds)) return false;
      this.#handoff = { session: s, record: null };
      return true;
    }
    const rec = outboxRecord(s, msg, qos, retain, subIds);
    if (!deliverOutbox(this.#broker, s, rec)) return false;
    this.#handoff = { session: s, record: rec };
    return true;
  }
}
