/**
 * Connection state and last seen, fed by the broker. The lead wires the broker's connect and
 * disconnect events to `connected()` / `disconnected()`; they return at once and the updates of
 * one event-loop turn are written in one transaction (a reboot storm of 4,000 reconnects costs
 * one commit per turn, not 4,000). Events for client ids that are not registered devices are
 * ignored by the repository, and an event older than the stored last_seen never overwrites it.
 *
 * Presence is best effort: a failed write is logged and dropped, the device's next event
 * corrects the state. It must never slow down or fail the broker's connect path.
 */
import type { Logger } from 'pino';
import type { Transactional } from '../storage/transactional.js';
import type { DeviceRepository, PresenceUpdate } from './model.js';

/** Presence writes to the device registry only. */
export type PresenceStorage = Transactional<{ readonly devices: DeviceRepository }>;

export class DevicePresence {
  readonly #storage: PresenceStorage;
  readonly #logger: Logger | undefined;
  #pending: PresenceUpdate[] = [];
  #scheduled: Promise<void> | null = null;
  #inFlight: Promise<void> = Promise.resolve();

  constructor(storage: PresenceStorage, logger?: Logger) {
    this.#storage = storage;
    this.#logger = logger;
  }

  /** The broker accepted a CONNECT from `clientId` at `at` (epoch ms). */
  connected(clientId: string, at: number = Date.now()): void {
    this.#push({ id: clientId, state: 'online', at, reason: null });
  }

  /** The session's connection ended; `reason` e.g. a reason code name or `keepalive timeout`. */
  disconnected(clientId: string, at: number = Date.now(), reason: string | null = null): void {
    this.#push({ id: clientId, state: 'offline', at, reason });
  }

  /** Resolves when every event recorded so far is written (or its write failed and was logged). */
  flush(): Promise<void> {
    return this.#scheduled ?? this.#inFlight;
  }

  #push(update: PresenceUpdate): void {
    this.#pending.push(update);
    if (this.#scheduled) return;
    this.#scheduled = new Promise<void>((resolve) => {
      setImmediate(() => {
        // Writes run one batch at a time, in order, so a later batch never lands first.
        this.#inFlight = this.#inFlight.then(() => this.#write()).then(resolve);
        this.#scheduled = null;
      });
    });
  }

  async #write(): Promise<void> {
    const batch = this.#pending;
    this.#pending = [];
    if (batch.length === 0) return;
    try {
      await this.#storage.transaction((tx) => tx.devices.applyPresence(batch));
    } catch (err) {
      this.#logger?.warn({ err, events: batch.length }, 'device presence update failed; dropped');
    }
  }
}
