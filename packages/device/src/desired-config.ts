/**
 * The device's side of config push: the desired config arrives retained on `$fleet/{id}/config`
 * and runs through the handler once per version; the config the device runs is reported
 * retained on `$fleet/{id}/config/reported`.
 */
import { createHash } from 'node:crypto';
import type { Attempt } from './connection-attempt.js';
import { DeviceError } from './errors.js';

/** The desired configuration delivered on `$fleet/{id}/config` (a JSON object). */
export type DesiredConfig = Record<string, unknown>;

export interface ConfigEvent {
  version: string;
  config: DesiredConfig;
}

export type ConfigHandler = (config: DesiredConfig, meta: { version: string }) => void | Promise<void>;

export interface DesiredConfigEvents {
  config(event: ConfigEvent): void;
  error(err: Error): void;
}

export class DesiredConfigChannel {
  readonly #reportedTopic: string;
  readonly #events: DesiredConfigEvents;
  #handler: ConfigHandler | null = null;
  #appliedVersion: string | null = null;
  #chain: Promise<void> = Promise.resolve();
  /** The latest report not yet acknowledged, and everyone waiting for it (or a newer one). */
  #reported: { payload: string; waiters: Array<{ resolve: () => void; reject: (e: Error) => void }> } | null =
    null;

  constructor(reportedTopic: string, events: DesiredConfigEvents) {
    this.#reportedTopic = reportedTopic;
    this.#events = events;
  }

  onConfig(handler: ConfigHandler): void {
    this.#handler = handler;
  }

  /** A message on `$fleet/{id}/config`. */
  handle(payload: Buffer): void {
    if (payload.length === 0) return; // retained config cleared
    let config: DesiredConfig;
    try {
      const v: unknown = JSON.parse(payload.toString('utf8'));
      if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('not a JSON object');
      config = v as DesiredConfig;
    } catch (err) {
      this.#events.error(
        new DeviceError('BW_ERR_DEVICE_HANDLER', `config: ${(err as Error).message}`, { cause: err }),
      );
      return;
    }
    const raw = config.version;
    const version =
      typeof raw === 'string' || typeof raw === 'number'
        ? String(raw)
        : `sha256:${createHash('sha256').update(payload).digest('hex')}`;
    // Serialized: a config arriving while the previous one is being applied waits its turn.
    this.#chain = this.#chain.then(async () => {
      if (version === this.#appliedVersion) return;
      try {
        await this.#handler?.(config, { version });
      } catch (err) {
        // Not marked applied: the retained config is offered again on the next connect.
        this.#events.error(new DeviceError('BW_ERR_DEVICE_HANDLER', `config ${version}`, { cause: err }));
        return;
      }
      this.#appliedVersion = version;
      this.#events.config({ version, config });
    });
  }

  /**
   * Keeps `config` as the report to publish (replacing an unacknowledged older one) and
   * publishes it now when `current` is connected; resolves once the broker acknowledged it.
   */
  report(config: DesiredConfig, current: Attempt | null): Promise<void> {
    const payload = JSON.stringify(config);
    return new Promise((resolve, reject) => {
      const waiters = this.#reported?.waiters ?? [];
      waiters.push({ resolve, reject });
      this.#reported = { payload, waiters };
      if (current?.connected) this.flush(current);
    });
  }

  /** Publishes the pending report on `a` (on connect, or when one is made while connected). */
  flush(a: Attempt): void {
    const r = this.#reported;
    if (!r) return;
    a.client.publish(this.#reportedTopic, r.payload, { qos: 1, retain: true }, (err) => {
      // Superseded by a newer report, or the connection dropped: the newer/next flush settles it.
      if (this.#reported !== r) return;
      if (err) {
        if (!a.done) this.#events.error(err);
        return;
      }
      this.#reported = null;
      for (const w of r.waiters) w.resolve();
    });
  }

  /** The device stopped: a pending report will never be sent. */
  abandon(err: Error): void {
    for (const w of this.#reported?.waiters ?? []) w.reject(err);
    this.#reported = null;
  }
}
