/**
 * OTA jobs: `$fleet/{id}/ota` carries a JSON job; the device downloads the artifact (streamed to
 * a file, hashed on the way, size-limited), checks its sha256, calls the application's `apply`,
 * and reports each step on `$fleet/{id}/ota/status`. A failure after download calls `rollback`.
 * A `{ "cancel": true }` or `{ "halt": true }` message (optionally with a `jobId`) stops the job in
 * progress: the download is aborted, `apply` sees its AbortSignal fire.
 *
 * Statuses: queued → downloading (with progress 0-100) → installing → succeeded, or → failed
 * (→ rolled-back when the rollback callback succeeded).
 */
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { unlink } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { CaInput } from './credentials.js';
import { DeviceError } from './errors.js';

export interface OtaJob {
  jobId: string;
  campaignId?: string;
  /** Firmware version the job installs. */
  version: string;
  /** http(s) URL of the artifact. */
  url: string;
  /** Hex SHA-256 of the artifact. */
  sha256: string;
  /** Artifact size in bytes, when the campaign knows it (checked exactly). */
  size?: number;
}

export const OtaStatus = {
  Queued: 'queued',
  Downloading: 'downloading',
  Installing: 'installing',
  Succeeded: 'succeeded',
  Failed: 'failed',
  RolledBack: 'rolled-back',
} as const;
export type OtaStatusValue = (typeof OtaStatus)[keyof typeof OtaStatus];

/** What the device publishes on `$fleet/{id}/ota/status` (JSON) and emits as the `ota` event. */
export interface OtaStatusReport {
  jobId: string;
  campaignId: string | null;
  version: string;
  status: OtaStatusValue;
  /** Download progress in percent (downloading only). */
  progress?: number;
  error?: { code: string; message: string };
  at: string;
}

export interface OtaArtifact {
  /** Downloaded, verified file. It is deleted after `apply` returns: move or copy it inside. */
  path: string;
  size: number;
  sha256: string;
}

export interface OtaContext {
  /** Fires when the job is cancelled or the device stops. */
  signal: AbortSignal;
}

export interface OtaHandler {
  /** Installs the artifact. Throwing (or rejecting) fails the job and triggers `rollback`. */
  apply(job: OtaJob, artifact: OtaArtifact, context: OtaContext): Promise<void> | void;
  /** Restores the previous firmware after a failed install. */
  rollback?(job: OtaJob, error: DeviceError, context: OtaContext): Promise<void> | void;
  /** Largest artifact accepted, bytes (default 512 MiB). */
  maxBytes?: number;
  /** Where artifacts are downloaded (default the OS temp dir). */
  downloadDir?: string;
  /** Extra CA to trust and certificate checking for https artifact URLs. */
  ca?: CaInput;
  rejectUnauthorized?: boolean;
  /** Report progress every this many percent (default 10). */
  progressStepPercent?: number;
}

