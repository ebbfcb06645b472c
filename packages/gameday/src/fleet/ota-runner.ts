/**
 * A simulated device's OTA runner: takes jobs from `$fleet/{id}/ota`, downloads (simulated, or a
 * real fetch with sha256 check), installs, reboots into the new version, and reports each step
 * like the SDK's runner does (one job at a time, the newer job wins, a cancel stops it unless it
 * is already activating). The Fleet owns the reports' transport and the reboot.
 */
import type { SimDevice } from './device.js';
import { inRange } from './fleet-options.js';
import { fetchArtifact, parseOtaJob, type SimOtaJob } from './ota.js';
import type { FleetOptions } from './types.js';

export type OtaReportExtra = { progress?: number; error?: { code: string; message: string } };

/** What the runner needs of its Fleet. */
export interface OtaRunnerHost {
  readonly stopping: boolean;
  /** Publishes an OTA status report now, or queues it until the next connect. */
  report(d: SimDevice, job: SimOtaJob, status: string, extra?: OtaReportExtra): void;
  /** Reboots the device into its (new) firmware; down for `downMs`. */
  reboot(d: SimDevice, downMs: number): void;
}

export class SimOtaRunner {
  readonly #host: OtaRunnerHost;
  readonly #behaviour: NonNullable<FleetOptions['ota']>;
  readonly #random: () => number;
  readonly #scale: number;

  constructor(host: OtaRunnerHost, behaviour: FleetOptions['ota'], random: () => number, scale: number) {
    this.#host = host;
    this.#behaviour = behaviour ?? {};
    this.#random = random;
    this.#scale = scale;
  }

  /** A message on the device's OTA topic: a job or a cancel. */
  onJob(d: SimDevice, payload: Buffer): void {
    const message = parseOtaJob(payload);
    if (!message) return;
    const host = this.#host;
    if (message.kind === 'cancel') {
      const ota = d.ota;
      if (ota && ota.phase !== 'activating' && (message.jobId === null || message.jobId === ota.job.jobId)) {
        this.abort(d);
        d.rememberJob(ota.job.jobId);
        host.report(d, ota.job, 'failed', {
          error: { code: 'BW_ERR_DEVICE_OTA_CANCELLED', message: 'cancelled' },
        });
      } else if (message.jobId !== null && !ota) {
        d.rememberJob(message.jobId);
      }
      return;
    }
    const { job } = message;
    if (d.finishedJobs?.includes(job.jobId) || d.ota?.job.jobId === job.jobId) return;
    if (d.ota) {
      // One job at a time; the newer one wins, as in the SDK's runner.
      if (d.ota.phase === 'activating') return;
      this.abort(d);
    }
    host.report(d, job, 'queued');
    if (d.firmware === job.version) {
      d.rememberJob(job.jobId);
      host.report(d, job, 'succeeded');
      return;
    }
    d.ota = { job, phase: 'downloading', abort: null };
    host.report(d, job, 'downloading', { progress: 0 });
    if (this.#behaviour.download === 'fetch') {
      const abort = new AbortController();
      d.ota.abort = abort;
      void fetchArtifact(job, abort.signal).then((errorCode) => {
        if (d.ota?.job !== job || abort.signal.aborted) return;
        d.ota.abort = null;
        if (errorCode) this.#fail(d, job, errorCode, 'download failed');
        else this.#install(d, job);
      });
      return;
    }
    this.#step(d, this.#delay(this.#behaviour.downloadMs ?? [200, 1000]), () => this.#install(d, job));
  }

  /** Stops the running job's timers and download (an activating job carries on: it is rebooting). */
  abort(d: SimDevice): void {
    if (d.otaTimer) clearTimeout(d.otaTimer);
    d.otaTimer = null;
    d.ota?.abort?.abort();
    if (d.ota?.phase !== 'activating') d.ota = null;
  }

  #install(d: SimDevice, job: SimOtaJob): void {
    const host = this.#host;
    if (d.ota?.job !== job || host.stopping) return;
    host.report(d, job, 'downloading', { progress: 100 });
    host.report(d, job, 'installing');
    d.ota.phase = 'installing';
    this.#step(d, this.#delay(this.#behaviour.installMs ?? [100, 500]), () => {
      if (d.ota?.job !== job || host.stopping) return;
      if (this.#random() < (this.#behaviour.failFraction ?? 0)) {
        this.#fail(d, job, 'BW_ERR_DEVICE_OTA_APPLY', 'simulated install failure');
        host.report(d, job, 'rolled-back');
        return;
      }
      d.ota.phase = 'activating';
      d.previousFirmware = d.firmware;
      d.firmware = job.version;
      d.crashes = 0;
      host.reboot(d, this.#delay(this.#behaviour.rebootDownMs ?? [2000, 8000]));
    });
  }

  #fail(d: SimDevice, job: SimOtaJob, code: string, message: string): void {
    d.ota = null;
    d.rememberJob(job.jobId);
    this.#host.report(d, job, 'failed', { error: { code, message } });
  }

  #step(d: SimDevice, ms: number, step: () => void): void {
    if (d.otaTimer) clearTimeout(d.otaTimer);
    d.otaTimer = setTimeout(() => {
      d.otaTimer = null;
      step();
    }, Math.floor(ms));
  }

  /** A device-chosen delay: jittered in range, scaled by the fleet's timeScale. */
  #delay(range: [number, number]): number {
    return inRange(this.#random, range) * this.#scale;
  }
}
