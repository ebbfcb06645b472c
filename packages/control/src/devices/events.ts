/**
 * A device's event history (issue 13 part 3): what the broker saw happen to the device's
 * session — connects, disconnects, and messages its full queue dropped — kept per device in
 * `device_events` (migration in devices/migration.ts) and listed by
 * `GET /api/v1/devices/{id}/events`. Operator actions on a device stay in the audit log.
 *
 * Bounded: DevicePresence (presence.ts) keeps the newest `keepPerDevice` events of each device
 * and prunes older ones as it writes; deleting a device deletes its history. Times are epoch
 * milliseconds.
 */
import type { Page } from '../storage/page.js';

/** What happened. `messages_dropped` is one broker queue-drop report for one reason. */
export const DEVICE_EVENT_KINDS = ['connected', 'disconnected', 'messages_dropped'] as const;
export type DeviceEventKind = (typeof DEVICE_EVENT_KINDS)[number];

/** Events kept per device unless configured (`control.deviceEventsPerDevice`). */
export const DEFAULT_DEVICE_EVENTS_PER_DEVICE = 200;

export interface NewDeviceEvent {
  deviceId: string;
  at: number;
  kind: DeviceEventKind;
  /** The MQTT client id whose session it was (the device id for devices that connect as themselves). */
  clientId: string;
  /**
   * disconnected: the disconnect reason (e.g. `KeepAliveTimeout`), or null when unknown.
   * messages_dropped: the drop reason, the metric's label (`queue_full`, `queue_bytes_full`,
   * `queue_evicted`). connected: null.
   */
  reason: string | null;
  /** messages_dropped: messages dropped for `reason` since the session's previous report. */
  count: number | null;
}

export interface DeviceEventRecord extends NewDeviceEvent {
  /** Increases with every event stored (across devices): the listing order and cursor. */
  seq: number;
}

export interface DeviceEventFilter {
  kind?: DeviceEventKind;
}

export interface DeviceEventRepository {
  /**
   * Stores the events of registered devices, in order; events naming an unknown device id are
   * skipped (the broker reports every client, registered or not). Returns the ids of the devices
   * that got at least one event.
   */
  append(events: readonly NewDeviceEvent[]): Promise<Set<string>>;
  /** Newest first. */
  list(
    deviceId: string,
    filter: DeviceEventFilter,
    limit: number,
    cursor: string | null,
  ): Promise<Page<DeviceEventRecord>>;
  /** Deletes all but the newest `keep` events of the device; returns how many it deleted. */
  prune(deviceId: string, keep: number): Promise<number>;
}
