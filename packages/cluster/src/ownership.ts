/**
 * Who owns a client id, cluster-wide (issue 15), in the `<prefix>_sessions` KV bucket: one key per
 * client id, whose value says which node and connection own it and — for a persistent session —
 * how to restore it elsewhere (subscriptions, expiry, and the watermark to replay from).
 *
 * The epoch is the KV revision of the claim write: unique and strictly increasing cluster-wide, so
 * it fences without a compare-and-set. This matters on nats-server 2.9: a replicated (R3) stream
 * does not serialise `Nats-Expected-Last-Subject-Sequence` checks of concurrent writes
 * (nats-server#4320, fixed in later releases), so `kv.update()` races can let two writers both
 * "win". Here the last claim wins, and every node watches the bucket: a node whose connection
 * holds an older epoch kicks it with 0x8E and drops its copy. Exactly one owner remains once the
 * watch has caught up (a few ms), whatever the order claims land in.
 *
 * Delivery watermark (`since`): every QoS 1/2 message published before it was delivered to the
 * client and acknowledged, or was not for it. A node that restores a session from another node
 * replays the message stream from there (duplicates are possible, losses are not: QoS 1 is
 * at-least-once; a QoS 2 delivery that was in flight when its node died may be sent twice).
 */
import { randomBytes } from 'node:crypto';
import type { ClaimResult, Message, RemoteSession, RemoteSubscription, Session } from '@breakwater/broker';
import type { KV } from 'nats';
import type { ClusterContext } from './context.js';
import { decodeEnvelopes } from './envelope.js';
import { type KvWatchEntry, KvWatcher } from './kv-watcher.js';
import { mqttMatches } from './mqtt-match.js';
import { readToEnd } from './stream-reader.js';
import { clientKey, decodeLevel, filterSubjects } from './subjects.js';

/** The value under a client id's key. */
export interface SessionRecord {
  /** Owner node. */
  n: string;
  /** Connection nonce of the claim (tells a node's own claim from another's). */
  c: string;
  /** Epoch; 0 in the claim write itself (the epoch is that write's revision). */
  e: number;
  /** Online. */
  on: boolean;
  /** Persistent (expiry > 0). */
  p: boolean;
  /** Protocol version. */
  v: number;
  /** Session Expiry Interval, s. */
  x: number;
  /** Delivery watermark, epoch ms. */
  since: number;
  /** Went offline at, epoch ms, or null. */
  off: number | null;
  subs: RemoteSubscription[];
}

interface Owned {
  epoch: number;
  nonce: string;
  /** Revision of our last write (conditional updates). */
  rev: number;
  since: number;
  session: Session | null;
}

const NEVER_EXPIRES = 0xffffffff;

export class Ownership {
  readonly #ctx: ClusterContext;
  readonly #kv: KV;
  /** Client ids this node owns (online or holding the offline session). */
  readonly #owned = new Map<string, Owned>();
  /** Newest epoch seen for client ids with a claim in flight here. */
  readonly #fence = new Map<string, number>();
  readonly #claiming = new Map<string, number>();
  /**
   * Nonces of this node's claims whose write is not acknowledged yet. The watch may deliver such a
   * write before its put resolves: it is ours, not a takeover of the session this node still holds
   * (seen: a persistent session resuming on the node that held it was dropped, session present 0).
   */
  readonly #ownWrites = new Set<string>();
  readonly #writing = new Set<string>();
  readonly #dirty = new Set<string>();
  readonly #watch: KvWatcher;

