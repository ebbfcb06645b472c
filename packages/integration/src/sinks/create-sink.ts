/** Builds the sinks of the config (`integration.sinks.<type>.<name>`). */
import type { IntegrationConfig, SinkType } from '@breakwater/broker';
import type { Sink } from '../types.js';
import { NatsSink } from './nats.js';
import { PostgresSink } from './postgres.js';
import { RedisSink } from './redis.js';
import { WebhookSink } from './webhook.js';

/** Delivery settings every sink type shares. */
export type SinkDeliveryConfig = IntegrationConfig['sinks']['webhook'][string];

export interface SinkSpec {
  name: string;
  type: SinkType;
  config: Pick<SinkDeliveryConfig, 'batchSize' | 'maxPerSec' | 'timeoutMs' | 'retry' | 'buffer' | 'paused'>;
  create(): Sink;
}

export function sinkSpecs(c: IntegrationConfig['sinks']): SinkSpec[] {
  const specs: SinkSpec[] = [];
  for (const [name, config] of Object.entries(c.webhook))
    specs.push({ name, type: 'webhook', config, create: () => new WebhookSink(name, config) });
  for (const [name, config] of Object.entries(c.postgres))
    specs.push({ name, type: 'postgres', config, create: () => new PostgresSink(name, config) });
  for (const [name, config] of Object.entries(c.nats))
    specs.push({ name, type: 'nats', config, create: () => new NatsSink(name, config) });
  for (const [name, config] of Object.entries(c.redis))
    specs.push({ name, type: 'redis', config, create: () => new RedisSink(name, config) });
  return specs;
}
