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
import { deliver } from './delivery.js';
import type { DeliveryContext } from './engine-context.js';
import type { Message, Session, Subscription } from './session.js';
import type { MatchVisitor, SharedGroup, SubscriptionTree } from './topics/subscription-tree.js';

/** What routing needs of the broker: the subscriptions, in-process taps, and delivery. */
export interface RouterHost extends DeliveryContext {
  readonly tree: SubscriptionTree<Subscription>;
  /** In-process taps; routing calls `runTaps` only when there is at least one. */
  readonly taps: readonly unknown[];
  runTaps(msg: Message): void;
}

export class Router implements MatchVisitor<Subscription> {
  readonly #broker: RouterHost;
  #stamp = 0;
  #msg: Message | null = null;
  #targets: Session[] = [];
  #count = 0;

  constructor(broker: RouterHost) {
    this.#broker = broker;
  }

  /** Route a message to every matching subscription; returns the number of sessions it went to. */
  route(msg: Message): number {
    // Re-entrancy guard: delivery never routes synchronously, but keep state safe if it ever does.
    const prevMsg = this.#msg;
    const prevTargets = this.#targets;
    const prevCount = this.#count;
    if (prevMsg !== null) this.#targets = [];
    this.#msg = msg;
    this.#count = 0;
    this.#stamp = (this.#stamp + 1) | 0;
    this.#broker.tree.match(msg.topic, this);
    if (this.#broker.taps.length !== 0) this.#broker.runTaps(msg);
    const targets = this.#targets;
    const b = this.#broker;
    for (let i = 0; i < targets.length; i++) {
      const s = targets[i]!;
      deliver(b, s, msg, s.routeQos, s.routeRetain, s.routeSubIds);
      s.routeSubIds = null;
    }
    const n = targets.length + this.#count;
    targets.length = 0;
    this.#msg = prevMsg;
    this.#targets = prevTargets;
    this.#count = prevCount;
    return n;
  }

  subscriber(_key: string, sub: Subscription): void {
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
    if (pick === -1) pick = group.cursor % n;
    group.cursor = (pick + 1) % n;
    const sub = members[pick]!.value;
    const msg = this.#msg!;
    this.#count++;
    deliver(
      this.#broker,
      sub.session,
      msg,
      sub.qos,
      sub.retainAsPublished && msg.retain,
      sub.subscriptionId !== undefined ? [sub.subscriptionId] : null,
    );
  }
}
