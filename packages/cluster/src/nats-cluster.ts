/**
 * N broker processes as one logical broker over NATS JetStream (issue 15). One `NatsCluster` per
 * broker process implements the broker's `ClusterSeam` (cluster-seam.ts in @breakwater/broker):
 *
 * - live routing of QoS 0 over core NATS: a message published on this node goes to
 *   `<prefix>.0.<levels>` (subjects.ts); every distinct local filter is ONE NATS subscription
 *   (reference-counted), and what it receives goes to the local subscriptions of that filter only,
 *   re-checked by the MQTT matcher (router.ts `routeRemote`);
 * - QoS 1/2 through JetStream: the publish goes to `<prefix>.1.<levels>`, captured by the
 *   `<PREFIX>_MSGS` stream, and the PUBACK waits for the stream's ack (`flush()`, wired into the
 *   broker's durable acks). Each node reads the stream with ONE supervised pull consumer (the
 *   durable feed) and routes what other nodes published through its own subscription tree. Core
 *   delivery would be faster, but a NATS server that dies takes the messages on its routes with
 *   it, acked or not; the feed resumes after the last sequence it saw, so an acknowledged
 *   message reaches every online subscriber whatever NATS server fails. The price: every node
 *   reads every QoS 1/2 message (nats-server 2.9 has one filter per consumer; with 2.10's
 *   multi-filter consumers the feed could follow the node's distinct filters instead);
 * - ownership of client ids (ownership.ts), retained messages (retained-sync.ts), wills and
 *   heartbeats (liveness.ts) in JetStream KV buckets, followed by supervised watches
 *   (kv-watcher.ts);
 * - shared subscriptions: QoS 0 through NATS queue groups (one member cluster-wide gets each
 *   message, at most once); QoS 1/2 through one durable JetStream consumer per group and filter,
 *   that every node with a member listens to, acked when the member completed the flow, so a
 *   message held by a member whose node dies goes to another member (shared-durable.ts).
 *
 * NATS connections: routing with echo off (a node never receives what it forwarded itself:
 * it routed it locally already), and queue groups with echo on (the member picked may be on the
 * publishing node). QoS 0 routing is spread over `liveConnections` connections by topic: shard k
 * is published and subscribed on connection k only (the first is the main one), so echo stays
 * off and one topic stays in order, while a node receiving a flood reads k sockets per turn and
 * NATS holds up to k × max_pending for it before calling it a slow consumer.
 */
import { createHash, randomBytes } from 'node:crypto';
import type {
  ClaimResult,
  ClusterBinding,
  ClusterHost,
  ClusterSeam,
  Message,
  RetainedRecord,
  Session,
  Will,
} from '@breakwater/broker';
import {
  connect,
  DiscardPolicy,
  Events,
  type JetStreamClient,
  type JetStreamManager,
  type KV,
  type NatsConnection,
  type Subscription as NatsSubscription,
  RetentionPolicy,
  StorageType,
} from 'nats';
import { type Logger, pino } from 'pino';
import type { ClusterContext, HealthListener } from './context.js';
import { DurableFeed } from './durable-feed.js';
import { decodeEnvelopes, EnvelopeBatch, envelopeCount } from './envelope.js';
import { KnownGoodSync, type SharedKnownGoodStore } from './known-good-sync.js';
import { Liveness } from './liveness.js';
import { ClusterMetrics } from './metrics.js';
import { type ClusterOptions, defaultClusterOptions } from './options.js';
import { Ownership } from './ownership.js';
import { RetainedSync } from './retained-sync.js';
import { SharedDurable } from './shared-durable.js';
import { filterSubjects, liveToken, publishSubject, topicShard } from './subjects.js';

const FAILED = Symbol('failed');
/** A batch this large is sent at once rather than at the end of the turn (NATS's max_payload is 1 MiB). */
const BATCH_BYTES = 64 * 1024;

function sendBatches(cluster: NatsCluster): void {
  cluster.sendBatches();
}

interface FilterSub {
  refs: number;
  subs: NatsSubscription[];
}

