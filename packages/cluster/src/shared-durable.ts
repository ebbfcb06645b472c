/**
 * QoS 1/2 shared subscriptions with redelivery (issue 15). Core NATS queue groups are at most
 * once: a message in flight to a member whose node dies is gone. So a QoS 1/2 message for
 * `$share/<group>/<filter>` is read from the `<PREFIX>_MSGS` stream instead, through ONE durable
 * consumer per (group, filter subject) shared by every node that has a member of the group:
 *
 * - explicit acks, `sharedAckWaitMs` (options.ts: the four `shared*` options); deliver policy
 *   new (the group's position starts when its first member anywhere subscribed and is kept by the durable, whichever nodes come and go); replicas
 *   as the stream (R3 on a 3-server NATS: the position and the unacked messages survive a NATS
 *   server); `max_ack_pending` bounded; `inactive_threshold`: once no node listens any more (the
 *   last member left the cluster), JetStream removes it;
 * - JetStream pushes to a deliver subject with a deliver group, and every member node listens in
 *   that NATS queue group, so each message goes to one node. (A pull consumer was the first
 *   choice, but nats-server 2.9.10 does not share one between pullers: two nodes fetching from the
 *   same durable, batch 8 or 1, got 200 and 0 of 200 messages — the node that fetched last is
 *   served first. With the deliver group: 105 and 97.) A node whose members hold
 *   `sharedInFlightPerNode` unsettled messages of the group hands further ones back (nak), so a
 *   slow member does not hoard the group's messages;
 * - a message received is handed to one local member (router `routeShared`), and acked only once
 *   that member's flow is complete: its outbox record has left the session's in-flight map and
 *   queue (PUBACK, PUBCOMP — or dropped by expiry or overflow, as on a single node). Until then
 *   the node tells JetStream it is still working on it. If the session ends first (clean session
 *   closed, expired, taken over) it is nak'ed: JetStream gives it to another member. If the node
 *   dies, nobody acks it and JetStream redelivers it to a member on another node after the ack
 *   wait. At least once: a member may see a message again after a node loss or a lost ack;
 * - only a member whose client is connected takes a message: one queued in the session of a
 *   persistent member whose client is away would be lost with its node, and missed when the
 *   client resumes on another node (a resume replays the session's own filters, not its shared
 *   ones). With no member online here the message is nak'ed and the node stops listening to the
 *   group for a while (`GroupConsumer.pause`; a member coming online here ends it): JetStream
 *   offers it again, to a member online elsewhere, or to this one once back, on whichever node.
 *   When a member's client goes away, what it was not sent and the QoS 1 messages it did not
 *   acknowledge are taken back from its session and nak'ed (MQTT 5.0 §4.8.2); a QoS 2 flow under
 *   way stays with it and is acked (exactly once with that client; held unacked it would tie up
 *   the group's `max_ack_pending` while it is away). While no member is online anywhere, the
 *   group's unacked messages wait in the consumer and the rest in the stream, for at most its
 *   `streamMaxAgeSec`;
 *
 * The SUBACK of a QoS 1/2 member waits for the group's consumers to exist (`ready`, called by the
 * broker's SUBSCRIBE handler before it installs the subscription): the group's position starts
 * there, so a message published after the SUBACK is the group's even if this node listens a few
 * milliseconds later (JetStream keeps it for the consumer). One that cannot be made refuses the
 * subscription (0x80).
 *
 * Completion is found by a sweep every `SWEEP_MS` over the (bounded) set of unsettled handoffs
 * rather than by a hook in the broker's PUBACK path, which stays as it is.
 *
 * nats-server 2.9: one filter subject per consumer, so `a/#` (subjects `…a` and `…a.>`) is two
 * consumers. Unlike the stream readers (stream-reader.ts) these consumers cannot take a new name
 * per attempt — every node must find the same one — so a create that fails is retried under the
 * same name; with R3 consumers a quorum of the live servers answers.
 */