/** Parses a message on the OTA topic: a job, a cancel/halt, or null for an empty retained clear. */
export function parseOtaMessage(
  payload: Buffer,
): { kind: 'job'; job: OtaJob } | { kind: 'cancel'; jobId: string | null } | null {
  if (payload.length === 0) return null;
  let v: unknown;
  try {
    v = JSON.parse(payload.toString('utf8'));
  } catch (err) {
    throw new DeviceError('BW_ERR_DEVICE_OTA_JOB_INVALID', 'not JSON', { cause: err });
  }
  if (typeof v !== 'object' || v === null)
    throw new DeviceError('BW_ERR_DEVICE_OTA_JOB_INVALID', 'not an object');
  const o = v as Record<string, unknown>;
  if (o.cancel === true || o.halt === true) {
    return { kind: 'cancel', jobId: typeof o.jobId === 'string' ? o.jobId : null };
  }
  const str = (k: string) => typeof o[k] === 'string' && (o[k] as string).length > 0;
  if (!str('jobId') || !str('version') || !str('url') || !str('sha256')) {
    throw new DeviceError(
      'BW_ERR_DEVICE_OTA_JOB_INVALID',
      'jobId, version, url and sha256 are required strings',
    );
  }
  if (!/^[0-9a-fA-F]{64}$/.test(o.sha256 as string)) {
    throw new DeviceError('BW_ERR_DEVICE_OTA_JOB_INVALID', 'sha256 must be 64 hex digits');
  }
  const url = o.url as string;
  if (!/^https?:\/\//.test(url))
    throw new DeviceError('BW_ERR_DEVICE_OTA_JOB_INVALID', 'url must be http(s)');
  if (o.size !== undefined && !(Number.isSafeInteger(o.size) && (o.size as number) >= 0)) {
    throw new DeviceError('BW_ERR_DEVICE_OTA_JOB_INVALID', 'size must be a non-negative integer');
  }
  const job: OtaJob = {
    jobId: o.jobId as string,
    version: o.version as string,
    url,
    sha256: (o.sha256 as string).toLowerCase(),
  };
  if (typeof o.campaignId === 'string') job.campaignId = o.campaignId;
  if (o.size !== undefined) job.size = o.size as number;
  return { kind: 'job', job };
}

export interface DownloadOptions {
  maxBytes: number;
  dir: string;
  signal: AbortSignal;
  ca?: CaInput;
  rejectUnauthorized?: boolean;
  onProgress?: (bytes: number, total: number | null) => void;
}

/**
 * Streams `job.url` to a file, hashing as it goes, and refuses to write past the limit: the
 * smaller of `maxBytes` and the job's declared size. The file is removed on any failure.
 */
export async function downloadArtifact(job: OtaJob, options: DownloadOptions): Promise<OtaArtifact> {
  const limit = job.size !== undefined ? Math.min(job.size, options.maxBytes) : options.maxBytes;
  if (job.size !== undefined && job.size > options.maxBytes) {
    throw new DeviceError('BW_ERR_DEVICE_OTA_TOO_LARGE', `job size ${job.size} > limit ${options.maxBytes}`);
  }
  const path = join(
    options.dir,
    `breakwater-ota-${job.jobId.replace(/[^\w.-]/g, '_')}-${randomBytes(4).toString('hex')}`,
  );
  const url = new URL(job.url);
  const requestOptions: https.RequestOptions = { signal: options.signal, agent: false };
  if (url.protocol === 'https:') {
    if (options.ca !== undefined) requestOptions.ca = options.ca;
    if (options.rejectUnauthorized !== undefined)
      requestOptions.rejectUnauthorized = options.rejectUnauthorized;
  }
  const res = await new Promise<http.IncomingMessage>((resolve, reject) => {
    const req = (url.protocol === 'https:' ? https : http).get(url, requestOptions, resolve);
    req.on('error', (err) =>
      reject(
        options.signal.aborted
          ? new DeviceError('BW_ERR_DEVICE_OTA_CANCELLED', undefined, { cause: err })
          : new DeviceError('BW_ERR_DEVICE_OTA_DOWNLOAD', err.message, { cause: err }),
      ),
    );
  });
  if (res.statusCode !== 200) {
    res.destroy();
    throw new DeviceError(
      'BW_ERR_DEVICE_OTA_DOWNLOAD',
      `HTTP ${res.statusCode} for ${url.origin}${url.pathname}`,
    );
  }
  const declared = Number(res.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) {
    res.destroy();
    throw new DeviceError('BW_ERR_DEVICE_OTA_TOO_LARGE', `content-length ${declared} > limit ${limit}`);
  }
  const hash = createHash('sha256');
  let bytes = 0;
  const total = job.size ?? (Number.isFinite(declared) ? declared : null);
  const meter = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      bytes += chunk.length;
      // Check before writing: never buffer or store past the limit.
      if (bytes > limit)
        return cb(new DeviceError('BW_ERR_DEVICE_OTA_TOO_LARGE', `more than ${limit} bytes`));
      hash.update(chunk);
      options.onProgress?.(bytes, total);
      cb(null, chunk);
    },
  });
  try {
    await pipeline(res, meter, createWriteStream(path), { signal: options.signal });
  } catch (err) {
    await unlink(path).catch(() => {});
    if (err instanceof DeviceError) throw err;
    if (options.signal.aborted)
      throw new DeviceError('BW_ERR_DEVICE_OTA_CANCELLED', undefined, { cause: err });
    throw new DeviceError('BW_ERR_DEVICE_OTA_DOWNLOAD', (err as Error).message, { cause: err });
  }
  const digest = hash.digest('hex');
  if (job.size !== undefined && bytes !== job.size) {
    await unlink(path).catch(() => {});
    throw new DeviceError('BW_ERR_DEVICE_OTA_DOWNLOAD', `got ${bytes} bytes, job says ${job.size}`);
  }
  if (digest !== job.sha256) {
    await unlink(path).catch(() => {});
    throw new DeviceError('BW_ERR_DEVICE_OTA_CHECKSUM', `expected ${job.sha256}, got ${digest}`);
  }
  return { path, size: bytes, sha256: digest };
}