export class NatsCluster implements ClusterBinding, ClusterSeam, ClusterContext {
  readonly options: Readonly<ClusterOptions>;
  readonly logger: Logger;
  readonly metrics: ClusterMetrics;
  readonly nc: NatsConnection;
  /** QoS 0 shard connections: `nc`, then the extra ones (`liveConnections`). */
  readonly #live: NatsConnection[];
  readonly js: JetStreamClient;
  readonly jsm: JetStreamManager;
  readonly streamName: string;
  readonly ownership: Ownership;
  readonly retained: RetainedSync;
  readonly liveness: Liveness;
  #sharedNc: NatsConnection | null = null;
  #host: ClusterHost | null = null;
  readonly #filters = new Map<string, FilterSub>();
  readonly #shared = new Map<string, FilterSub>();
  #pending: Promise<unknown>[] = [];
  readonly #feed: DurableFeed;
  readonly #sharedDurable: SharedDurable;
  #lastFlush: Promise<void> = Promise.resolve();
  #closed = false;
  /** Messages routed this turn, per topic, not yet sent: QoS 0 and QoS 1/2. */
  readonly #liveBatches = new Map<string, EnvelopeBatch>();
  readonly #durableBatches = new Map<string, EnvelopeBatch>();
  #sendScheduled = false;
  readonly #forwardedLive: { inc(n: number): void };
  readonly #forwardedQos1: { inc(n: number): void };
  readonly #forwardedQos2: { inc(n: number): void };
  readonly #receivedLive: { inc(n: number): void };
  #knownGood: KnownGoodSync | null = null;
  readonly #knownGoodKv: KV;

  private constructor(
    options: ClusterOptions,
    nc: NatsConnection,
    jsm: JetStreamManager,
    kvs: { sessions: KV; retained: KV; wills: KV; fired: KV; nodes: KV; knownGood: KV },
    extraLive: NatsConnection[],
  ) {
    this.options = Object.freeze({ ...options });
    this.logger = options.logger ?? pino({ level: 'silent' });
    this.metrics = new ClusterMetrics(options.registry);
    // Label lookups hash their label object: bound once, not per message.
    this.#forwardedLive = this.metrics.forwarded.labels('0');
    this.#forwardedQos1 = this.metrics.forwarded.labels('1');
    this.#forwardedQos2 = this.metrics.forwarded.labels('2');
    this.#receivedLive = this.metrics.received.labels('live');
    this.nc = nc;
    this.#live = [nc, ...extraLive];
    this.js = nc.jetstream({ timeout: options.requestTimeoutMs });
    this.jsm = jsm;
    this.streamName = `${options.prefix.toUpperCase()}_MSGS`;
    this.ownership = new Ownership(this, kvs.sessions);
    this.retained = new RetainedSync(this, kvs.retained);
    this.#feed = new DurableFeed(this);
    this.#sharedDurable = new SharedDurable(this);
    this.#knownGoodKv = kvs.knownGood;
    this.liveness = new Liveness(this, kvs.nodes, kvs.wills, kvs.fired, this.ownership);
  }

