/** IPC between the auth-storm coordinator and its simulated-device processes (device-worker.ts). */

export interface DeviceSpec {
  readonly clientId: string;
  readonly username: string;
  readonly password: string;
}

export interface StartRequest {
  readonly op: 'start';
  readonly host: string;
  readonly port: number;
  readonly devices: readonly DeviceSpec[];
  /** Source address (127.0.0.x): each worker gets its own, to widen the ephemeral port space. */
  readonly localAddress: string;
  /** Fixed delay between a connection ending (refused, dropped, failed) and the next attempt. */
  readonly retryMs: number;
  /** A CONNECT left unanswered this long is abandoned (MQTT.js `connectTimeout` default: 30 s). */
  readonly connectTimeoutMs: number;
  readonly keepalive: number;
  /** First attempts are spread uniformly over this window (a fleet does not boot in one tick). */
  readonly spreadMs: number;
}

export type Request =
  | StartRequest
  | { readonly op: 'stats' }
  /**
   * Remembers which devices are connected right now (the coordinator is about to drop them) and
   * times, from `atMs` (epoch ms), when each of them gets a successful CONNACK again.
   */
  | { readonly op: 'mark'; readonly atMs: number }
  /** Milliseconds from the mark to each marked device's first successful reconnect (null: never). */
  | { readonly op: 'recovery' }
  | { readonly op: 'close' };

/** Cumulative counters of one worker since `start`. */
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
  readonly marked: number;
  readonly markedBack: number;
}

export interface Envelope<T> {
  readonly seq: number;
  readonly ok: boolean;
  readonly value?: T;
  readonly error?: string;
}
