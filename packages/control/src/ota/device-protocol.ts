/**
 * The OTA wire format the control plane shares with the device SDK (packages/device/src/ota.ts).
 * The job goes QoS 1 **retained** on `$fleet/{id}/ota`, so a device that is offline gets it when
 * it reconnects; reports come back on `$fleet/{id}/ota/status`. A halt clears the retained job
 * (empty retained publish) and sends `{"halt": true, "jobId"}`, which the SDK treats as a cancel:
 * a queued job is dropped, a download or install in progress is aborted.
 */
import type { CampaignRecord, JobState } from './types.js';

export function otaTopic(deviceId: string): string {
  return `$fleet/${deviceId}/ota`;
}

export const OTA_STATUS_FILTER = '$fleet/+/ota/status';

/** The device a `$fleet/{id}/ota/status` topic names. */
export function statusTopicDevice(topic: string): string | undefined {
  return topic.split('/')[1];
}

/** The job as the device SDK parses it (packages/device/src/ota.ts `parseOtaMessage`). */
export function jobPayload(c: Pick<CampaignRecord, 'id' | 'artifact'>, jobId: string): string {
  const job: Record<string, unknown> = {
    jobId,
    campaignId: c.id,
    version: c.artifact.version,
    url: c.artifact.url,
    sha256: c.artifact.sha256,
  };
  if (c.artifact.size !== null) job.size = c.artifact.size;
  return JSON.stringify(job);
}

/** The SDK's cancel for job `jobId` (sent after the retained job was cleared). */
export function haltPayload(jobId: string, campaignId: string, reason: string): string {
  return JSON.stringify({ halt: true, jobId, campaignId, reason });
}

/** A device's report, as far as it was parsed; `progress` and `error` are checked where used. */
export interface StatusReport {
  jobId: string;
  status: JobState;
  progress?: unknown;
  error?: unknown;
}

const REPORTED_STATES = new Set([
  'queued',
  'downloading',
  'installing',
  'succeeded',
  'failed',
  'rolled-back',
]);

/** null for anything that is not a JSON object with a string job id and a state a device reports. */
export function parseStatusReport(payload: Buffer): StatusReport | null {
  let report: { jobId?: unknown; status?: unknown; progress?: unknown; error?: unknown };
  try {
    report = JSON.parse(payload.toString('utf8')) as typeof report;
  } catch {
    return null;
  }
  if (typeof report !== 'object' || report === null) return null;
  const { jobId, status } = report;
  if (typeof jobId !== 'string' || typeof status !== 'string' || !REPORTED_STATES.has(status)) return null;
  return { jobId, status: status as JobState, progress: report.progress, error: report.error };
}
