/**
 * Follows what devices report on `$fleet/{id}/config/reported` (the SDK's `reportConfig()`,
 * retained QoS 1) through the broker's in-process tap, and stores the reported config and its
 * version per device for the drift view.
 *
 * Only a device's own report counts: the publisher's client id must equal the `{id}` in the
 * topic (the guard's ACL already confines devices to their own `$fleet/{id}/…`; this also holds
 * on a broker that runs without authorization, where any client could publish anywhere).
 *
 * Like DevicePresence, the tap handler returns at once: reports are queued (the latest per
 * device wins) and the reports of one event-loop turn are written in one transaction, so a
 * reconnect storm where 10,000 devices re-report costs a handful of commits. Best effort: a
 * failed write is logged and dropped; the device's next report corrects it.
 */
import type { Clock } from '@breakwater/broker';
import type { Logger } from 'pino';
import type { FleetBroker } from '../fleet-broker.js';
import type { Transactional } from '../storage/transactional.js';
import { configHash, isJsonObject, MAX_CONFIG_BYTES, reportedVersion } from './document.js';
import type { ConfigPushRepository, ConfigReport } from './model.js';

export const REPORTED_FILTER = '$fleet/+/config/reported';
const PREFIX = '$fleet/';
const SUFFIX = '/config/reported';

export interface ConfigReportCounters {
  /** Reports seen on the tap. */
  received: number;
  /** Reports written for registered devices. */
  stored: number;
  /** Refused: published by another client, not a JSON object, or over the size limit. */
  rejected: number;
}

/** Reports are written to the config-push repository only. */
export type ConfigReportStorage = Transactional<{ readonly configPushes: ConfigPushRepository }>;

export interface ConfigReportFollowerOptions {
  storage: ConfigReportStorage;
  fleet: FleetBroker;
  clock: Clock;
  logger?: Logger | null;
}

/** Started and closed with the control plane (a ControlService of http/app.ts, by shape). */
export class ConfigReportFollower {
  readonly counters: ConfigReportCounters = { received: 0, stored: 0, rejected: 0 };
  readonly #storage: ConfigReportStorage;
  readonly #fleet: FleetBroker;
  readonly #clock: Clock;
  readonly #logger: Logger | null;
  #stop: (() => void) | null = null;
  #pending = new Map<string, { payload: Buffer; at: number }>();
  #scheduled: Promise<void> | null = null;
  #inFlight: Promise<void> = Promise.resolve();

  constructor(options: ConfigReportFollowerOptions) {
    this.#storage = options.storage;
    this.#fleet = options.fleet;
    this.#clock = options.clock;
    this.#logger = options.logger ?? null;
  }

  start(): void {
    if (this.#stop === null) this.#stop = this.#fleet.subscribe(REPORTED_FILTER, this.#onReport);
  }

  async close(): Promise<void> {
    this.#stop?.();
    this.#stop = null;
    await this.flush();
  }

  /** Resolves when every report received so far is written (or its write failed and was logged). */
  flush(): Promise<void> {
    return this.#scheduled ?? this.#inFlight;
  }

  // Runs on the broker's routing path: no parsing, no I/O here.
  readonly #onReport = (topic: string, payload: Buffer, publisherId: string | null): void => {
    this.counters.received++;
    if (!topic.startsWith(PREFIX) || !topic.endsWith(SUFFIX)) return;
    const deviceId = topic.slice(PREFIX.length, topic.length - SUFFIX.length);
    if (publisherId !== deviceId || payload.length > MAX_CONFIG_BYTES) {
      this.counters.rejected++;
      return;
    }
    if (payload.length === 0) return; // the retained report was cleared: keep the last one
    this.#pending.set(deviceId, { payload, at: this.#clock.now() });
    if (this.#scheduled) return;
    this.#scheduled = new Promise<void>((resolve) => {
      setImmediate(() => {
        // One batch at a time, in order, so a later report never lands before an earlier one.
        this.#inFlight = this.#inFlight.then(() => this.#write()).then(resolve);
        this.#scheduled = null;
      });
    });
  };

  async #write(): Promise<void> {
    const batch = this.#pending;
    this.#pending = new Map();
    const reports: ConfigReport[] = [];
    for (const [deviceId, { payload, at }] of batch) {
      let doc: unknown;
      try {
        doc = JSON.parse(payload.toString('utf8'));
      } catch {
        doc = undefined;
      }
      if (!isJsonObject(doc)) {
        this.counters.rejected++;
        continue;
      }
      const v = reportedVersion(doc);
      reports.push({
        deviceId,
        config: doc,
        versionText: v.text,
        versionNum: v.num,
        hash: configHash(doc),
        at,
      });
    }
    if (reports.length === 0) return;
    try {
      this.counters.stored += await this.#storage.transaction((tx) => tx.configPushes.applyReports(reports));
    } catch (err) {
      this.#logger?.warn({ err, reports: reports.length }, 'config report write failed; dropped');
    }
  }
}
