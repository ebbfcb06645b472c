/**
 * The seam between the broker and a cluster (issue 15): what the broker tells a cluster, and what a
 * cluster may ask of the broker. Declared here, implemented by `@breakwater/cluster` (NATS
 * JetStream); the broker imports no cluster code. With no cluster configured the seam is null and
 * every call site is one field check, so the single-process hot path pays nothing else.
 *
 * The calls sit where the state they concern lives: routing in router.ts (`forward`), the
 * subscription index and ownership in session-registry.ts (`filterAdded/Removed`, `claim`,
 * `sessionChanged`, `willArmed/Disarmed`), retained messages in retained-store.ts
 * (`retainedSet/Deleted`), durable acknowledgements in durable-acks.ts (`flush`), the SUBACK of
 * a shared subscription in handlers/subscribe.ts (`sharedGroupReady`).
 */
import type { Message, Session, Subscription, Will } from './session.js';
import type { OutboxRecord, RetainedRecord } from './storage/types.js';

/** Ownership of a client id won by a connection on this node. */
export interface ClaimResult {
  /** Fencing token: strictly greater than every earlier claim of this client id, cluster-wide. */
  epoch: number;
  /**
   * The session another node held (persistent, not expired) when this node's copy is missing or
   * stale; null when there was none. The broker restores it, then the cluster replays what it
   * missed (`replay`).
   */
  remote: RemoteSession | null;
}

/** A persistent session as another node last described it. */
export interface RemoteSession {
  protocolVersion: number;
  expiryInterval: number;
  subscriptions: RemoteSubscription[];
  /** Epoch ms: every message published before this was delivered and acknowledged (or not due). */
  deliveredUntil: number;
}

export interface RemoteSubscription {
  filter: string;
  qos: 0 | 1 | 2;
  noLocal: boolean;
  retainAsPublished: boolean;
  retainHandling: 0 | 1 | 2;
  subscriptionId?: number;
}

/** What the broker tells its cluster. */
export interface ClusterSeam {
  /**
   * A message published on this node (client, will or server): send it to the other nodes.
   * Returns true when the forward is pending a durable acknowledgement (QoS > 0 through
   * JetStream): the caller's ack then waits for `flush()`.
   */
  forward(msg: Message): boolean;
  /** Resolves when every forward and retained write started before the call is acknowledged. */
  flush(): Promise<void>;
  /** The index gained its first subscription on `filter` (without `$share/`) for `shareGroup`. */
  filterAdded(filter: string, shareGroup: string | null): void;
  /**
   * A QoS 1/2 subscription to `$share/<shareGroup>/<filter>` is about to be installed: resolves
   * once the group takes messages cluster-wide (what is published from then on reaches one of its
   * members), rejects when that cannot be arranged (the SUBACK then refuses the subscription).
   * Null when it is so already (another member on this node): nothing to wait for.
   */
  sharedGroupReady(filter: string, shareGroup: string): Promise<void> | null;
  /** The index lost its last subscription on `filter` for `shareGroup`. */
  filterRemoved(filter: string, shareGroup: string | null): void;
  /**
   * A connection on this node wants `clientId`. Resolves when this node owns it; other nodes kick
   * their connection with that id (0x8E) and drop their copy of the session.
   * `haveLocal`: this node still holds the session from its own last epoch (no restore needed).
   */
  claim(clientId: string, clean: boolean, haveLocal: boolean): Promise<ClaimResult>;
  /** The session of `clientId` went offline, ended, or changed subscriptions on this node. */
  sessionChanged(s: Session, event: 'online' | 'offline' | 'ended' | 'subscriptions'): void;
  /** Deliver to `s` what was published since `since` on its filters (resume from another node). */
  replay(s: Session, since: number): void;
  /** A will is armed for the connection of `clientId` (fired by a survivor if this node dies). */
  willArmed(clientId: string, epoch: number, will: Will): void;
  /** The will of `clientId` is no longer pending on this node (fired, cancelled, taken over). */
  willDisarmed(clientId: string): void;
  /** Retained message set on this node (the write is covered by the next `flush()`). */
  retainedSet(rec: RetainedRecord): void;
  retainedDeleted(topic: string): void;
}

/**
 * Where a shared-subscription message went on this node. For a QoS 1/2 delivery `record` is the
 * member's outbox record: the flow is complete once the record has left the session's in-flight
 * map and queue (PUBACK, PUBCOMP, or dropped by expiry/overflow), and lost if the session ends
 * first. Null for a QoS 0 delivery (done when sent).
 */
export interface SharedHandoff {
  session: Session;
  record: OutboxRecord | null;
}

/** What a cluster may ask of the broker (implemented by `Broker`). */
export interface ClusterHost {
  /**
   * A message from another node, received on the NATS subscription of `filter`: route it to the
   * local subscriptions on that filter only; `null`: to every matching local subscription (one
   * copy per session). Never forwarded again.
   */
  routeRemote(msg: Message, filter: string | null): void;
  /**
   * QoS 0 arrived from another node (core NATS, no flow control): true to route it, false when
   * this event-loop turn's budget for it is spent (intake-budget.ts). Then the cluster drops it
   * and reports it (`droppedRemote`): reading on and dropping keeps the node's NATS connection
   * drained, where not reading would get it closed as a slow consumer (and everything NATS held
   * for it lost, uncounted).
   */
  admitRemote(): boolean;
  /** `count` QoS 0 messages from another node dropped because `admitRemote` refused them. */
  droppedRemote(count: number): void;
  /**
   * A message for one shared group on this node (a NATS queue group or the group's JetStream
   * consumer picked this node). Returns the member it went to, or null when no local member took
   * it (none left, or every queue full): the cluster then lets another member have it.
   * `onlineOnly`: a member whose client is away does not take it (it is not queued in its
   * session); 'away' when the group's members here are all away.
   */
  routeShared(
    msg: Message,
    shareGroup: string,
    filter: string,
    onlineOnly: boolean,
  ): SharedHandoff | 'away' | null;
  /**
   * The client of `s` went away holding `rec` (a shared-subscription handoff): takes it back from
   * the session when it is still queued or a QoS 1 PUBLISH not acknowledged — true, and the
   * cluster offers it to another member. False when it stays with the session (a QoS 2 flow under
   * way, or no longer held).
   */
  withdrawShared(s: Session, rec: OutboxRecord): boolean;
  /** A retained message changed on another node: update the local index only. */
  applyRetained(topic: string, rec: RetainedRecord | null): void;
  /**
   * `clientId` was claimed elsewhere with `epoch`: a local connection with an older epoch gets
   * 0x8E and its session copy is dropped (no will: the session lives on at the new owner).
   */
  ownershipLost(clientId: string, epoch: number): void;
  /** Publish a will on behalf of a dead node (authorization, retained, routing, forwarding). */
  publishWill(clientId: string, will: Will): void;
  /** Deliver one replayed message to the session of `clientId` through `sub` (resume). */
  deliverReplayed(s: Session, msg: Message, sub: Subscription): void;
}

/** Binds a cluster to a broker once the broker exists (Broker's constructor calls it). */
export interface ClusterBinding {
  attach(host: ClusterHost): ClusterSeam;
}

/** The broker's constructor option (kept out of options.ts, which the data modules import). */
export interface ClusterOption {
  /**
   * Scale-out (issue 15): N brokers as one logical broker (`@breakwater/cluster` over NATS
   * JetStream). Omitted: a single node, and the engine's cluster checks cost one null test each.
   */
  cluster?: ClusterBinding;
}
