/**
 * The fleet simulator's public contract. Scenarios, reports and `breakwater gameday run` code
 * against these types: extend them compatibly (new optional fields only), never change them.
 */
import type { AuthBreakerOptions, ReconnectPolicy } from '@breakwater/device/policy';

/** How a simulated device publishes telemetry. */
export interface TelemetryOptions {
  /** Per device: one message every `intervalMs` (the first after a random fraction of it). */
  intervalMs: number;
  qos: 0 | 1;
  /** Topic per device (default `devices/{id}/telemetry`). */
  topic?: (id: string) => string;
  /** Payload per message (default a small JSON object with the sequence number). */
  payload?: (id: string, seq: number) => Buffer | string;
}

/**
 * Firmware that crash-loops: a device running one of `versions` stays up for a random time in
 * `upMs`, then drops without DISCONNECT and is down for a random time in `downMs`. After
 * `rollbackAfter` crashes (default 3; 0 = never) the "bootloader" reverts to the previous version
 * and, if the crash-looping version came from an OTA job, reports `failed` then `rolled-back`.
 */
export interface CrashLoopOptions {
  versions: string[];
  upMs: [number, number];
  downMs: [number, number];
  rollbackAfter?: number;
}

/** How simulated devices run OTA jobs (no artifact is fetched unless `download` is 'fetch'). */
export interface OtaBehaviour {
  /** 'simulate' (default): wait `downloadMs`; 'fetch': GET the job URL and check its sha256. */
  download?: 'simulate' | 'fetch';
  /** Simulated download time (default [200, 1000] ms, scaled by timeScale). */
  downloadMs?: [number, number];
  /** Install time before the reboot (default [100, 500] ms, scaled). */
  installMs?: [number, number];
  /** Down time of the reboot that activates the new firmware (default [2000, 8000] ms, scaled). */
  rebootDownMs?: [number, number];
  /** Fraction of devices whose install fails (reports failed, no reboot). Default 0. */
  failFraction?: number;
}

export interface FleetOptions {
  target: { host: string; port: number };
  /**
   * Several brokers (a cluster, issue 15): a device starts on `targets[index % n]` and moves on to
   * another one on every new attempt (by a per-device step, so a lost server's devices spread over
   * all the others), like a client with a server list. Default: `target` only.
   */
  targets?: { host: string; port: number }[];
  devices: number;
  /** Device id prefix (default 'sim-'): sim-00001, sim-00002, … */
  idPrefix?: string;
  /** Credentials per device (default none: anonymous CONNECT with the id as client id). */
  credentials?: (id: string) => { username?: string; password?: string };
  /** Reconnect policy (default 'fleet'), the device SDK's own code. */
  policy?: 'fleet' | 'naive' | ReconnectPolicy;
  /** Multiplies every policy, breaker and OTA delay (tests use 0.01). Default 1. */
  timeScale?: number;
  /**
   * Devices `start()` launches (default all): the first ones by id. The others stay idle until
   * `join()` — devices that exist in the backend but were never seen by the broker yet.
   */
  initialDevices?: number;
  /** Initial connection ramp, first attempts per second (default 500). */
  rampPerSec?: number;
  /**
   * During the ramp, never more than this many devices connecting at once (default unlimited):
   * a closed-loop ramp that measures how fast the broker accepts, not how fast we ask.
   */
  maxConnecting?: number;
  /** MQTT 3.1.1 (4) or 5 (default 5). */
  protocolVersion?: 4 | 5;
  /** MQTT keepalive (default 60 s); PINGREQs are sent at this interval. */
  keepaliveSec?: number;
  /** Telemetry (default none). */
  telemetry?: TelemetryOptions;
  /** Subscribe to `$fleet/{id}/config` and `$fleet/{id}/ota` (default false). */
  subscribeFleetTopics?: boolean;
  /** Local addresses to connect from, round robin (default: let the OS pick). */
  sourceAddresses?: string[];
  /** Random source (default Math.random); pass mulberry32(seed) to replay a run. */
  random?: () => number;
  /** Auth circuit breaker (default the SDK's: 3 failures → 60-90 min, scaled by timeScale). */
  authBreaker?: Partial<AuthBreakerOptions>;
  /** Give up on a CONNECT without CONNACK after this long (default 10 s, not scaled). */
  connectTimeoutMs?: number;
  /** Clean start / clean session (default true). */
  cleanStart?: boolean;
  /** Initial firmware version per device (default '1.0.0'). */
  firmware?: string | ((id: string) => string);
  /** OTA behaviour (defaults in OtaBehaviour). */
  ota?: OtaBehaviour;
  /** Firmware that crash-loops (default none); also settable later with setCrashLoop(). */
  crashLoop?: CrashLoopOptions;
}

/** Cumulative counters and gauges; cheap to read every second. */
export interface FleetStats {
  devices: number;
  /** Gauges: devices in each state right now. */
  connected: number;
  connecting: number;
  backingOff: number;
  authStopped: number;
  /** Counters since start. */
  attempts: number;
  connacksOk: number;
  /** Refused CONNACKs by reason name ('not-authorized', 'server-busy', …; '0xNN' when unnamed). */
  refusals: Record<string, number>;
  authFailures: number;
  /** Socket errors, connect timeouts and connections closed before CONNACK. */
  networkErrors: number;
  /** Server-side ends of an established connection: DISCONNECT reason name, or 'closed' without one. */
  disconnectsByServer: Record<string, number>;
  /** Telemetry messages written; qos1Acked counts PUBACKs for telemetry only (not reports). */
  published: number;
  qos1Acked: number;
  received: number;
  configApplied: number;
  /** OTA status reports published, by status (queued, downloading, …, rolled-back). */
  otaStatus: Record<string, number>;
  /** Devices down on purpose right now (reboot, flap, crash loop). */
  rebooting?: number;
  /** Reboots done (reboot(), flap, OTA activation, crash loop). */
  reboots?: number;
  /** Auth breaker openings. */
  authBreakerOpened?: number;
}

/** Per-device state names, as in FleetStats gauges. */
export type SimDeviceState =
  | 'idle'
  | 'connecting'
  | 'connected'
  | 'backoff'
  | 'auth-stopped'
  | 'down'
  | 'stopped';

/** Events a Fleet emits (all optional to listen to). */
export interface FleetEvents {
  /** Every device made its first attempt. */
  ramped: [];
  /** A connection attempt began (socket opened, CONNECT sent). */
  attempt: [id: string];
  connected: [id: string];
  'auth-breaker-open': [id: string, openForMs: number];
  config: [id: string, version: string];
  ota: [id: string, status: string, jobId: string, version: string];
  /** A device dropped on purpose (reboot, flap, crash loop, OTA). */
  reboot: [id: string, cause: 'reboot' | 'flap' | 'ota' | 'crash-loop'];
}
