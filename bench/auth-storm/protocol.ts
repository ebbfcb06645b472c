/** IPC between the auth-storm coordinator and its simulated-device processes (device-worker.ts). */

export interface DeviceSpec {
  readonly clientId: string;
  readonly username: string;
  readonly password: string;
}

/**
 * Device firmware: `fleet` is the device SDK's reconnect policy (@breakwater/device/policy
 * `fleetPolicy`: 5–15 s, 30–120 s, then 5–10 min, fresh jitter each try, a server
 * `retry-after-ms` as lower bound, plus its AuthBreaker); `naive` retries a fixed period after any
 * end of a connection and ignores every hint (MQTT.js reconnectPeriod 1000).
 */
export const Firmware = { Fleet: 'fleet', Naive: 'naive' } as const;
export type FirmwareValue = (typeof Firmware)[keyof typeof Firmware];

export interface FleetConfig {
  readonly host: string;
  readonly port: number;
  /** Source address (127.0.0.x): each worker gets its own, to widen the ephemeral port space. */
  readonly localAddress: string;
  readonly firmware: FirmwareValue;
  /** Naive firmware: fixed delay between a connection ending (refused, dropped, failed) and the next attempt. */
  readonly retryMs: number;
  /** A CONNECT left unanswered this long is abandoned (MQTT.js `connectTimeout` default: 30 s). */
  readonly connectTimeoutMs: number;
  readonly keepalive: number;
  /** Seed of the worker's random source (fleet jitter, first-connect spread). */
  readonly seed: number;
}

export type Request =
  | { readonly op: 'configure'; readonly config: FleetConfig }
  /**
   * Boots these devices now (in addition to any started before): first attempts spread uniformly
   * over `spreadMs` — a fleet does not boot in one tick.
   */
  | { readonly op: 'start'; readonly devices: readonly DeviceSpec[]; readonly spreadMs: number }
  | { readonly op: 'stats' }
  /** Per-device history (epoch ms), for the scores computed at the end. */
  | { readonly op: 'timelines' }
  | { readonly op: 'close' };

/** Cumulative counters of one worker since `configure`. */
export interface DeviceStats {
  /** TCP connects started (each one carries a CONNECT). */
  readonly attempts: number;
  readonly connackOk: number;
  /** Refusing CONNACKs by reason code, as hex ("0x88"). */
  readonly refused: Record<string, number>;
  /** Connections that ended before any CONNACK (reset, refused at TCP level, connect timeout). */
  readonly noConnack: number;
  /** Socket errors by code (ECONNRESET, EADDRNOTAVAIL, ...). */
  readonly errors: Record<string, number>;
  /** Connected (CONNACK 0 received, socket open) at the moment of the answer. */
  readonly connected: number;
  /** Server DISCONNECT packets received. */
  readonly serverDisconnects: number;
  /** Refusals that carried a `retry-after-ms` hint. */
  readonly hinted: number;
  /** Fleet firmware: devices whose auth breaker is open (stopped after 3 auth refusals). */
  readonly authStopped: number;
}

/**
 * One device's history, epoch ms. `want[i]` starts the i-th stretch of wanting in (the first
 * attempt after boot or after a lost connection); `ok[i]` ends it (CONNACK 0); `lost[i]` ends the
 * session `ok[i]` began. So `want.length - ok.length` is 1 while trying, 0 while connected or
 * in the gap between a loss and the next attempt.
 */
export interface DeviceTimeline {
  readonly id: string;
  readonly want: number[];
  readonly ok: number[];
  readonly lost: number[];
}

export interface Envelope<T> {
  readonly seq: number;
  readonly ok: boolean;
  readonly value?: T;
  readonly error?: string;
}
