/**
 * Connection state, last seen and the device event history, fed by the broker. The lead wires
 * the broker's connect, disconnect and queue-drop events to `connected()` / `disconnected()` /
 * `messagesDropped()`; they return at once and the updates of one event-loop turn are written in
 * one transaction (a reboot storm of 4,000 reconnects costs one commit per turn, not 4,000).
 * Events for client ids that are not registered devices are ignored by the repositories, and an
 * event older than the stored last_seen never overwrites the connection state (it still goes
 * into the history, which is ordered by arrival).
 *
 * The history is bounded: each device keeps its newest `keepPerDevice` events. Pruning a device
 * costs one DELETE, so it is not done on every write: a device is pruned the first time this
 * process writes an event for it (history left over from an earlier run) and then after every
 * PRUNE_EVERY events, so a device holds at most keepPerDevice + PRUNE_EVERY - 1 events.
 *
 * Presence is best effort: a failed write is logged and dropped, the device's next event
 * corrects the state. It must never slow down or fail the broker's connect path.
 */
import type { Logger } from 'pino';
import type { Transactional } from '../storage/transactional.js';
import {
  DEFAULT_DEVICE_EVENTS_PER_DEVICE,
  type DeviceEventRepository,
  type NewDeviceEvent,
} from './events.js';
import type { DeviceRepository, PresenceUpdate } from './model.js';

/** Presence writes to the device registry and the device event history only. */
export type PresenceStorage = Transactional<{
  readonly devices: DeviceRepository;
  readonly deviceEvents: DeviceEventRepository;
}>;

export const PRUNE_EVERY = 32;

export interface DevicePresenceOptions {
  logger?: Logger | undefined;
  /** Events kept per device (default DEFAULT_DEVICE_EVENTS_PER_DEVICE). */
  keepPerDevice?: number | undefined;
}

export class DevicePresence {
  readonly #storage: PresenceStorage;
  readonly #logger: Logger | undefined;
  readonly #keep: number;
  #pending: PresenceUpdate[] = [];
  #events: NewDeviceEvent[] = [];
  /**
   * Events written per device since its last prune; registered devices only, so it is bounded by
   * the registry (a deleted device's entry stays until restart: one number).
   */
  readonly #sincePrune = new Map<string, number>();
  #scheduled: Promise<void> | null = null;
  #inFlight: Promise<void> = Promise.resolve();

  constructor(storage: PresenceStorage, options: DevicePresenceOptions = {}) {
    this.#storage = storage;
    this.#logger = options.logger;
    this.#keep = options.keepPerDevice ?? DEFAULT_DEVICE_EVENTS_PER_DEVICE;
  }

  /** The broker accepted a CONNECT from `clientId` at `at` (epoch ms). */
  connected(clientId: string, at: number = Date.now()): void {
    this.#pending.push({ id: clientId, state: 'online', at, reason: null });
    this.#record({ deviceId: clientId, at, kind: 'connected', clientId, reason: null, count: null });
  }

  /** The session's connection ended; `reason` e.g. a reason code name or `keepalive timeout`. */
  disconnected(clientId: string, at: number = Date.now(), reason: string | null = null): void {
    this.#pending.push({ id: clientId, state: 'offline', at, reason });
    this.#record({ deviceId: clientId, at, kind: 'disconnected', clientId, reason, count: null });
  }

  /**
   * The client's session queue dropped messages (the broker's report: counts by reason since its
   * previous one, at most one report per session every 10 s). One history event per reason.
   */
  messagesDropped(clientId: string, at: number, dropped: Readonly<Record<string, number>>): void {
    for (const [reason, count] of Object.entries(dropped)) {
      if (count > 0) {
        this.#record({ deviceId: clientId, at, kind: 'messages_dropped', clientId, reason, count });
      }
    }
  }

  /** Resolves when every event recorded so far is written (or its write failed and was logged). */
  flush(): Promise<void> {
    return this.#scheduled ?? this.#inFlight;
  }

  #record(event: NewDeviceEvent): void {
    this.#events.push(event);
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
    const events = this.#events;
    this.#pending = [];
    this.#events = [];
    if (events.length === 0) return;
    try {
      const counts = await this.#storage.transaction(async (tx) => {
        if (batch.length > 0) await tx.devices.applyPresence(batch);
        const stored = await tx.deviceEvents.append(events);
        const next = this.#counts(events, stored);
        for (const [id, n] of next) if (n === 0) await tx.deviceEvents.prune(id, this.#keep);
        return next;
      });
      // Only once committed: a batch that failed neither added events nor pruned.
      for (const [id, n] of counts) this.#sincePrune.set(id, n);
    } catch (err) {
      this.#logger?.warn({ err, events: events.length }, 'device presence update failed; dropped');
    }
  }

  /** Each stored device's count since its last prune after this batch; 0 = prune it now. */
  #counts(events: readonly NewDeviceEvent[], stored: ReadonlySet<string>): Map<string, number> {
    const added = new Map<string, number>();
    for (const e of events)
      if (stored.has(e.deviceId)) added.set(e.deviceId, (added.get(e.deviceId) ?? 0) + 1);
    for (const [id, n] of added) {
      const before = this.#sincePrune.get(id);
      added.set(id, before === undefined || before + n >= PRUNE_EVERY ? 0 : before + n);
    }
    return added;
  }
}
