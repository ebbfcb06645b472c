/**
 * One simulated device: plain state, no closures of its own. The Fleet drives every device from a
 * few shared timers and handlers, so 15,000 of them cost little more than their sockets.
 */
import type { Socket } from 'node:net';
import type { AuthBreaker } from '@breakwater/device/policy';
import type { SimOtaJob } from './ota.js';
import type { SimDeviceState } from './types.js';

/** What the device's one general-purpose timer will do when it fires. */
export type TimerKind = 'retry' | 'boot' | 'join' | 'drop-flap' | 'drop-crash';

export interface FlapPlan {
  upMs: [number, number];
  downMs: [number, number];
}

export interface OtaProgress {
  job: SimOtaJob;
  phase: 'downloading' | 'installing' | 'activating';
  abort: AbortController | null;
}

export interface OutboxEntry {
  topic: string;
  payload: string;
  retain: boolean;
}

/** Packet ids from here up are for the device's own control traffic, not telemetry. */
export const CONTROL_PACKET_IDS = 50_000;

export class SimDevice {
  readonly id: string;
  readonly index: number;
  readonly topics: { config: string; configReported: string; ota: string; otaStatus: string };
  readonly breaker: AuthBreaker;
  state: SimDeviceState = 'idle';
  socket: Socket | null = null;
  /** Incomplete frame bytes from the last read. */
  pending: Buffer | null = null;
  attemptStartedAt = 0;
  lastWriteAt = 0;
  /** Connection attempts so far (picks the next of `FleetOptions.targets` after a failure). */
  attempts = 0;
  /** Consecutive failed attempts since the last success (the policy's `attempt`). */
  retry = 0;
  /** The last DISCONNECT's outcome, read when the socket then closes. */
  serverHintMs: number | null = null;
  disconnectCounted = false;
  timer: NodeJS.Timeout | null = null;
  timerKind: TimerKind = 'retry';
  otaTimer: NodeJS.Timeout | null = null;
  nextPacketId = 1;
  nextControlPacketId = CONTROL_PACKET_IDS;
  telemetrySeq = 0;
  nextTelemetryAt = 0;
  payload: ((id: string, seq: number) => Buffer | string) | null = null;
  firmware: string;
  previousFirmware: string | null = null;
  appliedConfig: string | null = null;
  ota: OtaProgress | null = null;
  finishedJobs: string[] | null = null;
  outbox: OutboxEntry[] | null = null;
  reported: string | null = null;
  crashes = 0;
  flap: FlapPlan | null = null;

  constructor(id: string, index: number, firmware: string, breaker: AuthBreaker) {
    this.id = id;
    this.index = index;
    this.firmware = firmware;
    this.breaker = breaker;
    const base = `$fleet/${id}`;
    this.topics = {
      config: `${base}/config`,
      configReported: `${base}/config/reported`,
      ota: `${base}/ota`,
      otaStatus: `${base}/ota/status`,
    };
  }

  /** Packet id for telemetry (below CONTROL_PACKET_IDS, so its PUBACKs can be told apart). */
  packetId(): number {
    const id = this.nextPacketId;
    this.nextPacketId = id >= CONTROL_PACKET_IDS - 1 ? 1 : id + 1;
    return id;
  }

  /** Packet id for SUBSCRIBE and status/config reports. */
  controlPacketId(): number {
    const id = this.nextControlPacketId;
    this.nextControlPacketId = id >= 0xffff ? CONTROL_PACKET_IDS : id + 1;
    return id;
  }

  rememberJob(jobId: string): void {
    this.finishedJobs ??= [];
    this.finishedJobs.push(jobId);
    if (this.finishedJobs.length > 16) this.finishedJobs.shift();
  }
}