  /**
   * Connects to NATS and makes sure the stream and buckets exist (created on first use; an
   * existing one is used as it is). Throws when NATS or JetStream cannot be reached.
   */
  static async connect(
    opts: Partial<ClusterOptions> & Pick<ClusterOptions, 'servers'>,
  ): Promise<NatsCluster> {
    const options: ClusterOptions = {
      ...defaultClusterOptions,
      nodeId: `n${randomBytes(6).toString('hex')}`,
      ...opts,
    };
    const name = `breakwater ${options.nodeId}`;
    const routing = (connName: string) =>
      connect({
        servers: options.servers,
        name: connName,
        noEcho: true,
        ignoreClusterUpdates: !options.discoverServers,
        maxReconnectAttempts: -1,
        reconnectTimeWait: 250,
        timeout: options.requestTimeoutMs,
        pingInterval: 2000,
        maxPingOut: 2,
      });
    const nc = await routing(name);
    const extraLive: NatsConnection[] = [];
    try {
      for (let k = 1; k < options.liveConnections; k++) extraLive.push(await routing(`${name} live ${k}`));
      const jsm = await nc.jetstreamManager({ timeout: options.requestTimeoutMs });
      const p = options.prefix;
      const replicas = options.replicas;
      await whileForming(() =>
        ensureStream(jsm, {
          name: `${p.toUpperCase()}_MSGS`,
          subjects: [`${p}.1.>`],
          retention: RetentionPolicy.Limits,
          storage: StorageType.File,
          discard: DiscardPolicy.Old,
          max_age: options.streamMaxAgeSec * 1e9,
          num_replicas: replicas,
        }),
      );
      const js = nc.jetstream({ timeout: options.requestTimeoutMs });
      const kv = (bucket: string, extra: { ttl?: number } = {}) =>
        whileForming(() =>
          js.views.kv(`${p}_${bucket}`, {
            replicas,
            history: 1,
            timeout: options.requestTimeoutMs,
            ...extra,
          }),
        );
      const kvs = {
        sessions: await kv('sessions'),
        retained: await kv('retained'),
        wills: await kv('wills'),
        // Markers of fired wills (create = exactly once); an hour is far longer than any race.
        fired: await kv('fired', { ttl: 3600_000 }),
        nodes: await kv('nodes', { ttl: Math.max(60_000, options.deadAfterMs * 10) }),
        // Known-good credentials: as long as the guard's longest stale-if-error horizon (24 h).
        knownGood: await kv('known_good', { ttl: 24 * 3600_000 }),
      };
      return new NatsCluster(options, nc, jsm, kvs, extraLive);
    } catch (err) {
      for (const c of extraLive) await c.close().catch(() => {});
      await nc.close().catch(() => {});
      throw err;
    }
  }

  /** Name of the consumer the durable feed reads with now, or null between two (tests, diagnostics). */
  get feedConsumer(): string | null {
    return this.#feed.consumerName;
  }

  get nodeId(): string {
    return this.options.nodeId;
  }

  /** NATS connected and JetStream answering (readiness). */
  get healthy(): boolean {
    return this.liveness.healthy;
  }

  /** Cut off from NATS for longer than `isolateAfterMs`: clients were told to go elsewhere. */
  get isolated(): boolean {
    return this.liveness.isolated;
  }

  /** Another live node's MQTT address, for redirects (MQTT 5 Server Reference), or null. */
  otherNodeAddress(): string | null {
    return this.liveness.otherNodeAddress();
  }