/** Reports a status; the device publishes it (or queues it until connected). */
export type OtaReporter = (report: OtaStatusReport) => void;

/**
 * Runs OTA jobs one at a time. A job arriving while another runs waits in a single slot (the
 * newest wins: a campaign that moved on does not need the older job). Finished job ids are
 * remembered so a retained job redelivered on reconnect is not run twice.
 */
export class OtaRunner {
  readonly #handler: OtaHandler;
  readonly #report: OtaReporter;
  readonly #getFirmware: () => string | null;
  readonly #setFirmware: (version: string) => void;
  readonly #finished: string[] = [];
  #current: { job: OtaJob; abort: AbortController } | null = null;
  #pending: OtaJob | null = null;
  #idle: Promise<void> = Promise.resolve();

  constructor(
    handler: OtaHandler,
    report: OtaReporter,
    getFirmware: () => string | null,
    setFirmware: (version: string) => void,
  ) {
    this.#handler = handler;
    this.#report = report;
    this.#getFirmware = getFirmware;
    this.#setFirmware = setFirmware;
  }

  /** The job being run, if any. */
  get current(): OtaJob | null {
    return this.#current?.job ?? null;
  }

  /** Resolves when no job is running (for tests and shutdown). */
  idle(): Promise<void> {
    return this.#idle;
  }

  handle(message: Exclude<ReturnType<typeof parseOtaMessage>, null>): void {
    if (message.kind === 'cancel') {
      this.cancel(message.jobId);
      return;
    }
    const { job } = message;
    if (this.#finished.includes(job.jobId) || this.#current?.job.jobId === job.jobId) return;
    if (this.#pending?.jobId === job.jobId) return;
    this.#status(job, OtaStatus.Queued);
    if (this.#current) {
      this.#pending = job;
      return;
    }
    this.#start(job);
  }

  /** Cancels the running job (and a waiting one) when `jobId` matches or is null. */
  cancel(jobId: string | null): void {
    if (this.#pending && (jobId === null || this.#pending.jobId === jobId)) {
      const job = this.#pending;
      this.#pending = null;
      this.#remember(job.jobId);
      this.#status(job, OtaStatus.Failed, { error: new DeviceError('BW_ERR_DEVICE_OTA_CANCELLED') });
    }
    if (this.#current && (jobId === null || this.#current.job.jobId === jobId)) this.#current.abort.abort();
    // A cancel for a job not started yet (the cancel raced ahead) must also stop it later.
    if (jobId !== null && !this.#current && !this.#pending) this.#remember(jobId);
  }

  /** Stops everything (device stop). */
  close(): void {
    this.#pending = null;
    this.#current?.abort.abort();
  }

  #remember(jobId: string): void {
    this.#finished.push(jobId);
    if (this.#finished.length > 32) this.#finished.shift();
  }

  #status(job: OtaJob, status: OtaStatusValue, extra: { progress?: number; error?: DeviceError } = {}): void {
    const report: OtaStatusReport = {
      jobId: job.jobId,
      campaignId: job.campaignId ?? null,
      version: job.version,
      status,
      at: new Date().toISOString(),
    };
    if (extra.progress !== undefined) report.progress = extra.progress;
    if (extra.error) report.error = { code: extra.error.code, message: extra.error.message };
    this.#report(report);
  }

  #start(job: OtaJob): void {
    const abort = new AbortController();
    this.#current = { job, abort };
    this.#idle = this.#run(job, abort.signal).finally(() => {
      this.#current = null;
      this.#remember(job.jobId);
      const next = this.#pending;
      this.#pending = null;
      if (next) this.#start(next);
    });
  }

