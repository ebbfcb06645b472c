/**
 * The guard's known-good credentials, shared across the cluster (issue 15): when a node loses,
 * its devices reconnect to the survivors — which must admit them from cache, not send the whole
 * fleet to the auth backend cold.
 *
 * Every confirmation a node's backend makes (a KnownGood: keyed hashes and the identity, never a
 * secret) is written to the `<prefix>_known_good` KV bucket; every node watches the bucket from
 * its first value on (a node that starts late is warmed with everything) and stores what others
 * confirmed in its own known-good store, where the decision cache finds it. Keys are HMACs under
 * the guard secret, so nodes share entries only when they share `guard.secret` (copy it to every
 * node, as deploy/README.md says). Entries expire with the stale-if-error horizon (bucket TTL).
 */
import type { KnownGood } from '@breakwater/broker';
import type { KV } from 'nats';
import type { ClusterContext } from './context.js';
import { type KvWatchEntry, KvWatcher } from './kv-watcher.js';
import { encodeLevel } from './subjects.js';

/** What the sync needs of the guard's store (`KnownGoodStore`). */
export interface SharedKnownGoodStore {
  onConfirmed(listener: ((e: KnownGood) => void) | null): void;
  applyShared(e: KnownGood): void;
}

interface Stored extends KnownGood {
  /** The node that confirmed it (its own writes come back through the watch). */
  node: string;
}

export class KnownGoodSync {
  readonly #ctx: ClusterContext;
  readonly #kv: KV;
  readonly #store: SharedKnownGoodStore;
  readonly #watch: KvWatcher;
  #applied = 0;

  constructor(ctx: ClusterContext, kv: KV, store: SharedKnownGoodStore) {
    this.#ctx = ctx;
    this.#kv = kv;
    this.#store = store;
    this.#watch = new KvWatcher(
      ctx,
      {
        bucket: `${ctx.options.prefix}_known_good`,
        include: 'last-value',
        ignoreDeletes: true,
        what: 'known-good',
      },
      (e) => this.#apply(e),
    );
  }

  /** Entries confirmed by other nodes and stored here. */
  get applied(): number {
    return this.#applied;
  }

  /** Resolves once every entry already in the bucket is in the local store. */
  async start(): Promise<void> {
    const ready = this.#watch.start();
    // Published from now on, as before: a confirmation made during the initial load is not lost.
    this.#store.onConfirmed((e) => this.#publish(e));
    try {
      await ready;
    } catch (err) {
      this.#store.onConfirmed(null);
      throw err;
    }
  }

  async close(): Promise<void> {
    this.#store.onConfirmed(null);
    await this.#watch.stop();
  }

  #publish(e: KnownGood): void {
    const v: Stored = { ...e, node: this.#ctx.options.nodeId };
    // Not tracked for acknowledgements: a lost share costs one backend query elsewhere.
    this.#kv.put(encodeLevel(e.key), JSON.stringify(v)).catch((err: unknown) => {
      this.#ctx.metrics.jetstreamErrors.inc({ op: 'known_good' });
      this.#ctx.logger.debug({ err }, 'known-good entry not shared');
    });
  }

  #apply(e: KvWatchEntry): void {
    if (e.operation !== 'PUT') return;
    let v: Stored;
    try {
      v = JSON.parse(Buffer.from(e.value).toString('utf8')) as Stored;
    } catch {
      return;
    }
    if (v.node === this.#ctx.options.nodeId) return;
    const { node: _node, ...entry } = v;
    this.#store.applyShared(entry);
    this.#applied++;
  }
}
