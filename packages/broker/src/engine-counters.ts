import type { Counter, Gauge } from 'prom-client';
import type { BrokerMetrics } from './metrics.js';

// The engine's hot-path counters: plain numbers bumped per packet, pushed to prom-client once per
// sweep (`sync()`), so a PUBLISH never pays for a labelled metric lookup.

/** A gauge kept as a plain number, pushed to its prom-client child by `EngineCounters.sync()`. */
export class PlainGauge {
  value = 0;
  inc(): void {
    this.value++;
  }
  dec(): void {
    this.value--;
  }
}

/** A counter kept as a plain number of increments not yet pushed. */
export class PlainCounter {
  pending = 0;
  inc(): void {
    this.pending++;
  }
}

/** Per-listener connection metrics: plain numbers, so a connect or close hashes no labels. */
export interface ListenerMetrics {
  connections: PlainGauge;
  attempts: PlainCounter;
  openSockets: PlainGauge;
  withoutConnect: PlainGauge;
}

/**
 * Hot-path counters. A prom-client child's `inc()` hashes its label object on every call, so
 * per-message counts are plain numbers here, pushed to prom-client by `sync()`: on every sweep
 * and right before each scrape (the metrics' `collect` hook), so /metrics is never behind.
 */
export class EngineCounters {
  bytesIn = 0;
  bytesOut = 0;
  /** Messages received / sent by QoS, not yet pushed to prom-client. */
  readonly msgIn = [0, 0, 0];
  readonly msgOut = [0, 0, 0];
  readonly #metrics: BrokerMetrics;
  readonly #msgInChildren: Counter.Internal[];
  readonly #msgOutChildren: Counter.Internal[];
  /** Drops not yet pushed, by reason (slow consumers can drop on every message). */
  readonly #drops = new Map<string, number>();
  readonly #disconnects = new Map<string, Counter.Internal>();
  /** Session counts, pushed to the `sessions` gauge by `sync()`. */
  sessionsOnline = 0;
  sessionsOffline = 0;
  readonly #sessionsOnline: Gauge.Internal<'state'>;
  readonly #sessionsOffline: Gauge.Internal<'state'>;
  readonly #listeners = new Map<string, ListenerMetrics>();

  constructor(metrics: BrokerMetrics) {
    this.#metrics = metrics;
    this.#msgInChildren = ['0', '1', '2'].map((q) => metrics.messagesIn.labels(q));
    this.#msgOutChildren = ['0', '1', '2'].map((q) => metrics.messagesOut.labels(q));
    this.#sessionsOnline = metrics.sessions.labels('online');
    this.#sessionsOffline = metrics.sessions.labels('offline');
    const sync = () => this.sync();
    for (const m of [
      metrics.sessions,
      metrics.connections,
      metrics.connectionAttempts,
      metrics.openSockets,
      metrics.socketsWithoutConnect,
      metrics.messagesIn,
      metrics.messagesOut,
      metrics.messagesDropped,
      metrics.bytesIn,
      metrics.bytesOut,
    ] as unknown as Array<{ collect?: () => unknown }>) {
      // Chained: a BrokerMetrics shared by several brokers syncs all of them.
      const prev = m.collect;
      m.collect =
        prev === undefined
          ? sync
          : () => {
              prev();
              sync();
            };
    }
  }

  listener(name: string): ListenerMetrics {
    let lm = this.#listeners.get(name);
    if (lm === undefined) {
      lm = {
        connections: new PlainGauge(),
        attempts: new PlainCounter(),
        openSockets: new PlainGauge(),
        withoutConnect: new PlainGauge(),
      };
      this.#listeners.set(name, lm);
    }
    return lm;
  }

  disconnect(reason: string): void {
    let c = this.#disconnects.get(reason);
    if (c === undefined) {
      c = this.#metrics.disconnects.labels(reason);
      this.#disconnects.set(reason, c);
    }
    c.inc();
  }

  drop(reason: string, count = 1): void {
    this.#drops.set(reason, (this.#drops.get(reason) ?? 0) + count);
  }

  sync(): void {
    const m = this.#metrics;
    if (this.bytesIn > 0) m.bytesIn.inc(this.bytesIn);
    if (this.bytesOut > 0) m.bytesOut.inc(this.bytesOut);
    this.bytesIn = 0;
    this.bytesOut = 0;
    for (let q = 0; q < 3; q++) {
      const i = this.msgIn[q]!;
      if (i > 0) this.#msgInChildren[q]!.inc(i);
      const o = this.msgOut[q]!;
      if (o > 0) this.#msgOutChildren[q]!.inc(o);
      this.msgIn[q] = 0;
      this.msgOut[q] = 0;
    }
    this.#sessionsOnline.set(this.sessionsOnline);
    this.#sessionsOffline.set(this.sessionsOffline);
    for (const [name, lm] of this.#listeners) {
      m.connections.labels(name).set(lm.connections.value);
      m.openSockets.labels(name).set(lm.openSockets.value);
      m.socketsWithoutConnect.labels(name).set(lm.withoutConnect.value);
      if (lm.attempts.pending > 0) {
        m.connectionAttempts.labels(name).inc(lm.attempts.pending);
        lm.attempts.pending = 0;
      }
    }
    if (this.#drops.size > 0) {
      for (const [reason, n] of this.#drops) m.messagesDropped.labels(reason).inc(n);
      this.#drops.clear();
    }
  }
}
