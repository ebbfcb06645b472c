/**
 * The fleet simulator (stub: the interface is final, the engine lands next).
 */
import { EventEmitter } from 'node:events';
import type { CrashLoopOptions, FleetOptions, FleetStats } from './types.js';

export class Fleet extends EventEmitter {
  readonly options: Readonly<FleetOptions>;

  constructor(options: FleetOptions) {
    super();
    this.options = options;
  }

  async start(): Promise<void> {
    throw new Error('Fleet: not implemented yet');
  }

  async stop(): Promise<void> {}

  stats(): FleetStats {
    return {
      devices: this.options.devices,
      connected: 0,
      connecting: 0,
      backingOff: 0,
      authStopped: 0,
      attempts: 0,
      connacksOk: 0,
      refusals: {},
      authFailures: 0,
      networkErrors: 0,
      disconnectsByServer: {},
      published: 0,
      qos1Acked: 0,
      received: 0,
      configApplied: 0,
      otaStatus: {},
    };
  }

  async waitFor(pred: (s: FleetStats) => boolean, _timeoutMs: number): Promise<FleetStats> {
    const s = this.stats();
    if (pred(s)) return s;
    throw new Error('Fleet: not implemented yet');
  }

  reboot(_count: number, _downMs: [number, number]): string[] {
    return [];
  }

  flap(_fraction: number, _upMs: [number, number], _downMs: [number, number]): () => void {
    return () => {};
  }

  setTelemetry(_t: FleetOptions['telemetry'] | null): void {}

  setPayload(
    _ids: string[] | ((id: string) => boolean),
    _payload: (id: string, seq: number) => Buffer | string,
  ): void {}

  setCrashLoop(_crashLoop: CrashLoopOptions | null): void {}

  ids(): string[] {
    return [];
  }
}
