export type { HealthListener } from './context.js';
export {
  decodeEnvelope,
  decodeEnvelopes,
  EnvelopeBatch,
  EnvelopeError,
  encodeEnvelope,
  envelopeCount,
  envelopeOrigin,
} from './envelope.js';
export { KnownGoodSync, type SharedKnownGoodStore } from './known-good-sync.js';
export { ClusterMetrics } from './metrics.js';
export { mqttMatches } from './mqtt-match.js';
export { NatsCluster } from './nats-cluster.js';
export { type ClusterOptions, defaultClusterOptions } from './options.js';
export type { SessionRecord } from './ownership.js';
export {
  clientKey,
  decodeTopic,
  encodeLevel,
  encodeTopic,
  filterSubjects,
  liveToken,
  publishSubject,
  topicShard,
} from './subjects.js';