  /**
   * Share the guard's known-good store with the cluster (issue 15): confirmations made here are
   * published, those made elsewhere (and every one already shared) are stored here. Resolves once
   * this node is warmed with what the bucket holds.
   */
  async shareKnownGood(store: SharedKnownGoodStore): Promise<KnownGoodSync> {
    if (this.#knownGood !== null) throw new Error('known-good store already shared');
    const sync = new KnownGoodSync(this, this.#knownGoodKv, store);
    this.#knownGood = sync;
    await sync.start();
    return sync;
  }

  /** This node's MQTT address for redirects by the other nodes (sent with the heartbeats). */
  setAdvertise(address: string | null): void {
    this.liveness.advertise = address;
  }

  onHealthChange(listener: HealthListener): void {
    this.liveness.onHealthChange(listener);
  }

  host(): ClusterHost {
    if (this.#host === null) throw new Error('cluster is not attached to a broker');
    return this.#host;
  }

  /** ClusterBinding: the broker's constructor hands itself over. */
  attach(host: ClusterHost): ClusterSeam {
    if (this.#host !== null) throw new Error('cluster already attached to a broker');
    this.#host = host;
    return this;
  }

  /**
   * Loads the retained messages (before the node accepts clients, so every retained message is
   * visible from the first SUBSCRIBE), starts the ownership watch, heartbeats and will duty.
   */
  async start(): Promise<void> {
    this.host();
    await this.retained.start();
    await this.ownership.start();
    await this.#feed.start();
    await this.liveness.start();
    void this.#watchStatus();
    for (let k = 1; k < this.#live.length; k++) void this.#watchLiveStatus(this.#live[k]!);
  }

  /**
   * Leaves the cluster: this node's pending wills are withdrawn (a shutdown publishes no will, as
   * on a single node), its heartbeat removed, and the NATS connections drained.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.flush().catch(() => {});
    await this.liveness.close();
    this.#feed.close();
    this.#sharedDurable.close();
    await Promise.all([this.ownership.close(), this.retained.close(), this.#knownGood?.close()]);
    await this.#sharedNc?.drain().catch(() => {});
    for (let k = 1; k < this.#live.length; k++) await this.#live[k]!.drain().catch(() => {});
    await this.nc.drain().catch(() => {});
  }

  // --- routing -----------------------------------------------------------------------------

  forward(msg: Message): boolean {
    const durable = msg.qos > 0;
    const batches = durable ? this.#durableBatches : this.#liveBatches;
    let batch = batches.get(msg.topic);
    if (batch === undefined) {
      batch = new EnvelopeBatch(msg.topic, this.options.nodeId);
      batches.set(msg.topic, batch);
      if (!this.#sendScheduled) {
        this.#sendScheduled = true;
        setImmediate(sendBatches, this);
      }
    }
    batch.add(msg);
    if (batch.byteLength >= BATCH_BYTES) {
      batches.delete(msg.topic);
      this.#send(batch, durable);
    }
    return durable;
  }

  /**
   * Sends every batch collected since the last call: QoS 0 on core NATS, QoS 1/2 to the stream
   * (tracked for the next flush()). Runs once per event-loop turn in which something was
   * forwarded, and from flush(), so a PUBACK never waits for a turn to end.
   */
  sendBatches(): void {
    this.#sendScheduled = false;
    if (this.#liveBatches.size > 0) {
      for (const batch of this.#liveBatches.values()) this.#send(batch, false);
      this.#liveBatches.clear();
    }
    if (this.#durableBatches.size > 0) {
      for (const batch of this.#durableBatches.values()) this.#send(batch, true);
      this.#durableBatches.clear();
    }
  }

  #send(batch: EnvelopeBatch, durable: boolean): void {
    if (!durable) {
      this.#forwardedLive.inc(batch.count);
      const shard = topicShard(batch.topic, this.#live.length);
      const conn = this.#live[shard]!;
      if (!conn.isClosed())
        conn.publish(publishSubject(this.options.prefix, false, batch.topic, shard), batch.bytes());
      return;
    }
    const subject = publishSubject(this.options.prefix, true, batch.topic);
    if (batch.qos2Count > 0) this.#forwardedQos2.inc(batch.qos2Count);
    if (batch.count > batch.qos2Count) this.#forwardedQos1.inc(batch.count - batch.qos2Count);
    this.track(this.js.publish(subject, batch.bytes()));
  }

  track(p: Promise<unknown>): void {
    this.#pending.push(p.then(undefined, (err: unknown) => this.#failed(err)));
  }

  #failed(err: unknown): typeof FAILED {
    this.metrics.jetstreamErrors.inc({ op: 'publish' });
    this.logger.warn({ err }, 'JetStream write failed');
    return FAILED;
  }

  /**
   * Resolves when every JetStream write tracked before the call is acknowledged; rejects when one
   * failed (the broker then closes the connections whose acks waited: their clients resend).
   * Flushes complete in call order, as the broker's durable acks expect of generations.
   */
  flush(): Promise<void> {
    this.sendBatches();
    const list = this.#pending;
    this.#pending = [];
    const prev = this.#lastFlush.catch(() => {});
    const p = Promise.all([prev, ...list]).then((results) => {
      for (let i = 1; i < results.length; i++) {
        if (results[i] === FAILED) throw new Error('a JetStream write failed');
      }
    });
    this.#lastFlush = p;
    return p;
  }

  filterAdded(filter: string, shareGroup: string | null): void {
    if (shareGroup !== null) {
      this.#addShared(filter, shareGroup);
      return;
    }
    const entry = this.#filters.get(filter);
    if (entry !== undefined) {
      entry.refs++;
      return;
    }
    // QoS 0 only: QoS 1/2 arrive through the durable feed. Each shard on its own connection.
    const subs: NatsSubscription[] = [];
    const callback = (err: Error | null, m: { data: Uint8Array }) => {
      if (err !== null) return;
      this.#onRemote(m.data, filter);
    };
    for (const [k, conn] of this.#live.entries()) {
      for (const subject of filterSubjects(this.options.prefix, filter, liveToken(k)))
        subs.push(conn.subscribe(subject, { callback }));
    }
    this.#filters.set(filter, { refs: 1, subs });
    this.metrics.natsSubscriptions.set(this.#filters.size + this.#shared.size);
  }

  sharedGroupReady(filter: string, shareGroup: string): Promise<void> | null {
    return this.#sharedDurable.ready(sharedKey(shareGroup, filter), shareGroup, filter);
  }

  filterRemoved(filter: string, shareGroup: string | null): void {
    const map = shareGroup === null ? this.#filters : this.#shared;
    const key = shareGroup === null ? filter : sharedKey(shareGroup, filter);
    const entry = map.get(key);
    if (entry === undefined) return;
    if (--entry.refs > 0) return;
    map.delete(key);
    for (const s of entry.subs) s.unsubscribe();
    if (shareGroup !== null) this.#sharedDurable.remove(key);
    this.metrics.natsSubscriptions.set(this.#filters.size + this.#shared.size);
  }

  #onRemote(data: Uint8Array, filter: string): void {
    const host = this.#host!;
    if (!host.admitRemote()) {
      host.droppedRemote(envelopeCount(data));
      return;
    }
    let msgs: Message[];
    try {
      msgs = decodeEnvelopes(data);
    } catch (err) {
      this.logger.warn({ err }, 'undecodable cluster message dropped');
      return;
    }
    this.#receivedLive.inc(msgs.length);
    for (const msg of msgs) host.routeRemote(msg, filter);
  }

  #addShared(filter: string, group: string): void {
    const key = sharedKey(group, filter);
    const entry = this.#shared.get(key);
    if (entry !== undefined) {
      entry.refs++;
      return;
    }
    const created: FilterSub = { refs: 1, subs: [] };
    this.#shared.set(key, created);
    this.metrics.natsSubscriptions.set(this.#filters.size + this.#shared.size);
    // QoS 1/2: the group's durable consumers (redelivered when a member's node dies).
    this.#sharedDurable.add(key, group, filter);
    // QoS 0: a queue group per (group, filter): `$share/g/a/+` and `$share/g/a/#` are two.
    const queue = `bwq${createHash('sha1').update(key).digest('hex').slice(0, 20)}`;
    const pending = this.#sharedConnection().then(
      (nc) => {
        if (this.#shared.get(key) !== created) return; // removed meanwhile
        const subjects = this.#live.flatMap((_, k) =>
          filterSubjects(this.options.prefix, filter, liveToken(k)),
        );
        created.subs = subjects.map((subject) =>
          nc.subscribe(subject, {
            queue,
            callback: (err, m) => {
              if (err !== null) return;
              const host = this.#host!;
              if (!host.admitRemote()) {
                host.droppedRemote(envelopeCount(m.data));
                return;
              }
              let msgs: Message[];
              try {
                msgs = decodeEnvelopes(m.data);
              } catch {
                return;
              }
              this.metrics.received.inc({ kind: 'shared' }, msgs.length);
              for (const msg of msgs) host.routeShared(msg, group, filter, false);
            },
          }),
        );
      },
      (err: unknown) =>
        this.logger.error({ err }, 'cannot open the NATS connection for shared subscriptions'),
    );
    this.#subscribing.push(pending);
    void pending.finally(() => {
      this.#subscribing = this.#subscribing.filter((p) => p !== pending);
    });
  }

  /** QoS 1/2 shared-subscription messages handed to local members and not settled yet. */
  get sharedUnsettled(): number {
    return this.#sharedDurable.unsettled;
  }

  /**
   * Resolves when every NATS subscription and shared-group consumer made so far is registered
   * with the servers (tests, and the game day's start line). Route interest between servers follows within milliseconds.
   */
  async settled(): Promise<void> {
    await Promise.all(this.#subscribing);
    await this.#sharedDurable.settled();
    for (const conn of this.#live) await conn.flush();
    if (this.#sharedNc !== null) await this.#sharedNc.flush();
  }

  #subscribing: Promise<unknown>[] = [];
  #sharedPromise: Promise<NatsConnection> | null = null;
  #sharedConnection(): Promise<NatsConnection> {
    if (this.#sharedPromise === null) {
      this.#sharedPromise = connect({
        servers: this.options.servers,
        name: `breakwater ${this.options.nodeId} shared`,
        ignoreClusterUpdates: !this.options.discoverServers,
        maxReconnectAttempts: -1,
        reconnectTimeWait: 250,
      }).then((nc) => {
        this.#sharedNc = nc;
        return nc;
      });
    }
    return this.#sharedPromise;
  }

  /** A QoS 0 shard connection lost: counted (what NATS held for it is lost); health follows `nc`. */
  async #watchLiveStatus(conn: NatsConnection): Promise<void> {
    for await (const s of conn.status()) {
      if (s.type === Events.Disconnect) {
        this.metrics.natsDisconnects.inc();
        this.logger.warn({ server: s.data }, 'NATS connection (QoS 0 shard) lost');
      }
    }
  }

  async #watchStatus(): Promise<void> {
    this.metrics.natsConnected.set(1);
    for await (const s of this.nc.status()) {
      if (s.type === Events.Disconnect) {
        this.metrics.natsConnected.set(0);
        this.metrics.natsDisconnects.inc();
        this.logger.warn({ server: s.data }, 'NATS connection lost');
        this.liveness.natsDown();
      } else if (s.type === Events.Reconnect) {
        this.metrics.natsConnected.set(1);
        this.logger.info({ server: s.data }, 'NATS connection restored');
        this.liveness.natsUp();
      }
    }
  }

  // --- sessions, wills, retained: delegated ----------------------------------------------

  claim(clientId: string, clean: boolean, haveLocal: boolean): Promise<ClaimResult> {
    return this.ownership.claim(clientId, clean, haveLocal);
  }

  sessionChanged(s: Session, event: 'online' | 'offline' | 'ended' | 'subscriptions'): void {
    if (event === 'online' && s.subscriptions !== null) {
      // A member back online: the groups whose members here were all away listen again.
      for (const sub of s.subscriptions.values())
        if (sub.shareGroup !== null)
          this.#sharedDurable.memberOnline(sharedKey(sub.shareGroup, sub.topicFilter));
    }
    this.ownership.sessionChanged(s, event);
  }

  replay(s: Session, since: number): void {
    this.ownership.replay(s, since);
  }

  willArmed(clientId: string, epoch: number, will: Will): void {
    this.liveness.willArmed(clientId, epoch, will);
  }

  willDisarmed(clientId: string): void {
    this.liveness.willDisarmed(clientId);
  }

  retainedSet(rec: RetainedRecord): void {
    this.retained.set(rec);
  }

  retainedDeleted(topic: string): void {
    this.retained.delete(topic);
  }
}

function sharedKey(group: string, filter: string): string {
  return `${group}\u0000${filter}`;
}

/**
 * Retries `op` while JetStream is still forming: right after the NATS servers start, the meta
 * leader may answer before it knows enough peers to place an R3 stream ("no suitable peers for
 * placement"), or not answer yet. Up to ~15 s; any other error is thrown at once.
 */
async function whileForming<T>(op: () => Promise<T>): Promise<T> {
  for (let i = 0; ; i++) {
    try {
      return await op();
    } catch (err) {
      const msg = err instanceof Error ? err.message : String(err);
      const forming =
        /no suitable peers|insufficient resources|TIMEOUT|503|no responders|jetstream not (enabled|available)/i.test(
          msg,
        );
      if (!forming || i >= 30) throw err;
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}

async function ensureStream(
  jsm: JetStreamManager,
  cfg: Parameters<JetStreamManager['streams']['add']>[0],
): Promise<void> {
  try {
    await jsm.streams.info(cfg.name!);
  } catch {
    await jsm.streams.add(cfg);
  }
}