import { createHash } from 'node:crypto';
import type { ClusterHost, Message, OutboxRecord, Session } from '@breakwater/broker';
import { AckPolicy, DeliverPolicy, type JsMsg, type Subscription as NatsSubscription, nanos } from 'nats';
// Not re-exported by the package index: turns a pushed message into one that can be acked.
import { toJsMsg } from 'nats/lib/jetstream/jsmsg.js';
import type { ClusterContext } from './context.js';
import { decodeEnvelopes } from './envelope.js';
import { mqttMatches } from './mqtt-match.js';
import { filterSubjects } from './subjects.js';

const SWEEP_MS = 100;
const RETRY_MS = 250;
/** How often a node checks that its group consumer still exists (recreated when it does not). */
const CHECK_MS = 10_000;
/** A message no local member could take waits this long before JetStream offers it again. */
const NAK_DELAY_MS = 200;

/**
 * One JetStream message (a batch of messages one node routed for one topic, envelope.ts) and
 * what is still open of it: acked once every message in it is settled, nak'ed as a whole when
 * one was lost (the others may then arrive twice: at least once).
 */
interface Delivery {
  m: JsMsg;
  open: number;
  /** Why it goes back to the group (nak) once settled; null: acked. */
  lost: HandBack | null;
  /** Last time JetStream heard of this message from us (delivery, or `working()`). */
  since: number;
  consumer: GroupConsumer;
}

/** Why a delivery is handed back (the label of `breakwater_cluster_shared_handed_back_total`). */
type HandBack = 'none_online' | 'no_member' | 'node_full' | 'taken_back' | 'session_ended';

/** One message of a delivery, held by a local member. */
interface Handoff {
  d: Delivery;
  session: Session;
  record: OutboxRecord;
}

/** One durable consumer (one filter subject of one group) and this node's queue subscription to it. */
class GroupConsumer {
  held = 0;
  closed = false;
  /** The consumer was found or created at least once (a member's SUBACK need not wait for it). */
  exists = false;
  readonly ready: Promise<void>;
  #resolveReady!: () => void;
  #sub: NatsSubscription | null = null;
  /** Set while this node does not listen because none of its members is online (`pause`). */
  #pause: NodeJS.Timeout | null = null;

  constructor(
    readonly owner: SharedDurable,
    readonly group: string,
    readonly filter: string,
    readonly subject: string,
    readonly name: string,
  ) {
    this.ready = new Promise((r) => {
      this.#resolveReady = r;
    });
  }

  /** Makes sure the consumer exists (now, and every `CHECK_MS`) and listens to it. */
  async run(): Promise<void> {
    const ctx = this.owner.ctx;
    while (!this.closed) {
      try {
        await ensureGroupConsumer(ctx, this.name, this.subject);
        this.exists = true;
        if (this.closed) break;
        if (this.#sub === null && this.#pause === null) {
          this.#listen();
          await ctx.nc.flush();
        }
        this.#resolveReady();
        await sleep(CHECK_MS);
      } catch (err) {
        if (this.closed) break;
        ctx.metrics.jetstreamErrors.inc({ op: 'shared' });
        ctx.logger.debug({ err, consumer: this.name }, 'shared-subscription consumer not ready; retrying');
        await sleep(RETRY_MS);
      }
    }
    this.#resolveReady();
  }