  async #run(job: OtaJob, signal: AbortSignal): Promise<void> {
    // Already on that version (the job was redelivered after a reboot that applied it).
    if (this.#getFirmware() === job.version) {
      this.#status(job, OtaStatus.Succeeded);
      return;
    }
    const h = this.#handler;
    const step = h.progressStepPercent ?? 10;
    let artifact: OtaArtifact;
    let lastPct = -1;
    this.#status(job, OtaStatus.Downloading, { progress: 0 });
    try {
      const options: DownloadOptions = {
        maxBytes: h.maxBytes ?? 512 * 1024 * 1024,
        dir: h.downloadDir ?? tmpdir(),
        signal,
        onProgress: (bytes, total) => {
          if (total === null || total === 0) return;
          const pct = Math.floor((bytes / total) * 100);
          if (pct >= lastPct + step || (pct === 100 && lastPct !== 100)) {
            lastPct = pct;
            if (pct > 0) this.#status(job, OtaStatus.Downloading, { progress: Math.min(pct, 100) });
          }
        },
      };
      if (h.ca !== undefined) options.ca = h.ca;
      if (h.rejectUnauthorized !== undefined) options.rejectUnauthorized = h.rejectUnauthorized;
      artifact = await downloadArtifact(job, options);
    } catch (err) {
      // Nothing was installed: no rollback.
      this.#status(job, OtaStatus.Failed, { error: toDeviceError(err, signal) });
      return;
    }
    this.#status(job, OtaStatus.Installing);
    try {
      if (signal.aborted) throw new DeviceError('BW_ERR_DEVICE_OTA_CANCELLED');
      await h.apply(job, artifact, { signal });
      if (signal.aborted) throw new DeviceError('BW_ERR_DEVICE_OTA_CANCELLED');
      this.#setFirmware(job.version);
      this.#status(job, OtaStatus.Succeeded);
    } catch (err) {
      const error = toDeviceError(err, signal, 'BW_ERR_DEVICE_OTA_APPLY');
      this.#status(job, OtaStatus.Failed, { error });
      if (h.rollback) {
        try {
          await h.rollback(job, error, { signal: new AbortController().signal });
          this.#status(job, OtaStatus.RolledBack);
        } catch (rollbackErr) {
          this.#status(job, OtaStatus.Failed, {
            error: new DeviceError(
              'BW_ERR_DEVICE_OTA_APPLY',
              `rollback failed: ${(rollbackErr as Error)?.message}`,
              {
                cause: rollbackErr,
              },
            ),
          });
        }
      }
    } finally {
      await unlink(artifact.path).catch(() => {});
    }
  }
}

function toDeviceError(
  err: unknown,
  signal: AbortSignal,
  code: 'BW_ERR_DEVICE_OTA_APPLY' | 'BW_ERR_DEVICE_OTA_DOWNLOAD' = 'BW_ERR_DEVICE_OTA_DOWNLOAD',
): DeviceError {
  if (err instanceof DeviceError) return err;
  if (signal.aborted) return new DeviceError('BW_ERR_DEVICE_OTA_CANCELLED', undefined, { cause: err });
  return new DeviceError(code, (err as Error)?.message ?? String(err), { cause: err });
}
