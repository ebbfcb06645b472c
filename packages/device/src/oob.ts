/**
 * The out-of-band channel: small signed JSON reports over HTTPS to the control plane, for the
 * moments the broker cannot carry them (the auth breaker opened; the device cannot get in).
 *
 * Independent of the broker by construction: its own HTTP request, its own queue, its own slow
 * backoff. A fleet whose broker is down must not stampede the control plane either, so the
 * backoff starts at 30 s and doubles to 1 h with jitter, and the queue is small and bounded
 * (oldest dropped first, and counted).
 *
 * Wire format: `POST <url>` with `content-type: application/json`, body
 * `{deviceId, reason, attempts, firmware, lastError, at}`, headers `x-breakwater-device: <id>` and
 * `x-breakwater-signature` (see `signBody` in credentials.ts).
 */
import http from 'node:http';
import https from 'node:https';
import type { CaInput } from './credentials.js';
import { DeviceError } from './errors.js';
import type { Random } from './random.js';
import type { Scheduler } from './scheduler.js';

export interface OobReport {
  deviceId: string;
  /** Why the device reports, e.g. `auth-breaker-open`. */
  reason: string;
  /** Connection attempts so far. */
  attempts: number;
  firmware: string | null;
  lastError: string | null;
  /** ISO 8601 time the report was made. */
  at: string;
}

export interface OobOptions {
  /** `https://` URL the reports are POSTed to (`http://` only with `allowInsecureHttp`). */
  url: string;
  /** Extra CA certificate(s) to trust (a private control-plane CA, or a test's self-signed cert). */
  ca?: CaInput;
  /** Default true. Turning it off is for tests only. */
  rejectUnauthorized?: boolean;
  /** Allow a plain `http://` URL (local testing only: the report would travel in clear). */
  allowInsecureHttp?: boolean;
  /** Reports kept while the endpoint is unreachable (default 16); the oldest is dropped first. */
  queueLimit?: number;
  /** First retry delay after a failed send (default 30 s), doubling per failure … */
  minBackoffMs?: number;
  /** … up to this (default 1 h). Each delay is jittered uniformly within [delay/2, delay]. */
  maxBackoffMs?: number;
  /** Per-request timeout (default 15 s). */
  timeoutMs?: number;
  /**
   * Client certificate for mTLS to the report endpoint. Filled in from certificate credentials
   * when not given, so the control plane sees the same identity as the broker.
   */
  clientCert?: { key: string | Buffer; cert: string | Buffer; passphrase?: string };
}

export interface OobStats {
  queued: number;
  sent: number;
  /** Dropped because the queue was full. */
  dropped: number;
  /** Dropped because the server refused them for good (4xx other than 408/429). */
  rejected: number;
  /** Failed sends (each is retried). */
  failures: number;
}

/** The device credential's signature for a body, or null (see credentials.ts `signBody`). */
export type BodySigner = (body: Buffer) => string | null;

/** Called on every outcome, for the device's events and the caller's logs. */
export type OobListener = (
  event: 'sent' | 'failed' | 'dropped' | 'rejected',
  report: OobReport,
  error?: Error,
) => void;

interface SendResult {
  ok: boolean;
  permanent: boolean;
  retryAfterMs?: number;
  error?: Error;
}

export class OobReporter {
  readonly #url: URL;
  readonly #options: OobOptions;
  readonly #deviceId: string;
  readonly #signer: BodySigner;
  readonly #scheduler: Scheduler;
  readonly #random: Random;
  readonly #queue: OobReport[] = [];
  readonly #stats: OobStats = { queued: 0, sent: 0, dropped: 0, rejected: 0, failures: 0 };
  #listener: OobListener | null = null;
  #timer: unknown = null;
  #sending = false;
  #closed = false;
  #consecutiveFailures = 0;
  #inflight: http.ClientRequest | null = null;
  #idleWaiters: Array<() => void> = [];

  constructor(
    deviceId: string,
    options: OobOptions,
    signer: BodySigner,
    scheduler: Scheduler,
    random: Random,
  ) {
    let url: URL;
    try {
      url = new URL(options.url);
    } catch {
      throw new DeviceError('BW_ERR_DEVICE_OPTIONS_INVALID', `oob.url: not a URL: ${options.url}`);
    }
    if (url.protocol !== 'https:' && !(url.protocol === 'http:' && options.allowInsecureHttp)) {
      throw new DeviceError(
        'BW_ERR_DEVICE_OPTIONS_INVALID',
        `oob.url must be https:// (got ${url.protocol}); set oob.allowInsecureHttp for local tests`,
      );
    }
    this.#url = url;
    this.#options = options;
    this.#deviceId = deviceId;
    this.#signer = signer;
    this.#scheduler = scheduler;
    this.#random = random;
  }

  onEvent(listener: OobListener): void {
    this.#listener = listener;
  }

