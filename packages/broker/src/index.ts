export { Broker, type ServerPublish, type SessionSummary } from './broker.js';
export type { ByteStream } from './byte-stream.js';
export { type Clock, systemClock, type TimerHandle } from './clock.js';
export type {
  ClaimResult,
  ClusterBinding,
  ClusterHost,
  ClusterOption,
  ClusterSeam,
  RemoteSession,
  RemoteSubscription,
  SharedHandoff,
} from './cluster-seam.js';
export {
  type AlertRuleId,
  type AlertRuleOverride,
  type AlertsConfig,
  type AlertWebhookConfig,
  alertRuleIds,
  alertSeverities,
  alertsConfigSchema,
} from './config/alerts.js';
export { ConfigError } from './config/errors.js';
export * from './config/integration.js';
export {
  FLAGS_SOURCE,
  loadConfigFile,
  readConfigFile,
  type ValidateConfigOptions,
  validateConfig,
} from './config/load.js';
export {
  type BreakwaterConfig,
  type ClusterConfig,
  ConfigSchema,
  type ListenerConfig,
  type ListenerType,
  type LogLevel,
  listenerTypes,
  logLevels,
  type MqttLimitsConfig,
  type TlsFilesConfig,
} from './config/schema.js';
export { BreakwaterError, ErrorCatalog, type ErrorCode, type ErrorSpec } from './errors.js';
export * from './guard/admission/index.js';
export * from './guard/index.js';
export {
  type AdminCredentialCheck,
  type BrokerAdminRoutesOptions,
  brokerAdminRoutes,
  MAX_BYPASS_TTL_MS,
  type NodeControl,
  parseBypassTtl,
} from './http/admin.js';
export { ADMIN_TOKEN_FILE, ensureAdminToken, readAdminToken } from './http/admin-token.js';
export { type AuditEntry, AuditLog } from './http/audit-log.js';
export { type BrokerHttpRoutesOptions, brokerHttpRoutes, type ReadinessState } from './http/routes.js';
export { BrokerMetrics } from './metrics.js';
export { type DrainOptions, type DrainStatus, type DrainTarget, NodeDrain } from './node-drain.js';
export { type BrokerObserver, MessageTap, type MessageTapHandler } from './observers.js';
export {
  type BrokerControl,
  type BrokerHooks,
  type BrokerLimits,
  type BrokerOptions,
  type ConnectDecision,
  type ConnectionInfo,
  type ConnectRequest,
  defaultLimits,
  type QueueOverflowPolicy,
} from './options.js';
export {
  QUEUE_DROP_REPORT_INTERVAL_MS,
  type QueueDropReason,
  type QueueDropReport,
} from './queue-drops.js';
export {
  ConnackReturnCode,
  type ConnackReturnCodeValue,
  ReasonCode,
  type ReasonCodeName,
  type ReasonCodeValue,
  reasonCodeName,
  toV3ConnackCode,
} from './reason-codes.js';
export type { Message, Session, Subscription, Will } from './session.js';
export { MemoryStorage } from './storage/memory.js';
export { SqliteStorage } from './storage/sqlite.js';
export type * from './storage/types.js';
export {
  type CheckpointResult,
  SQLITE_DEFAULT_AUTOCHECKPOINT,
  WalCheckpointer,
  type WalCheckpointerOptions,
} from './storage/wal-checkpointer.js';
export { RetainedIndex } from './topics/retained-index.js';
export { type MatchVisitor, type SharedGroup, SubscriptionTree } from './topics/subscription-tree.js';
export { isValidTopicName, type ParsedFilter, parseTopicFilter } from './topics/validate.js';
export {
  Listeners,
  type ListenersOptions,
  listenError,
  PortInUseError,
  urlHost,
} from './transports/listeners.js';
export { createTcpServer, type TcpEngine, type TcpServer } from './transports/tcp.js';
export { TcpHandleServer } from './transports/tcp-handle-server.js';
export { TcpHandleStream } from './transports/tcp-handle-stream.js';
export type { ListenerAddress, ListenerSpec, StreamHandler } from './transports/types.js';
export { WebSocketDuplex } from './transports/ws.js';