  #listen(): void {
    this.#sub = this.owner.ctx.nc.subscribe(deliverSubject(this.owner.ctx, this.name), {
      queue: this.name,
      callback: (err, m) => {
        if (err === null && m.reply) this.owner.handle(this, toJsMsg(m));
      },
    });
  }

  /**
   * The group's members here are all away: stop listening for `ms`, so that JetStream gives the
   * group's messages to the nodes that listen (a NATS queue group picks among its members with
   * no regard for what they can take: a node handing every message back would get it again and
   * again). Listening again after `ms` keeps the consumer from being removed as inactive when no
   * node has a member online (what such a node is offered meanwhile goes back).
   */
  pause(ms: number): void {
    if (this.closed || this.#pause !== null) return;
    this.#sub?.unsubscribe();
    this.#sub = null;
    this.#pause = setTimeout(() => this.resume(), ms);
    this.#pause.unref();
  }

  /** A member of the group is online here (again), or the pause is over: listen. */
  resume(): void {
    if (this.#pause === null) return;
    clearTimeout(this.#pause);
    this.#pause = null;
    if (!this.closed && this.#sub === null && this.exists) this.#listen();
  }

  stop(): void {
    this.closed = true;
    if (this.#pause !== null) clearTimeout(this.#pause);
    this.#pause = null;
    this.#sub?.unsubscribe();
    this.#sub = null;
  }
}

/** Where JetStream pushes the messages of the group consumer `name`. */
function deliverSubject(ctx: ClusterContext, name: string): string {
  return `${ctx.options.prefix}.shd.${name}`;
}

/** Creates the group consumer `name` unless it exists (another node created it first). */
async function ensureGroupConsumer(ctx: ClusterContext, name: string, subject: string): Promise<void> {
  const o = ctx.options;
  try {
    await ctx.jsm.consumers.info(ctx.streamName, name);
    return;
  } catch (err) {
    if (!/consumer not found|10014/i.test(String(err))) throw err;
  }
  try {
    await ctx.jsm.consumers.add(ctx.streamName, {
      durable_name: name,
      deliver_subject: deliverSubject(ctx, name),
      // A queue group: JetStream pushes each message to ONE of the nodes listening.
      deliver_group: name,
      ack_policy: AckPolicy.Explicit,
      ack_wait: nanos(o.sharedAckWaitMs),
      deliver_policy: DeliverPolicy.New,
      filter_subject: subject,
      max_ack_pending: o.sharedMaxAckPending,
      max_deliver: -1,
      inactive_threshold: nanos(o.sharedInactiveMs),
    });
  } catch (err) {
    // Another node created it meanwhile (with another configuration: refused as a duplicate);
    // theirs is the group's consumer.
    await ctx.jsm.consumers.info(ctx.streamName, name).catch(() => {
      throw err;
    });
  }
}

/** This node's QoS 1/2 shared-subscription consumers and the messages handed to local members. */
export class SharedDurable {
  readonly ctx: ClusterContext;
  readonly #consumers = new Map<string, GroupConsumer[]>();
  readonly #held = new Set<Handoff>();
  /** Group consumers being made for a member's SUBACK, by group key. */
  readonly #preparing = new Map<string, Promise<void>>();
  #sweeper: NodeJS.Timeout | null = null;
  #closed = false;
  readonly #inFlightPerNode: number;
  /** How long a node whose members are all away stops listening to a group consumer. */
  readonly #pauseMs: number;
  /** A delivery held this long is marked in progress (half the ack wait: JetStream keeps it ours). */
  readonly #markAfterMs: number;

  constructor(ctx: ClusterContext) {
    this.ctx = ctx;
    this.#inFlightPerNode = ctx.options.sharedInFlightPerNode;
    this.#pauseMs = Math.min(ctx.options.sharedAckWaitMs, ctx.options.sharedInactiveMs / 4);
    this.#markAfterMs = ctx.options.sharedAckWaitMs / 2;
  }

  /** The first local member of `$share/<group>/<filter>` subscribed. */
  add(key: string, group: string, filter: string): void {
    if (this.#closed || this.#consumers.has(key)) return;
    const prefix = this.ctx.options.prefix;
    const consumers = filterSubjects(prefix, filter, '1').map(
      (subject) =>
        new GroupConsumer(this, group, filter, subject, consumerName(prefix, group, filter, subject)),
    );
    this.#consumers.set(key, consumers);
    for (const c of consumers) void c.run();
  }

  /**
   * A QoS 1/2 member of `$share/<group>/<filter>` is about to subscribe on this node: resolves once
   * the group's consumers exist in JetStream (found, or created by this call), so that what is
   * published from then on is the group's, even before this node listens (JetStream keeps it
   * for the consumer). Rejects when they cannot be made within about `requestTimeoutMs` (logged,
   * counted as a JetStream error `shared_subscribe`). Null when this node found them already.
   */
  ready(key: string, group: string, filter: string): Promise<void> | null {
    if (this.#closed) return Promise.reject(new Error('the cluster is closed'));
    this.memberOnline(key);
    if (this.#consumers.get(key)?.every((c) => c.exists) === true) return null;
    const pending = this.#preparing.get(key);
    if (pending !== undefined) return pending;
    const ctx = this.ctx;
    const prefix = ctx.options.prefix;
    const made = Promise.all(
      filterSubjects(prefix, filter, '1').map((subject) =>
        withRetries(ctx.options.requestTimeoutMs, () =>
          ensureGroupConsumer(ctx, consumerName(prefix, group, filter, subject), subject),
        ),
      ),
    ).then(
      () => {
        this.#preparing.delete(key);
      },
      (err: unknown) => {
        this.#preparing.delete(key);
        ctx.metrics.jetstreamErrors.inc({ op: 'shared_subscribe' });
        ctx.logger.warn(
          { err, group, filter },
          'shared-subscription group consumer not made: subscription refused',
        );
        throw err;
      },
    );
    this.#preparing.set(key, made);
    return made;
  }

  /** A member of the group `key` is online on this node: its consumers listen (again). */
  memberOnline(key: string): void {
    const consumers = this.#consumers.get(key);
    if (consumers !== undefined) for (const c of consumers) c.resume();
  }

  /**
   * The last local member left: stop listening. What was handed to members is settled as usual (a
   * member that unsubscribed still completes the flows in flight).
   */
  remove(key: string): void {
    const consumers = this.#consumers.get(key);
    if (consumers === undefined) return;
    this.#consumers.delete(key);
    for (const c of consumers) c.stop();
  }

  /** Resolves when every group consumer wanted so far exists and this node listens to it. */
  async settled(): Promise<void> {
    await Promise.all([...this.#consumers.values()].flat().map((c) => c.ready));
  }

  /** Messages handed to local members and not settled yet (tests, diagnostics). */
  get unsettled(): number {
    return this.#held.size;
  }

  /**
   * Stops listening; what local members hold is nak'ed so that another member gets it now rather
   * than after the ack wait (a member here may still complete it: at least once).
   */
  close(): void {
    this.#closed = true;
    for (const key of [...this.#consumers.keys()]) this.remove(key);
    for (const d of new Set([...this.#held].map((h) => h.d))) d.m.nak();
    this.#held.clear();
    if (this.#sweeper !== null) clearInterval(this.#sweeper);
    this.#sweeper = null;
  }

  handle(c: GroupConsumer, m: JsMsg): void {
    const ctx = this.ctx;
    let msgs: Message[];
    try {
      msgs = decodeEnvelopes(m.data);
    } catch {
      m.term();
      return;
    }
    if (c.closed || c.held >= this.#inFlightPerNode) {
      // No member here any more, or this node's members hold enough: another member may take it.
      this.#handBack(m, c.closed ? 'no_member' : 'node_full', NAK_DELAY_MS);
      return;
    }
    const d: Delivery = { m, open: 0, lost: null, since: Date.now(), consumer: c };
    let taken = 0;
    for (const msg of msgs) {
      // NATS wildcards match more than MQTT's (`#` never matches a `$` topic): no member anywhere
      // takes it.
      if (!mqttMatches(c.filter, msg.topic)) continue;
      // Only to a member whose client is here: one queued in the session of a member that is away
      // would be lost with this node, and missed if the client comes back on another node.
      const to = ctx.host().routeShared(msg, c.group, c.filter, true);
      if (to === 'away') {
        // Every member here is away: the delivery goes back, for a member online elsewhere (or
        // one of these once back), and this node stops listening meanwhile.
        d.lost = 'none_online';
        c.pause(this.#pauseMs);
        break;
      }
      if (to === null) {
        // No local member could take it (none left, or every queue full): the delivery goes
        // back, for another member to take.
        d.lost = 'no_member';
        break;
      }
      taken++;
      // Delivered at QoS 0 (the member's granted QoS): done once sent.
      if (to.record === null) continue;
      this.#held.add({ d, session: to.session, record: to.record });
      d.open++;
    }
    if (taken > 0)
      ctx.metrics.received.inc({ kind: m.info.redelivered ? 'shared_redelivered' : 'shared' }, taken);
    if (d.open === 0) {
      if (d.lost !== null) this.#handBack(m, d.lost, NAK_DELAY_MS);
      else m.ack();
      return;
    }
    c.held++;
    if (this.#sweeper === null) {
      this.#sweeper = setInterval(() => this.#sweep(), SWEEP_MS);
      this.#sweeper.unref();
    }
  }

  #handBack(m: JsMsg, why: HandBack, delayMs: number): void {
    this.ctx.metrics.sharedHandedBack.inc({ reason: why });
    if (delayMs > 0) m.nak(delayMs);
    else m.nak();
  }

  #sweep(): void {
    const now = Date.now();
    const marked = new Set<Delivery>();
    for (const h of this.#held) {
      const d = h.d;
      const due = now - d.since >= this.#markAfterMs;
      const state = flowState(h, due, this.ctx.host());
      if (state === 'held') {
        if (due && !marked.has(d)) {
          marked.add(d);
          d.m.working(); // still with a live member here: not to be redelivered
        }
        continue;
      }
      if (state !== 'done') d.lost = state;
      this.#held.delete(h);
      if (--d.open === 0) {
        if (d.lost !== null) this.#handBack(d.m, d.lost, 0);
        else d.m.ack();
        d.consumer.held--;
      }
    }
    for (const d of marked) d.since = now;
    if (this.#held.size === 0 && this.#sweeper !== null) {
      clearInterval(this.#sweeper);
      this.#sweeper = null;
    }
  }
}

/**
 * Where a member's QoS 1/2 flow stands: `held` (in flight or queued), `done` (completed, or
 * dropped under the broker's own rules), `session_ended` (with it), `taken_back` (its client went
 * away and it was taken back). A queued record is looked up in the queue only when `thorough`
 * (O(queue length)); until then it is presumed held.
 */
function flowState(
  h: Handoff,
  thorough: boolean,
  host: ClusterHost,
): 'held' | 'done' | 'session_ended' | 'taken_back' {
  const { session: s, record: r } = h;
  if (s.ended) return 'session_ended';
  // The client of a persistent session went away: what it was not sent, or a QoS 1 it did not
  // acknowledge, is taken back from the session and goes to another member (MQTT 5.0 §4.8.2), or
  // to this one when it is back, wherever. A QoS 2 flow under way stays with it (exactly once),
  // settled as on a single node rather than holding the group's unacked budget meanwhile.
  if (s.conn === null) return host.withdrawShared(s, r) ? 'taken_back' : 'done';
  if (r.packetId !== null && s.inflight?.get(r.packetId) === r) return 'held';
  if (r.state !== 'queued') return 'done';
  if (!thorough) return 'held';
  return s.queue?.items.includes(r) === true ? 'held' : 'done';
}

/** The durable's name: the same on every node for one (group, filter, subject). */
function consumerName(prefix: string, group: string, filter: string, subject: string): string {
  const h = createHash('sha1').update(`${prefix}\u0000${group}\u0000${filter}\u0000${subject}`);
  return `bws_${h.digest('hex').slice(0, 24)}`;
}

/** Runs `op`, again after `RETRY_MS` while it fails and `ms` has not passed since the start. */
async function withRetries(ms: number, op: () => Promise<void>): Promise<void> {
  const until = Date.now() + ms;
  for (;;) {
    try {
      return await op();
    } catch (err) {
      if (Date.now() + RETRY_MS >= until) throw err;
      await sleep(RETRY_MS);
    }
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
