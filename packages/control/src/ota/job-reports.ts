/** Device reports → job state (and, on `succeeded`, the device's firmware version in the registry). */
import type { StatusReport } from './device-protocol.js';
import type { EngineContext } from './engine-context.js';
import type { JobPublisher } from './job-publisher.js';
import type { JobState } from './types.js';

const TERMINAL_REPORTS = new Set(['succeeded', 'failed', 'rolled-back']);

/**
 * Applies one report from `deviceId` (run in the serial queue). Returns the id of the running
 * campaign the report belongs to, which the caller re-evaluates; null when there is none.
 */
export async function applyReport(
  ctx: EngineContext,
  publisher: JobPublisher,
  deviceId: string,
  report: StatusReport,
): Promise<string | null> {
  const repo = ctx.storage.campaigns;
  const job = await repo.findJob(deviceId, report.jobId);
  if (!job) return null;
  const error = report.error as { code?: unknown; message?: unknown } | undefined;
  const errorCode = typeof error?.code === 'string' ? error.code : null;
  // The SDK answers a cancel with `failed` + BW_ERR_DEVICE_OTA_CANCELLED: that is our halt landing.
  const next: JobState =
    report.status === 'failed' && errorCode === 'BW_ERR_DEVICE_OTA_CANCELLED' ? 'cancelled' : report.status;
  if (!acceptTransition(job.state, next)) return null;
  const now = ctx.clock.now();
  const c = await repo.get(job.campaignId);
  await ctx.storage.transaction(async (tx) => {
    await tx.campaigns.updateJob(
      job.campaignId,
      deviceId,
      {
        state: next,
        lastReportAt: now,
        progress: typeof report.progress === 'number' ? Math.round(report.progress) : job.progress,
        errorCode: errorCode ?? (next === 'failed' ? 'unknown' : null),
        errorMessage: typeof error?.message === 'string' ? error.message.slice(0, 500) : null,
      },
      now,
    );
    if (next === 'succeeded' && c) {
      await tx.devices.update(deviceId, { firmwareVersion: c.artifact.version }, now);
    }
  });
  if (TERMINAL_REPORTS.has(next)) await publisher.clearRetained([job]);
  return c?.state === 'running' ? c.id : null;
}

/**
 * Which reported state may replace the stored one. Progress moves forward only; a final report
 * replaces a timeout or a cancel (it is what really happened), a device rollback follows a
 * failure; nothing replaces `succeeded`.
 */
export function acceptTransition(from: JobState, to: JobState): boolean {
  const order: Partial<Record<JobState, number>> = { notified: 0, queued: 1, downloading: 2, installing: 3 };
  const fromStep = order[from];
  const toStep = order[to];
  if (fromStep !== undefined) return toStep === undefined || toStep >= fromStep;
  if (from === 'pending') return false; // never sent this job id
  if (toStep !== undefined) return false; // progress after a final state
  if (from === 'timed-out' || from === 'cancelled') return to !== 'cancelled' || from === 'timed-out';
  if (from === 'failed') return to === 'rolled-back';
  return false;
}
