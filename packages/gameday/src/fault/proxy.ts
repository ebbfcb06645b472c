/**
 * A TCP fault proxy with a small HTTP API (stub: the interface is final, the engine lands next).
 */
export interface FaultSettings {
  /** Added one-way delay per chunk, both directions (ms). */
  latencyMs?: number;
  /** Uniform extra delay in [0, jitterMs] per chunk (order is kept). */
  jitterMs?: number;
  /** Per-connection, per-direction cap (bytes/s); 0 or undefined = unlimited. */
  bandwidthBytesPerSec?: number;
  /** Accept and keep connections but forward nothing, in either direction. */
  blackhole?: boolean;
  /** Refuse new connections (accept, then RST at once). */
  refuse?: boolean;
}

export interface FaultProxyOptions {
  listen?: { host?: string; port?: number };
  target: { host: string; port: number };
  /** HTTP API on 127.0.0.1 (omit for none; port 0 = any free port). */
  api?: { port?: number };
}

export interface FaultProxyStats {
  open: number;
  accepted: number;
  bytesUp: number;
  bytesDown: number;
}

export class FaultProxy {
  readonly options: FaultProxyOptions;

  constructor(options: FaultProxyOptions) {
    this.options = options;
  }

  async start(): Promise<{ port: number; apiPort: number | null }> {
    throw new Error('FaultProxy: not implemented yet');
  }

  set(_faults: FaultSettings): void {}

  resetAll(): void {}

  cut(): void {}

  restore(): void {}

  stats(): FaultProxyStats {
    return { open: 0, accepted: 0, bytesUp: 0, bytesDown: 0 };
  }

  async close(): Promise<void> {}
}