  constructor(ctx: ClusterContext, kv: KV) {
    this.#ctx = ctx;
    this.#kv = kv;
    this.#watch = new KvWatcher(
      ctx,
      {
        bucket: `${ctx.options.prefix}_sessions`,
        include: 'updates-only',
        ignoreDeletes: true,
        what: 'sessions',
      },
      (e) => this.#onEntry(e),
    );
  }

  start(): Promise<void> {
    return this.#watch.start();
  }

  close(): Promise<void> {
    return this.#watch.stop();
  }

  /** The consumer the session watch reads with now (tests, diagnostics). */
  get watchConsumer(): string | null {
    return this.#watch.consumerName;
  }

  /** The client ids this node owns now, with their epochs (tests, admin). */
  ownedEpoch(clientId: string): number {
    return this.#owned.get(clientId)?.epoch ?? 0;
  }

  async claim(clientId: string, clean: boolean, haveLocal: boolean): Promise<ClaimResult> {
    const key = clientKey(clientId);
    this.#claiming.set(clientId, (this.#claiming.get(clientId) ?? 0) + 1);
    try {
      // A clean start needs nothing of the previous owner: one write, no read.
      const prevEntry = clean ? null : await this.#kv.get(key);
      const prev = prevEntry !== null && prevEntry.operation === 'PUT' ? parseRecord(prevEntry) : null;
      const now = Date.now();
      const mine = this.#owned.get(clientId);
      let remote: RemoteSession | null = null;
      let since = now;
      if (!clean && prev !== null && prev.p && !expired(prev, now)) {
        const localIsCurrent =
          haveLocal &&
          mine !== undefined &&
          prev.n === this.#ctx.options.nodeId &&
          (prev.e || prevEntry!.revision) === mine.epoch;
        since = prev.since;
        if (!localIsCurrent) {
          remote = {
            protocolVersion: prev.v,
            expiryInterval: prev.x,
            subscriptions: prev.subs,
            deliveredUntil: prev.since - this.#ctx.options.replaySlackMs,
          };
        }
      }
      const nonce = randomBytes(6).toString('hex');
      const rec: SessionRecord = {
        n: this.#ctx.options.nodeId,
        c: nonce,
        e: 0,
        on: true,
        p: remote !== null || (prev?.p ?? false),
        v: remote?.protocolVersion ?? prev?.v ?? 4,
        x: remote?.expiryInterval ?? prev?.x ?? 0,
        since,
        off: null,
        subs: remote?.subscriptions ?? prev?.subs ?? [],
      };
      this.#ownWrites.add(nonce);
      let rev: number;
      try {
        rev = await this.#kv.put(key, JSON.stringify(rec));
      } finally {
        this.#ownWrites.delete(nonce);
      }
      const fence = this.#fence.get(clientId) ?? 0;
      this.#owned.set(clientId, { epoch: rev, nonce, rev, since, session: null });
      this.#ctx.metrics.claims.inc({
        result: fence > rev ? 'superseded' : remote !== null ? 'restored' : 'ok',
      });
      return { epoch: rev, remote };
    } catch (err) {
      this.#ctx.metrics.claims.inc({ result: 'failed' });
      this.#ctx.metrics.jetstreamErrors.inc({ op: 'claim' });
      throw err;
    } finally {
      const n = (this.#claiming.get(clientId) ?? 1) - 1;
      if (n === 0) this.#claiming.delete(clientId);
      else this.#claiming.set(clientId, n);
    }
  }

  #onEntry(e: KvWatchEntry): void {
    if (e.operation !== 'PUT') return;
    let rec: SessionRecord;
    try {
      rec = parseRecord(e);
    } catch {
      return;
    }
    const epoch = rec.e || e.revision;
    const clientId = decodeLevel(e.key);
    if (this.#claiming.has(clientId) && epoch > (this.#fence.get(clientId) ?? 0))
      this.#fence.set(clientId, epoch);
    const mine = this.#owned.get(clientId);
    if (mine === undefined || rec.c === mine.nonce || epoch <= mine.epoch || this.#ownWrites.has(rec.c))
      return;
    // Another connection claimed this client id after us: it wins.
    this.#owned.delete(clientId);
    this.#ctx.metrics.takeovers.inc();
    this.#ctx.host().ownershipLost(clientId, epoch);
  }

  sessionChanged(s: Session, event: 'online' | 'offline' | 'ended' | 'subscriptions'): void {
    const mine = this.#owned.get(s.clientId);
    // A copy from an older epoch (taken over meanwhile) writes nothing.
    if (mine === undefined || mine.epoch !== s.clusterEpoch) return;
    if (event === 'online') {
      mine.session = s;
      const fence = this.#fence.get(s.clientId) ?? 0;
      if (this.#claiming.get(s.clientId) === undefined) this.#fence.delete(s.clientId);
      if (fence > mine.epoch) {
        // Claimed elsewhere while our claim was in flight.
        this.#owned.delete(s.clientId);
        this.#ctx.metrics.takeovers.inc();
        this.#ctx.host().ownershipLost(s.clientId, fence);
        return;
      }
      // A session restored here, or a clean one that became persistent: describe it.
      if (s.persistent) this.#schedule(s.clientId);
      return;
    }
    if (event === 'offline') {
      // The watermark moves to now only when nothing is left to deliver.
      if (s.inflightCount === 0 && s.queuedCount === 0) mine.since = Date.now();
    }
    if (event === 'ended') mine.session = null;
    this.#schedule(s.clientId);
  }

  /** One write in flight per client id; later changes coalesce into the next write. */
  #schedule(clientId: string): void {
    if (this.#writing.has(clientId)) {
      this.#dirty.add(clientId);
      return;
    }
    this.#writing.add(clientId);
    void this.#write(clientId).finally(() => {
      this.#writing.delete(clientId);
      if (this.#dirty.delete(clientId)) this.#schedule(clientId);
    });
  }

  async #write(clientId: string): Promise<void> {
    const mine = this.#owned.get(clientId);
    if (mine === undefined) return;
    const key = clientKey(clientId);
    const s = mine.session;
    try {
      if (s === null || s.ended) {
        this.#owned.delete(clientId);
        await this.#kv.delete(key, { previousSeq: mine.rev });
        return;
      }
      const rec: SessionRecord = {
        n: this.#ctx.options.nodeId,
        c: mine.nonce,
        e: mine.epoch,
        on: s.conn !== null,
        p: s.persistent,
        v: s.protocolVersion,
        x: s.expiryInterval,
        since: mine.since,
        off: s.disconnectedAt,
        subs: s.persistent ? subscriptionsOf(s) : [],
      };
      mine.rev = await this.#kv.update(key, JSON.stringify(rec), mine.rev);
    } catch (err) {
      // Someone else wrote the key (taken over): the watch will tell us.
      this.#ctx.logger.debug({ err, clientId }, 'session record not written');
    }
  }

  /**
   * Delivers to `s` the QoS 1/2 messages on its filters published since `since`, read from the
   * stream with one reader per filter subject (stream-reader.ts; nats-server 2.9 allows one filter
   * per consumer, 2.10's multi-filter consumers would make it one per session).
   */
  replay(s: Session, since: number): void {
    void this.#replay(s, since).catch((err: unknown) =>
      this.#ctx.logger.error({ err, clientId: s.clientId }, 'replay failed'),
    );
  }

  async #replay(s: Session, since: number): Promise<void> {
    const subs = s.subscriptions;
    if (subs === null) return;
    const seen = new Set<number>();
    const host = this.#ctx.host();
    for (const sub of [...subs.values()]) {
      if (sub.shareGroup !== null || sub.qos === 0) continue;
      for (const subject of filterSubjects(this.#ctx.options.prefix, sub.topicFilter, '1')) {
        await readToEnd(
          this.#ctx,
          { filter: subject, from: { time: since } },
          (m) => {
            if (seen.has(m.seq)) return;
            seen.add(m.seq);
            let msgs: Message[];
            try {
              msgs = decodeEnvelopes(m.data);
            } catch {
              return;
            }
            for (const msg of msgs) {
              if (!mqttMatches(sub.topicFilter, msg.topic)) continue;
              this.#ctx.metrics.replayed.inc();
              host.deliverReplayed(s, msg, sub);
            }
          },
          { active: () => !s.ended },
        );
      }
    }
  }

  /** The record of `clientId` as the bucket holds it now (tests, wills). */
  async record(clientId: string): Promise<{ rec: SessionRecord; epoch: number } | null> {
    const e = await this.#kv.get(clientKey(clientId));
    if (e === null || e.operation !== 'PUT') return null;
    const rec = parseRecord(e);
    return { rec, epoch: rec.e || e.revision };
  }
}

function parseRecord(e: { value: Uint8Array }): SessionRecord {
  return JSON.parse(Buffer.from(e.value).toString('utf8')) as SessionRecord;
}

function expired(r: SessionRecord, now: number): boolean {
  if (r.on || r.off === null || r.x === NEVER_EXPIRES) return false;
  return r.off + r.x * 1000 <= now;
}

function subscriptionsOf(s: Session): RemoteSubscription[] {
  const out: RemoteSubscription[] = [];
  if (s.subscriptions === null) return out;
  for (const sub of s.subscriptions.values()) {
    const r: RemoteSubscription = {
      filter: sub.filter,
      qos: sub.qos as 0 | 1 | 2,
      noLocal: sub.noLocal,
      retainAsPublished: sub.retainAsPublished,
      retainHandling: sub.retainHandling,
    };
    if (sub.subscriptionId !== undefined) r.subscriptionId = sub.subscriptionId;
    out.push(r);
  }
  return out;
}
