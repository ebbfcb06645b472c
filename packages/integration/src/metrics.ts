/**
 * The integration's Prometheus metrics (prom-client), registered in the broker's registry so
 * /metrics and the alert engine's history see them. Labels are bounded: rule ids and sink names
 * come from the configuration; devices are never a label (the API lists them instead).
 */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

export class IntegrationMetrics {
  readonly ruleMessages: Counter<'rule' | 'outcome'>;
  readonly buffered: Counter<'sink'>;
  readonly delivered: Counter<'sink'>;
  readonly deliveryFailures: Counter<'sink'>;
  readonly deadLettered: Counter<'sink' | 'reason'>;
  readonly dropped: Counter<'sink' | 'reason'>;
  readonly queueMessages: Gauge<'sink'>;
  readonly queueBytes: Gauge<'sink'>;
  readonly oldestAge: Gauge<'sink'>;
  readonly sinkUp: Gauge<'sink'>;
  readonly sinkPaused: Gauge<'sink'>;
  readonly deliveryDuration: Histogram<'sink'>;
  readonly validationFailures: Counter<'filter'>;
  readonly deadLetters: Gauge;

  constructor(registry: Registry) {
    const registers = [registry];
    this.ruleMessages = new Counter({
      name: 'breakwater_integration_rule_messages_total',
      help: 'Messages a rule saw: matched (handed to its sinks), filtered (payload condition false), invalid (dropped by validation).',
      labelNames: ['rule', 'outcome'],
      registers,
    });
    this.buffered = new Counter({
      name: 'breakwater_integration_buffered_total',
      help: 'Messages written to the sink’s durable buffer.',
      labelNames: ['sink'],
      registers,
    });
    this.delivered = new Counter({
      name: 'breakwater_integration_delivered_total',
      help: 'Messages the sink acknowledged.',
      labelNames: ['sink'],
      registers,
    });
    this.deliveryFailures = new Counter({
      name: 'breakwater_integration_delivery_failures_total',
      help: 'Delivery attempts (batches) that failed because the sink was unavailable; the batch is retried.',
      labelNames: ['sink'],
      registers,
    });
    this.deadLettered = new Counter({
      name: 'breakwater_integration_dead_lettered_total',
      help: 'Messages moved to the dead-letter queue: rejected (the sink refused the data) or invalid (failed validation, sampled).',
      labelNames: ['sink', 'reason'],
      registers,
    });
    this.dropped = new Counter({
      name: 'breakwater_integration_dropped_total',
      help: 'Messages dropped by the buffer’s overflow policy (reason overflow).',
      labelNames: ['sink', 'reason'],
      registers,
    });
    this.queueMessages = new Gauge({
      name: 'breakwater_integration_queue_messages',
      help: 'Messages in the sink’s durable buffer (queue depth).',
      labelNames: ['sink'],
      registers,
    });
    this.queueBytes = new Gauge({
      name: 'breakwater_integration_queue_bytes',
      help: 'Payload bytes in the sink’s durable buffer.',
      labelNames: ['sink'],
      registers,
    });
    this.oldestAge = new Gauge({
      name: 'breakwater_integration_queue_oldest_age_seconds',
      help: 'Age of the oldest message in the sink’s buffer (0 when empty).',
      labelNames: ['sink'],
      registers,
    });
    this.sinkUp = new Gauge({
      name: 'breakwater_integration_sink_up',
      help: '1 when the last delivery attempt succeeded (or none was needed), 0 while the sink fails.',
      labelNames: ['sink'],
      registers,
    });
    this.sinkPaused = new Gauge({
      name: 'breakwater_integration_sink_paused',
      help: '1 while an operator paused the sink.',
      labelNames: ['sink'],
      registers,
    });
    this.deliveryDuration = new Histogram({
      name: 'breakwater_integration_delivery_duration_seconds',
      help: 'Time for one delivery attempt (one batch), success or failure.',
      labelNames: ['sink'],
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    });
    this.validationFailures = new Counter({
      name: 'breakwater_integration_validation_failures_total',
      help: 'Messages that failed the JSON Schema of their topic filter.',
      labelNames: ['filter'],
      registers,
    });
    this.deadLetters = new Gauge({
      name: 'breakwater_integration_dead_letters',
      help: 'Entries in the dead-letter queue.',
      registers,
    });
  }
}
