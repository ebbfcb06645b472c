/**
 * The glue between the connection and the OTA runner (ota.ts): jobs arrive on `$fleet/{id}/ota`,
 * statuses go to `$fleet/{id}/ota/status`. A status produced while offline waits in a small
 * outbox and goes out on the next connect, so the control plane still hears how a job ended.
 */
import type { Attempt } from './connection-attempt.js';
import { DeviceError } from './errors.js';
import { type OtaHandler, OtaRunner, type OtaStatusReport, parseOtaMessage } from './ota.js';

/** Statuses kept while offline; the oldest go first (the newest say where the job is now). */
const OUTBOX_LIMIT = 64;

export interface OtaChannelDeps {
  /** The device's current connection attempt (connected or not), if any. */
  current(): Attempt | null;
  firmware(): string | null;
  setFirmware(version: string): void;
  status(report: OtaStatusReport): void;
  error(err: Error): void;
}

export class OtaChannel {
  readonly #statusTopic: string;
  readonly #deps: OtaChannelDeps;
  #runner: OtaRunner | null = null;
  #outbox: string[] = [];

  constructor(statusTopic: string, deps: OtaChannelDeps) {
    this.#statusTopic = statusTopic;
    this.#deps = deps;
  }

  /** A handler is registered: the device subscribes to its OTA topic. */
  get enabled(): boolean {
    return this.#runner !== null;
  }

  /** Replaces the handler (a job of the previous one is aborted). */
  setHandler(handler: OtaHandler): void {
    if (typeof handler?.apply !== 'function') {
      throw new DeviceError('BW_ERR_DEVICE_OPTIONS_INVALID', 'onOta: handler.apply must be a function');
    }
    this.#runner?.close();
    this.#runner = new OtaRunner(
      handler,
      (report) => this.#publishStatus(report),
      () => this.#deps.firmware(),
      (version) => this.#deps.setFirmware(version),
    );
  }

  /** A message on `$fleet/{id}/ota`. */
  handle(payload: Buffer): void {
    const runner = this.#runner;
    if (!runner) return;
    try {
      const msg = parseOtaMessage(payload);
      if (msg) runner.handle(msg);
    } catch (err) {
      this.#deps.error(err as Error);
    }
  }

  /** Publishes the statuses kept while offline (on connect). */
  flush(a: Attempt): void {
    const payloads = this.#outbox;
    this.#outbox = [];
    for (const p of payloads) this.#publish(a, p);
  }

  /** Resolves when the running job (if any) has finished. */
  idle(): Promise<void> {
    return this.#runner?.idle() ?? Promise.resolve();
  }

  /** The device stops: a running job is aborted. */
  close(): void {
    this.#runner?.close();
  }

  #publishStatus(report: OtaStatusReport): void {
    this.#deps.status(report);
    const payload = JSON.stringify(report);
    const a = this.#deps.current();
    if (a?.connected && !a.done) {
      this.#publish(a, payload);
      return;
    }
    this.#outbox.push(payload);
    if (this.#outbox.length > OUTBOX_LIMIT) this.#outbox.shift();
  }

  #publish(a: Attempt, payload: string): void {
    a.client.publish(this.#statusTopic, payload, { qos: 1, retain: false }, (err) => {
      if (err && !a.done) this.#deps.error(err);
    });
  }
}
