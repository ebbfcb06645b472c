import type { ClusterHost } from '@breakwater/broker';
import type { JetStreamClient, JetStreamManager, NatsConnection } from 'nats';
import type { Logger } from 'pino';
import type { ClusterMetrics } from './metrics.js';
import type { ClusterOptions } from './options.js';

/** What the parts of a cluster node share. */
export interface ClusterContext {
  readonly options: Readonly<ClusterOptions>;
  readonly logger: Logger;
  readonly metrics: ClusterMetrics;
  readonly nc: NatsConnection;
  readonly js: JetStreamClient;
  readonly jsm: JetStreamManager;
  readonly streamName: string;
  host(): ClusterHost;
  /** Track a JetStream write that `flush()` must wait for. */
  track(p: Promise<unknown>): void;
}

export type HealthListener = (healthy: boolean, isolated: boolean) => void;
