/**
 * Node drain (DESIGN.md §3, issue 15): take a node out of service without dropping its fleet on
 * the floor at once. The caller first turns readiness false and stops accepting; the drain then
 * evicts the connected clients at a set rate — MQTT 5 clients get DISCONNECT 0x9C Use another
 * server with a Server Reference (MQTT 5.0 §4.11) when one is known, MQTT 3.1.1 clients a close —
 * so the other nodes see a bounded reconnect rate instead of a wall.
 */
import type { Clock, TimerHandle } from './clock.js';
import { ReasonCode } from './reason-codes.js';

/** What a drain needs of the broker. */
export interface DrainTarget {
  readonly clock: Clock;
  connectedClientIds(): string[];
  disconnectClient(
    clientId: string,
    reasonCode: number,
    reasonString?: string,
    options?: { serverReference?: string },
  ): boolean;
}

export interface DrainOptions {
  /** Clients evicted per second. */
  ratePerSec: number;
  /** Where to send MQTT 5 clients (called per client: it may spread them); null = no reference. */
  serverReference: () => string | null;
  reason?: string;
}

export interface DrainStatus {
  draining: boolean;
  startedAt: string | null;
  evicted: number;
  remaining: number;
  ratePerSec: number;
}

const TICK_MS = 100;

export class NodeDrain {
  readonly #target: DrainTarget;
  #timer: TimerHandle | null = null;
  #queue: string[] = [];
  #evicted = 0;
  #startedAt: number | null = null;
  #options: DrainOptions | null = null;
  #credit = 0;

  constructor(target: DrainTarget) {
    this.#target = target;
  }

  get draining(): boolean {
    return this.#startedAt !== null;
  }

  /** Starts evicting (or changes the rate of a drain in progress). */
  start(options: DrainOptions): DrainStatus {
    this.#options = options;
    if (this.#startedAt === null) {
      this.#startedAt = this.#target.clock.now();
      this.#queue = this.#target.connectedClientIds();
      this.#timer = this.#target.clock.setInterval(() => this.#tick(), TICK_MS);
    }
    return this.status();
  }

  /** Stops evicting (readiness is the caller's). Clients already evicted stay away. */
  stop(): void {
    if (this.#timer !== null) this.#target.clock.clearInterval(this.#timer);
    this.#timer = null;
    this.#startedAt = null;
    this.#queue = [];
    this.#credit = 0;
  }

  status(): DrainStatus {
    return {
      draining: this.#startedAt !== null,
      startedAt: this.#startedAt === null ? null : new Date(this.#startedAt).toISOString(),
      evicted: this.#evicted,
      remaining: this.#target.connectedClientIds().length,
      ratePerSec: this.#options?.ratePerSec ?? 0,
    };
  }

  #tick(): void {
    const o = this.#options!;
    this.#credit += (o.ratePerSec * TICK_MS) / 1000;
    while (this.#credit >= 1) {
      let id = this.#queue.pop();
      if (id === undefined) {
        // Clients that connected meanwhile (the caller stopped accepting, but a claim or a
        // handshake may have been in flight).
        this.#queue = this.#target.connectedClientIds();
        id = this.#queue.pop();
        if (id === undefined) return;
      }
      const ref = o.serverReference();
      const done = this.#target.disconnectClient(
        id,
        ReasonCode.UseAnotherServer,
        o.reason ?? 'node draining',
        ref === null ? {} : { serverReference: ref },
      );
      if (done) {
        this.#evicted++;
        this.#credit -= 1;
      }
    }
  }
}
