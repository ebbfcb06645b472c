/** Messages between the bench coordinator and its load-generator worker processes (IPC). */

export interface ClientSpec {
  readonly id: string;
  /** Publishes to this topic when the worker floods or runs at a fixed rate. */
  readonly publish?: { readonly topic: string; readonly qos: 0 | 1 };
  readonly subscribe?: { readonly filter: string; readonly qos: 0 | 1 };
  /** Source address for the connection (127.0.0.x), to widen the ephemeral port space. */
  readonly localAddress?: string;
  /** Broker port for this client instead of the setup's (a cluster: clients spread over nodes). */
  readonly port?: number;
}

export interface SetupRequest {
  readonly op: 'setup';
  readonly host: string;
  readonly port: number;
  readonly clients: readonly ClientSpec[];
  readonly keepalive: number;
  readonly payloadSize: number;
  /** Connections in flight at once during setup (the listen backlog is finite). */
  readonly concurrency: number;
  /** Unacknowledged QoS 1 publishes allowed per publisher. */
  readonly qos1Window: number;
  readonly deadlineMs: number;
}

export type Request =
  | SetupRequest
  | { readonly op: 'flood' }
  /** Publish `perSecond` messages per second in total over this worker's publishers. */
  | { readonly op: 'rate'; readonly perSecond: number }
  | { readonly op: 'halt' }
  | { readonly op: 'stats' }
  | { readonly op: 'latency-reset' }
  | { readonly op: 'latency' }
  | { readonly op: 'close' };

export interface SetupResult {
  readonly connected: number;
  readonly failed: number;
  readonly firstError: string | null;
}

export interface Stats {
  /** Worker's monotonic clock, milliseconds. */
  readonly atMs: number;
  readonly received: number;
  /** Bytes read from the broker (all packet types). */
  readonly receivedBytes: number;
  readonly sent: number;
  /** Publishes the fixed-rate mode could not send because the QoS 1 window was full. */
  readonly skipped: number;
  readonly acked: number;
  readonly closedUnexpectedly: number;
  /** CPU time used by this worker, milliseconds (user + system). */
  readonly cpuMs: number;
}

export interface LatencyReport {
  readonly histogram: [number, number][];
}

export interface Envelope<T> {
  readonly seq: number;
  readonly ok: boolean;
  readonly value?: T;
  readonly error?: string;
}