  get stats(): Readonly<OobStats> {
    return { ...this.#stats, queued: this.#queue.length };
  }

  /** Queues a report and starts sending unless a send or a backoff wait is under way. */
  report(report: OobReport): void {
    if (this.#closed) return;
    this.#queue.push(report);
    const limit = this.#options.queueLimit ?? 16;
    while (this.#queue.length > limit) {
      const dropped = this.#queue.shift()!;
      this.#stats.dropped++;
      this.#listener?.('dropped', dropped);
    }
    if (!this.#sending && this.#timer === null) void this.#drain();
  }

  /** Resolves when the queue is empty and nothing is in flight (for tests and shutdown). */
  idle(): Promise<void> {
    if (this.#queue.length === 0 && !this.#sending) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  /** Stops sending; queued reports stay queued but are no longer retried. */
  close(): void {
    this.#closed = true;
    if (this.#timer !== null) this.#scheduler.clearTimeout(this.#timer);
    this.#timer = null;
    this.#inflight?.destroy();
    this.#inflight = null;
    this.#resolveIdle();
  }

  #resolveIdle(): void {
    const ws = this.#idleWaiters;
    this.#idleWaiters = [];
    for (const w of ws) w();
  }

  async #drain(): Promise<void> {
    this.#sending = true;
    while (!this.#closed && this.#queue.length > 0) {
      const report = this.#queue[0]!;
      const result = await this.#send(report);
      if (this.#closed) break;
      if (result.ok || result.permanent) {
        // The report may have been pushed out of the queue while in flight; remove it by identity.
        const i = this.#queue.indexOf(report);
        if (i >= 0) this.#queue.splice(i, 1);
        this.#consecutiveFailures = 0;
        if (result.ok) {
          this.#stats.sent++;
          this.#listener?.('sent', report);
        } else {
          this.#stats.rejected++;
          this.#listener?.('rejected', report, result.error);
        }
        continue;
      }
      this.#stats.failures++;
      this.#consecutiveFailures++;
      this.#listener?.('failed', report, result.error);
      const min = this.#options.minBackoffMs ?? 30_000;
      const max = this.#options.maxBackoffMs ?? 3_600_000;
      const ceiling = Math.min(max, min * 2 ** (this.#consecutiveFailures - 1));
      let delay = Math.floor(ceiling / 2 + this.#random() * (ceiling / 2));
      if (result.retryAfterMs !== undefined) delay = Math.max(delay, Math.min(result.retryAfterMs, max));
      this.#sending = false;
      this.#timer = this.#scheduler.setTimeout(() => {
        this.#timer = null;
        void this.#drain();
      }, delay);
      return;
    }
    this.#sending = false;
    if (this.#queue.length === 0) this.#resolveIdle();
  }

  #send(report: OobReport): Promise<SendResult> {
    const body = Buffer.from(JSON.stringify(report));
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      'content-length': String(body.length),
      'x-breakwater-device': this.#deviceId,
    };
    const signature = this.#signer(body);
    if (signature !== null) headers['x-breakwater-signature'] = signature;
    const isHttps = this.#url.protocol === 'https:';
    const requestOptions: https.RequestOptions = {
      method: 'POST',
      headers,
      timeout: this.#options.timeoutMs ?? 15_000,
      // A fresh connection per report: reports are rare, and a pooled socket must not outlive
      // the device (no leaked handles).
      agent: false,
    };
    if (isHttps) {
      if (this.#options.ca !== undefined) requestOptions.ca = this.#options.ca;
      if (this.#options.rejectUnauthorized !== undefined) {
        requestOptions.rejectUnauthorized = this.#options.rejectUnauthorized;
      }
      const cc = this.#options.clientCert;
      if (cc) {
        requestOptions.key = cc.key;
        requestOptions.cert = cc.cert;
        if (cc.passphrase !== undefined) requestOptions.passphrase = cc.passphrase;
      }
    }
    return new Promise((resolve) => {
      let settled = false;
      const done = (r: SendResult) => {
        if (settled) return;
        settled = true;
        this.#inflight = null;
        resolve(r);
      };
      const req = (isHttps ? https : http).request(this.#url, requestOptions, (res) => {
        res.resume();
        res.on('end', () => {
          const status = res.statusCode ?? 0;
          if (status >= 200 && status < 300) return done({ ok: true, permanent: false });
          const error = new DeviceError('BW_ERR_DEVICE_OOB_SEND', `HTTP ${status}`);
          const retryAfter = Number(res.headers['retry-after']);
          const r: SendResult = {
            ok: false,
            // 4xx means this report will never be accepted (bad signature, unknown device):
            // retrying it would only add load. 408 and 429 are the retryable 4xx.
            permanent: status >= 400 && status < 500 && status !== 408 && status !== 429,
            error,
          };
          if (Number.isFinite(retryAfter) && retryAfter > 0) r.retryAfterMs = retryAfter * 1000;
          done(r);
        });
        res.on('error', (err) => done({ ok: false, permanent: false, error: err }));
      });
      this.#inflight = req;
      req.on('timeout', () => req.destroy(new DeviceError('BW_ERR_DEVICE_OOB_SEND', 'request timed out')));
      req.on('error', (err) =>
        done({
          ok: false,
          permanent: false,
          error: new DeviceError('BW_ERR_DEVICE_OOB_SEND', err.message, { cause: err }),
        }),
      );
      req.on('close', () =>
        done({
          ok: false,
          permanent: false,
          error: new DeviceError('BW_ERR_DEVICE_OOB_SEND', 'connection closed'),
        }),
      );
      req.end(body);
    });
  }
}
