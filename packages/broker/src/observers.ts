/**
 * In-process observers of the broker: the control plane in the same process follows presence and
 * reads device-published fleet topics (`$fleet/+/config/reported`, `$fleet/+/ota/status`) here,
 * without an MQTT client of its own and without a topic its ACL would have to allow.
 *
 * Observers run synchronously on the broker's path: they must return at once (queue, then work).
 * A throwing observer is logged and skipped; it never breaks delivery.
 */
import type { ConnectionInfo } from './options.js';
import type { QueueDropReport } from './queue-drops.js';
import { parseTopicFilter } from './topics/validate.js';

export interface BrokerObserver {
  /** A CONNECT was accepted (CONNACK sent). `at`: epoch ms. */
  clientConnected?(clientId: string, info: ConnectionInfo, at: number): void;
  /** The connection of an accepted client ended; `reason` is the engine's disconnect reason. */
  clientDisconnected?(clientId: string, reason: string, at: number): void;
  /**
   * A session's full queue dropped messages (queue-drops.ts): at most one report per session
   * every 10 s, with the counts by reason since the previous one. For a device's event history.
   */
  messagesDropped?(report: QueueDropReport): void;
}

/**
 * A message a client (or the server) published, seen by an in-process tap. Returning exactly
 * `true` says "I recorded this message in a store whose flush the broker's storage flush covers":
 * the broker then holds the QoS 1/2 acknowledgement until that flush, as it does for its own
 * writes (the integration buffer, issue 16, wraps the broker storage so that its flush includes
 * its own). Any other return value is ignored (`unknown`, so `(t) => set.add(t)` still type-checks).
 */
export type MessageTapHandler = (topic: string, payload: Buffer, publisherId: string | null) => unknown;

export const TAP_NONE = 0;
export const TAP_MATCHED = 1;
export const TAP_DURABLE = 2;
export type TapOutcome = typeof TAP_NONE | typeof TAP_MATCHED | typeof TAP_DURABLE;

/** One tap: a filter split into levels once, matched without allocating per message. */
export class MessageTap {
  readonly filter: string;
  readonly handler: MessageTapHandler;
  readonly #levels: string[];
  readonly #multi: boolean;

  constructor(filter: string, handler: MessageTapHandler) {
    const parsed = parseTopicFilter(filter);
    if (!parsed.ok || parsed.shareGroup !== null) {
      throw new TypeError(
        `invalid tap filter ${JSON.stringify(filter)}: ${parsed.ok ? 'shared' : parsed.reason}`,
      );
    }
    this.filter = filter;
    this.handler = handler;
    const levels = filter.split('/');
    this.#multi = levels[levels.length - 1] === '#';
    this.#levels = this.#multi ? levels.slice(0, -1) : levels;
  }

  /** MQTT matching [MQTT-4.7]: `+` one level, trailing `#` the rest; `$` topics need a literal first level. */
  matches(topic: string): boolean {
    const levels = this.#levels;
    if (topic.charCodeAt(0) === 0x24 && (levels.length === 0 || levels[0] === '+')) return false;
    let start = 0;
    for (let i = 0; i < levels.length; i++) {
      if (start > topic.length) return false;
      let end = topic.indexOf('/', start);
      if (end === -1) end = topic.length;
      const level = levels[i]!;
      if (level !== '+' && (level.length !== end - start || !topic.startsWith(level, start))) return false;
      start = end + 1;
    }
    // Exact length: consumed the whole topic. `#` also matches the parent level [MQTT-4.7.1-2].
    if (start === topic.length + 1) return true;
    return this.#multi && start <= topic.length + 1;
  }
}

/**
 * The observers and taps of one broker. Observers and taps are added and removed rarely, and
 * called on every connect/disconnect or routed message, so they live in plain arrays the hot path
 * checks for length first.
 */
export class InProcessObservers {
  readonly taps: MessageTap[] = [];
  readonly #observers: BrokerObserver[] = [];
  readonly #onError: (err: unknown, what: string) => void;

  constructor(onError: (err: unknown, what: string) => void) {
    this.#onError = onError;
  }

  get watched(): boolean {
    return this.#observers.length !== 0;
  }

  add(observer: BrokerObserver): () => void {
    this.#observers.push(observer);
    return () => remove(this.#observers, observer);
  }

  tap(filter: string, handler: MessageTapHandler): () => void {
    const tap = new MessageTap(filter, handler);
    this.taps.push(tap);
    return () => remove(this.taps, tap);
  }

  /**
   * Runs the matching taps: TAP_NONE when none matched, TAP_MATCHED, or TAP_DURABLE when one of
   * them returned true (it holds the PUBACK, issue 16).
   */
  runTaps(topic: string, payload: Buffer, publisherId: string | null): TapOutcome {
    let outcome: TapOutcome = TAP_NONE;
    for (const tap of this.taps) {
      if (!tap.matches(topic)) continue;
      if (outcome === TAP_NONE) outcome = TAP_MATCHED;
      try {
        if (tap.handler(topic, payload, publisherId) === true) outcome = TAP_DURABLE;
      } catch (err) {
        this.#onError(err, `message tap ${tap.filter}`);
      }
    }
    return outcome;
  }

  messagesDropped(report: QueueDropReport): void {
    for (const o of this.#observers) {
      try {
        o.messagesDropped?.(report);
      } catch (err) {
        this.#onError(err, 'broker observer');
      }
    }
  }

  connected(clientId: string, info: ConnectionInfo, at: number): void {
    for (const o of this.#observers) {
      try {
        o.clientConnected?.(clientId, info, at);
      } catch (err) {
        this.#onError(err, 'broker observer');
      }
    }
  }

  disconnected(clientId: string, reason: string, at: number): void {
    for (const o of this.#observers) {
      try {
        o.clientDisconnected?.(clientId, reason, at);
      } catch (err) {
        this.#onError(err, 'broker observer');
      }
    }
  }
}

function remove<T>(list: T[], item: T): void {
  const i = list.indexOf(item);
  if (i !== -1) list.splice(i, 1);
}
