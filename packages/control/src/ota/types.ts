/**
 * OTA campaigns (issue 5, kill switch 3): the records the campaign engine persists and the
 * repository that stores them. Times are epoch milliseconds, like the rest of storage.
 */
import type { Selector } from '../selector.js';
import type { Page } from '../storage/page.js';

export interface Artifact {
  url: string;
  /** Firmware version the artifact installs. */
  version: string;
  /** Lowercase hex SHA-256. */
  sha256: string;
  size: number | null;
}

/** Health gate of a wave. A failing gate halts the campaign. */
export interface Gate {
  /** Halt when (failed + rolled-back + timed-out) / wave devices exceeds this. */
  maxFailureRatio: number;
  /** Halt when devices that updated and are offline at the end of the soak / wave devices exceeds this. */
  maxOfflineRatio: number;
  /** A notified device with no report for this long is `timed-out` (counts as failed). */
  reportTimeoutMs: number;
}

export interface WaveSpec {
  /** Cumulative share of the target devices, 1-100, strictly increasing over the waves. */
  percent: number;
  /** Cumulative minimum number of devices by the end of this wave. */
  minDevices: number;
  /** How long the wave must stay healthy after its last device finished. */
  soakMs: number;
  /** Overrides of the campaign's gate for this wave. */
  gate: Partial<Gate>;
}

export const campaignStates = ['draft', 'running', 'halted', 'completed', 'rolled-back'] as const;
/**
 * draft → running (start) → completed; running → halted (manual, kill switch or gate) → running
 * (resume); halted | completed → rolled-back (a rollback campaign replaced it; terminal).
 */
export type CampaignState = (typeof campaignStates)[number];

export interface CampaignRecord {
  id: string;
  name: string;
  state: CampaignState;
  artifact: Artifact;
  selector: Selector;
  waves: WaveSpec[];
  gate: Gate;
  /** Index of the wave in progress; null before start. */
  currentWave: number | null;
  waveStartedAt: number | null;
  /** When every device of the current wave reached a final state (the soak starts). */
  waveSettledAt: number | null;
  /** Wave whose gate an operator overrode by resuming after a gate halt. */
  gateOverrideWave: number | null;
  targetCount: number;
  haltReason: string | null;
  /** `gate` (automatic) or the actor id of whoever halted it. */
  haltedBy: string | null;
  haltedAt: number | null;
  /** The campaign this one rolls back. */
  rollbackOf: string | null;
  createdAt: number;
  createdBy: string;
  startedAt: number | null;
  completedAt: number | null;
  updatedAt: number;
}

export const jobStates = [
  'pending',
  'notified',
  'queued',
  'downloading',
  'installing',
  'succeeded',
  'failed',
  'rolled-back',
  'timed-out',
  'cancelled',
] as const;
/**
 * pending: assigned, not notified. notified: job published, no report yet. queued / downloading /
 * installing / succeeded / failed / rolled-back: as reported by the device. timed-out: no report
 * within the gate's reportTimeoutMs (counts as failed). cancelled: a halt withdrew the job.
 */
export type JobState = (typeof jobStates)[number];

/** The job was sent and the device has not finished it. */
export const ACTIVE_JOB_STATES: readonly JobState[] = ['notified', 'queued', 'downloading', 'installing'];
/** Not yet picked up by the device: a halt cancels these outright. */
export const WAITING_JOB_STATES: readonly JobState[] = ['notified', 'queued'];
/** Working on it: a halt tells these to stop. */
export const WORKING_JOB_STATES: readonly JobState[] = ['downloading', 'installing'];
export const FAILED_JOB_STATES: readonly JobState[] = ['failed', 'rolled-back', 'timed-out'];

export interface DeviceJobRecord {
  campaignId: string;
  deviceId: string;
  /** Wave index the device belongs to. */
  wave: number;
  /** Assignment rank (hex of the hash); lower ranks go first. */
  rank: string;
  state: JobState;
  /** Id of the job last sent (`<campaign>.<attempt>`); null before the first notification. */
  jobId: string | null;
  attempt: number;
  /** Firmware version the registry had when the campaign started (rollback target). */
  previousVersion: string | null;
  notifiedAt: number | null;
  lastReportAt: number | null;
  progress: number | null;
  errorCode: string | null;
  errorMessage: string | null;
  updatedAt: number;
}

export type DeviceJobPatch = Partial<
  Pick<
    DeviceJobRecord,
    'state' | 'jobId' | 'attempt' | 'notifiedAt' | 'lastReportAt' | 'progress' | 'errorCode' | 'errorMessage'
  >
>;

export interface JobFilter {
  wave?: number;
  /** Waves 0..maxWave. */
  maxWave?: number;
  states?: readonly JobState[];
}

export interface WaveStateCount {
  wave: number;
  state: JobState;
  count: number;
}

export interface CampaignFilter {
  state?: CampaignState;
}

export type CampaignPatch = Partial<
  Omit<CampaignRecord, 'id' | 'createdAt' | 'createdBy' | 'artifact' | 'selector' | 'waves' | 'gate' | 'name'>
>;

export interface CampaignRepository {
  insert(campaign: CampaignRecord): Promise<void>;
  get(id: string): Promise<CampaignRecord | null>;
  /** Newest first. */
  list(filter: CampaignFilter, limit: number, cursor: string | null): Promise<Page<CampaignRecord>>;
  /** Ids of the campaigns in this state. */
  idsInState(state: CampaignState): Promise<string[]>;
  /** Sets the given fields (and updated_at); false when the campaign does not exist. */
  update(id: string, patch: CampaignPatch, at: number): Promise<boolean>;
  /**
   * Compare-and-set on the state: applies `patch` only when the state is one of `from`. false
   * when it is not (the caller answers 409).
   */
  transition(
    id: string,
    from: readonly CampaignState[],
    patch: CampaignPatch & { state: CampaignState },
    at: number,
  ): Promise<boolean>;
  insertJobs(jobs: readonly DeviceJobRecord[]): Promise<void>;
  /** Ordered by wave, then rank. */
  jobs(
    campaignId: string,
    filter: JobFilter,
    limit: number,
    cursor: string | null,
  ): Promise<Page<DeviceJobRecord>>;
  /** Every job matching the filter, ordered by wave, then rank. */
  allJobs(campaignId: string, filter: JobFilter): Promise<DeviceJobRecord[]>;
  /** The job a device reports on (device id + job id). */
  findJob(deviceId: string, jobId: string): Promise<DeviceJobRecord | null>;
  updateJob(campaignId: string, deviceId: string, patch: DeviceJobPatch, at: number): Promise<void>;
  counts(campaignId: string): Promise<WaveStateCount[]>;
  /** Oldest activity (max(notified_at, last_report_at)) among active jobs up to `maxWave`. */
  oldestActivity(campaignId: string, maxWave: number): Promise<number | null>;
  /**
   * Device ids busy in another campaign: any job of a running campaign, or an active job of a
   * halted one.
   */
  busyDevices(exceptCampaignId: string): Promise<string[]>;
}
