/**
 * OTA jobs as a simulated device sees them: the job JSON on `$fleet/{id}/ota` (the device SDK's
 * format, packages/device/src/ota.ts) and the status reports on `$fleet/{id}/ota/status`.
 * Parsed here rather than imported: the SDK's OTA module is only reachable through its main entry,
 * which loads MQTT.js, and the simulator needs only the fields, not the SDK's download runner.
 */
import { createHash } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';

export interface SimOtaJob {
  jobId: string;
  campaignId: string | null;
  version: string;
  url: string;
  sha256: string;
}

export type OtaMessage = { kind: 'job'; job: SimOtaJob } | { kind: 'cancel'; jobId: string | null };

/** A job, a cancel/halt, or null (an empty retained clear or anything unreadable). */
export function parseOtaJob(payload: Buffer): OtaMessage | null {
  if (payload.length === 0) return null;
  let v: unknown;
  try {
    v = JSON.parse(payload.toString('utf8'));
  } catch {
    return null;
  }
  if (typeof v !== 'object' || v === null) return null;
  const o = v as Record<string, unknown>;
  if (o.cancel === true || o.halt === true) {
    return { kind: 'cancel', jobId: typeof o.jobId === 'string' ? o.jobId : null };
  }
  if (typeof o.jobId !== 'string' || o.jobId === '' || typeof o.version !== 'string' || o.version === '')
    return null;
  return {
    kind: 'job',
    job: {
      jobId: o.jobId,
      campaignId: typeof o.campaignId === 'string' ? o.campaignId : null,
      version: o.version,
      url: typeof o.url === 'string' ? o.url : '',
      sha256: typeof o.sha256 === 'string' ? o.sha256.toLowerCase() : '',
    },
  };
}

/** The SDK's OtaStatusReport, as JSON. */
export function otaStatusPayload(
  job: SimOtaJob,
  status: string,
  extra: { progress?: number; error?: { code: string; message: string } } = {},
): string {
  const report: Record<string, unknown> = {
    jobId: job.jobId,
    campaignId: job.campaignId,
    version: job.version,
    status,
  };
  if (extra.progress !== undefined) report.progress = extra.progress;
  if (extra.error) report.error = extra.error;
  report.at = new Date().toISOString();
  return JSON.stringify(report);
}

/**
 * Downloads the artifact and checks its sha256 (for 'fetch' mode: puts real load on the artifact
 * server). Nothing is written to disk. Resolves with an error code, or null when it verified.
 */
export function fetchArtifact(job: SimOtaJob, signal: AbortSignal): Promise<string | null> {
  return new Promise((resolve) => {
    let url: URL;
    try {
      url = new URL(job.url);
    } catch {
      resolve('BW_ERR_DEVICE_OTA_DOWNLOAD');
      return;
    }
    const get = url.protocol === 'https:' ? https.get : http.get;
    const req = get(url, { signal, agent: false }, (res) => {
      if (res.statusCode !== 200) {
        res.resume();
        resolve('BW_ERR_DEVICE_OTA_DOWNLOAD');
        return;
      }
      const hash = createHash('sha256');
      res.on('data', (chunk: Buffer) => hash.update(chunk));
      res.on('end', () => resolve(hash.digest('hex') === job.sha256 ? null : 'BW_ERR_DEVICE_OTA_CHECKSUM'));
      res.on('error', () => resolve('BW_ERR_DEVICE_OTA_DOWNLOAD'));
    });
    req.on('error', () =>
      resolve(signal.aborted ? 'BW_ERR_DEVICE_OTA_CANCELLED' : 'BW_ERR_DEVICE_OTA_DOWNLOAD'),
    );
  });
}
