/**
 * Node liveness, health and wills (issue 15).
 *
 * Heartbeats: every node writes its key in `<prefix>_nodes` each `heartbeatMs` (the value names
 * its MQTT address, for redirects) and watches the bucket. A heartbeat write that succeeds is also
 * the health probe: NATS connected and JetStream answering (a KV bucket that lost its quorum
 * refuses writes). Unhealthy → readiness false; unhealthy for `isolateAfterMs` → isolated: the
 * node's clients are sent elsewhere (the CLI evicts them), because the others will soon count it
 * dead and fire its wills.
 *
 * Wills: a connection's will is written to `<prefix>_wills` under `<node>.<client>` while it is
 * armed. When a node has been silent for `deadAfterMs`, every survivor races to fire each of its
 * wills: the one whose `create()` of the marker `<client>.<epoch>` in `<prefix>_fired` succeeds
 * publishes it — `create` of a new key is exclusive even on nats-server 2.9's replicated streams,
 * where conditional updates are not (see ownership.ts). A will with a delay waits for it and is
 * dropped when the client id was claimed again meanwhile (MQTT 5.0 §3.1.3.2.2).
 */
import type { Will } from '@breakwater/broker';
import type { KV } from 'nats';
import type { ClusterContext, HealthListener } from './context.js';
import { type KvWatchEntry, KvWatcher } from './kv-watcher.js';
import type { Ownership } from './ownership.js';
import { kvKeys } from './stream-reader.js';
import { clientKey, decodeLevel, encodeLevel } from './subjects.js';

interface StoredWill {
  /** Claim epoch of the connection the will belongs to. */
  e: number;
  topic: string;
  payload: string;
  qos: 0 | 1 | 2;
  retain: boolean;
  properties: Will['properties'];
  delaySec: number;
  expirySec: number | null;
}

interface NodeBeat {
  at: number;
  address: string | null;
}

export class Liveness {
  readonly #ctx: ClusterContext;
  readonly #nodes: KV;
  readonly #wills: KV;
  readonly #fired: KV;
  readonly #ownership: Ownership;
  readonly #beats = new Map<string, NodeBeat>();
  readonly #dead = new Set<string>();
  readonly #armed = new Set<string>();
  readonly #listeners: HealthListener[] = [];
  #timer: NodeJS.Timeout | null = null;
  readonly #watch: KvWatcher;
  /** Server time of the last heartbeat of each node that the watch delivered (tests, diagnostics). */
  readonly #heard = new Map<string, number>();
  /** This node's MQTT address, sent with each heartbeat. */
  advertise: string | null;
  #lastBeatOk = 0;
  #healthySince = Date.now();
  #natsDownSince = 0;
  #natsUp = true;
  #unhealthySince = 0;
  #healthy = false;
  #isolated = false;
  #closed = false;

