/**
 * SUBSCRIBE → SUBACK, then retained messages (MQTT 5.0 §3.8, §3.9, §3.3.1.3). In a cluster the
 * SUBACK of a QoS 1/2 shared subscription waits until its group can take messages (issue 15).
 */
import type mqtt from 'mqtt-packet';
import { type Connection, ConnState } from '../connection.js';
import { deliver } from '../delivery.js';
import type { HandlerContext } from '../engine-context.js';
import { ReasonCode } from '../reason-codes.js';
import type { Subscription } from '../session.js';
import type { QoS } from '../storage/types.js';
import { parseTopicFilter } from '../topics/validate.js';

export function handleSubscribe(b: HandlerContext, conn: Connection, p: mqtt.ISubscribePacket): void {
  const s = conn.session!;
  const v5 = conn.version === 5;
  const subId = p.properties?.subscriptionIdentifier as number | undefined;
  if (subId === 0) {
    // [MQTT-3.8.2-?] Subscription Identifier 0 is a Protocol Error.
    conn.protocolError(ReasonCode.ProtocolError, 'Subscription Identifier 0');
    return;
  }
  if (p.subscriptions.length === 0) {
    // [MQTT-3.8.3-3] A SUBSCRIBE must contain at least one topic filter.
    conn.protocolError(ReasonCode.ProtocolError, 'SUBSCRIBE without topic filters');
    return;
  }
  // One entry per filter, in order: the subscription to install, or the SUBACK's failure code.
  const plan: (Subscription | number)[] = [];
  // The entries of `plan` that wait for their group: resolves true when it could not be made.
  let waits: { at: number; refused: Promise<boolean> }[] | null = null;
  const authorize = b.hooks?.authorizeSubscribe;
  for (const req of p.subscriptions) {
    const parsed = parseTopicFilter(req.topic);
    if (!parsed.ok || req.topic.includes('\uFFFD')) {
      if (!v5) {
        // MQTT 3.1.1 §4.8: an invalid filter is a protocol violation; close (as Mosquitto does).
        conn.protocolError(ReasonCode.TopicFilterInvalid, `invalid topic filter`);
        return;
      }
      // [MQTT-4.7.1-1..3] invalid wildcard placement → 0x8F (v3.1.1: 0x80 Failure).
      plan.push(v5 ? ReasonCode.TopicFilterInvalid : 0x80);
      continue;
    }
    const nl = req.nl === true;
    if (parsed.shareGroup !== null && nl) {
      // [MQTT-3.8.3-4] No Local on a shared subscription is a Protocol Error.
      conn.protocolError(ReasonCode.ProtocolError, 'No Local on a shared subscription');
      return;
    }
    if (authorize !== undefined && !authorize(s.clientId, req.topic)) {
      plan.push(v5 ? ReasonCode.NotAuthorized : 0x80);
      continue;
    }
    const sub: Subscription = {
      filter: req.topic,
      qos: req.qos as QoS,
      noLocal: nl,
      retainAsPublished: req.rap === true,
      retainHandling: (req.rh ?? 0) as 0 | 1 | 2,
      session: s,
      shareGroup: parsed.shareGroup,
      topicFilter: parsed.filter,
    };
    if (subId !== undefined) sub.subscriptionId = subId;
    plan.push(sub);
    // In a cluster a QoS 1/2 shared group takes messages from the moment its delivery exists
    // cluster-wide (a JetStream consumer): the SUBACK waits for it, or a message published right
    // after it could miss the group (issue 15).
    const ready =
      parsed.shareGroup !== null && sub.qos > 0 && b.cluster !== null
        ? b.cluster.sharedGroupReady(parsed.filter, parsed.shareGroup)
        : null;
    if (ready !== null) {
      const wait = { at: plan.length - 1, refused: ready.then(isFalse, isTrue) };
      if (waits === null) waits = [wait];
      else waits.push(wait);
    }
  }
  if (waits === null) {
    subscribeAll(b, conn, p.messageId!, plan, null);
    return;
  }
  // Reading stays suspended meanwhile: a later SUBSCRIBE (or anything else) from this connection
  // waits, so its SUBACK cannot overtake this one [MQTT-3.8.4-?].
  conn.suspend();
  const pending = waits;
  void Promise.all(pending.map((w) => w.refused)).then((refused) => {
    if (conn.state === ConnState.Closed || conn.session !== s) return;
    const failed = new Set<number>();
    for (let i = 0; i < pending.length; i++) if (refused[i]) failed.add(pending[i]!.at);
    subscribeAll(b, conn, p.messageId!, plan, failed);
    conn.resume();
  });
}

const isFalse = () => false;
const isTrue = () => true;

/**
 * Installs the planned subscriptions (all but those whose group could not be made: `failed[i]`),
 * sends the SUBACK, then the retained messages.
 */
function subscribeAll(
  b: HandlerContext,
  conn: Connection,
  messageId: number,
  plan: (Subscription | number)[],
  failed: ReadonlySet<number> | null,
): void {
  const s = conn.session!;
  const granted: number[] = [];
  let retainedFor: Subscription[] | null = null;
  for (let i = 0; i < plan.length; i++) {
    const sub = plan[i]!;
    if (typeof sub === 'number') {
      granted.push(sub);
      continue;
    }
    if (failed?.has(i) === true) {
      // The cluster could not make the group's delivery (logged and counted there).
      granted.push(ReasonCode.UnspecifiedError); // v3.1.1: 0x80 Failure, the same byte
      continue;
    }
    const existed = s.subscriptions?.has(sub.filter) === true;
    b.addSubscription(s, sub, existed);
    granted.push(sub.qos); // [MQTT-3.9.3-?] the broker supports QoS 2: granted = requested
    // [MQTT-3.3.1-9..11] Retain Handling 0: send retained; 1: only for a new subscription; 2: never.
    // Shared subscriptions get no retained messages (MQTT 5.0 §4.8.2).
    if (sub.shareGroup === null && (sub.retainHandling === 0 || (sub.retainHandling === 1 && !existed))) {
      if (retainedFor === null) retainedFor = [sub];
      else retainedFor.push(sub);
    }
  }
  // [MQTT-3.8.4-1] SUBACK with the same packet id, one reason code per filter [MQTT-3.8.4-6].
  conn.sendPacket({ cmd: 'suback', messageId, granted } as mqtt.ISubackPacket);
  if (retainedFor !== null) for (const sub of retainedFor) sendRetained(b, sub);
}

function sendRetained(b: HandlerContext, sub: Subscription): void {
  const now = b.clock.now();
  const subIds = sub.subscriptionId !== undefined ? [sub.subscriptionId] : null;
  const expired: string[] = [];
  b.retained.match(sub.topicFilter, (topic, r) => {
    if (r.expiresAt !== null && r.expiresAt <= now) {
      expired.push(topic);
      return;
    }
    // [MQTT-3.3.1-8] Retained messages sent on subscribe carry RETAIN=1.
    deliver(
      b,
      sub.session,
      {
        topic: r.topic,
        payload: r.payload,
        qos: r.qos,
        retain: true,
        properties: r.properties,
        expiresAt: r.expiresAt,
        publisherId: r.publisherId,
        encoded: null,
      },
      sub.qos,
      true,
      subIds,
    );
  });
  for (const t of expired) b.deleteRetained(t);
}
