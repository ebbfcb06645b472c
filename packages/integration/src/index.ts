export type {
  DeadLetter,
  DeadLetterQuery,
  DeadLetterReason,
  DeadLetterSelection,
} from './buffer/store.js';
export { errorCode, errorText, SinkRejectedError, SinkUnavailableError } from './errors.js';
export {
  Integration,
  type IntegrationOptions,
  IntegrationRequestError,
  MAX_REPLAY,
  type MessageSource,
  type ReplayResult,
} from './integration.js';
export { IntegrationMetrics } from './metrics.js';
export type { RuleSource, RuleStats, RuleView } from './rules/rule-set.js';
export { retryDelay, type SinkState, type SinkStatus } from './sink-worker.js';
export type { SinkSpec } from './sinks/create-sink.js';
export { NatsSink, natsTokens } from './sinks/nats.js';
export { PostgresSink } from './sinks/postgres.js';
export { RedisSink } from './sinks/redis.js';
export { sign as signWebhook, WebhookSink } from './sinks/webhook.js';
export type { BufferedMessage, DeliveryOutcome, Sink } from './types.js';
export type { DeviceFailures, ValidationListener, ValidationReport } from './validation/validator.js';