  constructor(ctx: ClusterContext, nodes: KV, wills: KV, fired: KV, ownership: Ownership) {
    this.#ctx = ctx;
    this.#nodes = nodes;
    this.#wills = wills;
    this.#fired = fired;
    this.#ownership = ownership;
    this.advertise = ctx.options.advertise;
    this.#watch = new KvWatcher(
      ctx,
      { bucket: `${ctx.options.prefix}_nodes`, include: 'last-value', what: 'nodes' },
      (e) => this.#onBeat(e),
    );
  }

  /** The consumer the heartbeat watch reads with now (tests, diagnostics). */
  get watchConsumer(): string | null {
    return this.#watch.consumerName;
  }

  /**
   * When the watch last brought a heartbeat of `nodeId` (its server timestamp, ms), or 0. Unlike
   * `aliveNodes()` this ignores the direct reads made before firing wills.
   */
  heardAt(nodeId: string): number {
    return this.#heard.get(nodeId) ?? 0;
  }

  get healthy(): boolean {
    return this.#healthy;
  }

  get isolated(): boolean {
    return this.#isolated;
  }

  onHealthChange(listener: HealthListener): void {
    this.#listeners.push(listener);
  }

  /** Node ids with a heartbeat younger than `deadAfterMs`, this one included. */
  aliveNodes(): string[] {
    const now = Date.now();
    const out: string[] = [];
    for (const [id, b] of this.#beats) if (now - b.at < this.#ctx.options.deadAfterMs) out.push(id);
    return out;
  }

  otherNodeAddress(): string | null {
    // Cut off, this node hears no heartbeats: the nodes alive when it lost the cluster count.
    const now = this.#unhealthySince > 0 ? this.#unhealthySince : Date.now();
    const self = this.#ctx.options.nodeId;
    const candidates: string[] = [];
    for (const [id, b] of this.#beats) {
      if (id !== self && b.address !== null && now - b.at < this.#ctx.options.deadAfterMs)
        candidates.push(b.address);
    }
    if (candidates.length === 0) return null;
    return candidates[Math.floor(Math.random() * candidates.length)]!;
  }

  async start(): Promise<void> {
    await this.#beat();
    await this.#watch.start();
    this.#timer = setInterval(() => void this.#tick(), this.#ctx.options.heartbeatMs);
    this.#timer.unref();
    // Wills left by nodes that died while no node was watching (e.g. the whole cluster restarted).
    void this.#orphanWills().catch((err: unknown) =>
      this.#ctx.logger.warn({ err }, 'orphan will scan failed'),
    );
  }

  async close(): Promise<void> {
    this.#closed = true;
    if (this.#timer !== null) clearInterval(this.#timer);
    await this.#watch.stop();
    // A shutdown publishes no wills (as on one node): withdraw ours, then our heartbeat.
    try {
      const all = await this.#willKeys(`${encodeLevel(this.#ctx.options.nodeId)}.>`);
      await Promise.all(all.map((k) => this.#wills.delete(k)));
      await this.#nodes.delete(encodeLevel(this.#ctx.options.nodeId));
    } catch (err) {
      this.#ctx.logger.warn({ err }, 'could not withdraw wills and heartbeat');
    }
  }

  natsDown(): void {
    this.#natsUp = false;
    this.#evaluate();
  }

  natsUp(): void {
    this.#natsUp = true;
    void this.#beat();
  }

  async #tick(): Promise<void> {
    if (this.#closed) return;
    await this.#beat();
    this.#evaluate();
    this.#findDead();
  }

  async #beat(): Promise<void> {
    if (this.#ctx.nc.isClosed()) return;
    try {
      const beat: NodeBeat = { at: Date.now(), address: this.advertise };
      await this.#nodes.put(encodeLevel(this.#ctx.options.nodeId), JSON.stringify(beat));
      this.#lastBeatOk = Date.now();
      this.#beats.set(this.#ctx.options.nodeId, beat);
    } catch (err) {
      this.#ctx.metrics.jetstreamErrors.inc({ op: 'heartbeat' });
      this.#ctx.logger.debug({ err }, 'heartbeat failed');
    }
    this.#evaluate();
  }

  /**
   * Healthy: NATS connected and a heartbeat written lately. Isolated: the NATS connection itself
   * has been down for `isolateAfterMs` — this node alone is cut off, and its clients are better
   * served elsewhere. JetStream failing while NATS is connected (a leader election, lost quorum)
   * hits every node alike: readiness goes false, but evicting clients would only move them
   * between equally stuck nodes, so it does not isolate.
   */
  #evaluate(): void {
    const now = Date.now();
    const healthy = this.#natsUp && now - this.#lastBeatOk < 3 * this.#ctx.options.heartbeatMs;
    let isolated = this.#isolated;
    if (healthy) {
      if (this.#unhealthySince !== 0) this.#healthySince = now;
      this.#unhealthySince = 0;
      isolated = false;
    } else if (this.#unhealthySince === 0) this.#unhealthySince = now;
    if (this.#natsUp) this.#natsDownSince = 0;
    else {
      if (this.#natsDownSince === 0) this.#natsDownSince = now;
      if (now - this.#natsDownSince >= this.#ctx.options.isolateAfterMs) isolated = true;
    }
    if (healthy === this.#healthy && isolated === this.#isolated) return;
    this.#healthy = healthy;
    this.#isolated = isolated;
    this.#ctx.metrics.healthy.set(healthy ? 1 : 0);
    this.#ctx.logger.warn({ healthy, isolated }, 'cluster health changed');
    for (const l of this.#listeners) l(healthy, isolated);
  }

  #onBeat(e: KvWatchEntry): void {
    const id = decodeLevel(e.key);
    if (e.operation !== 'PUT') {
      // A node that left cleanly (its wills are withdrawn).
      this.#beats.delete(id);
      return;
    }
    let beat: NodeBeat;
    try {
      beat = JSON.parse(Buffer.from(e.value).toString('utf8')) as NodeBeat;
    } catch {
      return;
    }
    // The server's timestamp, not the writer's clock.
    this.#beats.set(id, { at: e.created.getTime(), address: beat.address });
    this.#heard.set(id, e.created.getTime());
    this.#dead.delete(id);
  }

  #findDead(): void {
    const now = Date.now();
    const self = this.#ctx.options.nodeId;
    let alive = 0;
    for (const [id, b] of this.#beats) {
      if (now - b.at < this.#ctx.options.deadAfterMs) {
        alive++;
        continue;
      }
      // Silence counts only while this node could hear: after an outage of its own (or of
      // JetStream for everyone) the others get `deadAfterMs` to write their next heartbeat.
      if (id === self || this.#dead.has(id) || !this.#healthy) continue;
      if (now - this.#healthySince < this.#ctx.options.deadAfterMs) continue;
      this.#dead.add(id);
      void this.#confirmThenFire(id, b).catch((err: unknown) => {
        // Try again on the next tick: a will must not be lost to one JetStream timeout.
        this.#dead.delete(id);
        this.#ctx.logger.warn({ err, node: id }, 'firing the wills of a dead node failed; retrying');
      });
    }
    this.#ctx.metrics.nodesAlive.set(alive);
  }

  /**
   * A watch can lag (a NATS server failing over, a starved event loop): before firing the wills of
   * a node whose heartbeats stopped arriving, read its heartbeat key directly.
   */
  async #confirmThenFire(id: string, seen: NodeBeat): Promise<void> {
    const e = await this.#nodes.get(encodeLevel(id));
    if (
      e !== null &&
      e.operation === 'PUT' &&
      Date.now() - e.created.getTime() < this.#ctx.options.deadAfterMs
    ) {
      this.#dead.delete(id);
      this.#beats.set(id, { at: e.created.getTime(), address: seen.address });
      return;
    }
    this.#ctx.logger.warn({ node: id }, 'node is dead: firing its wills');
    await this.#fireWillsOf(id);
  }

  async #orphanWills(): Promise<void> {
    // Wait until the watch has filled in the live nodes.
    await new Promise((r) => setTimeout(r, this.#ctx.options.deadAfterMs).unref());
    if (this.#closed) return;
    const nodes = new Set<string>();
    for (const k of await this.#willKeys('>')) nodes.add(decodeLevel(k.split('.')[0]!));
    const now = Date.now();
    for (const id of nodes) {
      const b = this.#beats.get(id);
      if (b !== undefined && now - b.at < this.#ctx.options.deadAfterMs) continue;
      if (this.#dead.has(id)) continue;
      this.#dead.add(id);
      await this.#fireWillsOf(id);
    }
  }

  async #fireWillsOf(node: string): Promise<void> {
    const keys = await this.#willKeys(`${encodeLevel(node)}.>`);
    this.#ctx.logger.info({ node, wills: keys.length }, 'wills of a dead node');
    await Promise.all(keys.map((k) => this.#fireOne(k)));
  }

  async #fireOne(key: string): Promise<void> {
    const e = await this.#wills.get(key);
    if (e === null || e.operation !== 'PUT') return;
    const w = JSON.parse(Buffer.from(e.value).toString('utf8')) as StoredWill;
    const clientId = decodeLevel(key.slice(key.indexOf('.') + 1));
    if (w.delaySec > 0) {
      await new Promise((r) => setTimeout(r, w.delaySec * 1000).unref());
      const now = await this.#ownership.record(clientId);
      // Claimed again within the delay: the will is cancelled (MQTT 5.0 §3.1.3.2.2).
      if (now !== null && now.epoch > w.e) {
        await this.#wills.delete(key).catch(() => {});
        return;
      }
    }
    const marker = `${clientKey(clientId)}.${w.e}`;
    try {
      await this.#fired.create(marker, this.#ctx.options.nodeId);
    } catch (err) {
      // The marker exists: another survivor fired the will — or we did, and the answer to our
      // create was lost (a timeout): the marker says who. Any other failure is retried.
      const m = await this.#fired.get(marker);
      if (m === null || m.operation !== 'PUT') throw err;
      if (m.string() !== this.#ctx.options.nodeId) return;
    }
    this.#ctx.metrics.willsFired.inc();
    this.#ctx.logger.info(
      { clientId, node: key.split('.')[0] },
      'publishing the will of a client of a dead node',
    );
    this.#ctx.host().publishWill(clientId, {
      topic: w.topic,
      payload: Buffer.from(w.payload, 'base64'),
      qos: w.qos,
      retain: w.retain,
      properties: w.properties,
      delaySec: 0,
      expirySec: w.expirySec,
    });
    await this.#wills.delete(key).catch(() => {});
  }

  /** Keys of the wills bucket (stream-reader.ts: not `kv.keys()`, which can hang on a dead server). */
  #willKeys(filter: string): Promise<string[]> {
    return kvKeys(this.#ctx, `${this.#ctx.options.prefix}_wills`, filter);
  }

  willArmed(clientId: string, epoch: number, will: Will): void {
    this.#armed.add(clientId);
    const stored: StoredWill = {
      e: epoch,
      topic: will.topic,
      payload: will.payload.toString('base64'),
      qos: will.qos,
      retain: will.retain,
      properties: will.properties,
      delaySec: will.delaySec,
      expirySec: will.expirySec,
    };
    this.#ctx.track(this.#wills.put(this.#willKey(clientId), JSON.stringify(stored)));
  }

  willDisarmed(clientId: string): void {
    if (!this.#armed.delete(clientId)) return;
    this.#ctx.track(this.#wills.delete(this.#willKey(clientId)));
  }

  #willKey(clientId: string): string {
    return `${encodeLevel(this.#ctx.options.nodeId)}.${clientKey(clientId)}`;
  }
}
