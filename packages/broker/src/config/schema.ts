import { type Static, type TSchema, Type } from '@sinclair/typebox';
import { admissionConfigSchema } from '../guard/admission/config.js';
import { guardConfigSchema } from '../guard/config.js';
import { type BrokerLimits, defaultLimits, type QueueOverflowPolicy } from '../options.js';
import { alertsConfigSchema } from './alerts.js';
import { integrationConfigSchema } from './integration.js';

/**
 * The configuration schema (breakwater.yaml). The TypeScript type is derived from it, so the two
 * cannot drift; `loadConfig()` validates against it once at start, applies defaults, rejects
 * unknown keys everywhere and freezes the result (the fastify `initial-config-validation` model).
 *
 * Every object sets `additionalProperties: false`; every optional section has `default: {}` so
 * ajv's `useDefaults` fills the nested defaults in too.
 */

/** A string enum as a plain JSON-schema `enum` (one ajv error instead of one per `anyOf` branch). */
function stringEnum<const T extends readonly string[]>(
  values: T,
  options: { default?: T[number]; description?: string } = {},
) {
  return Type.Unsafe<T[number]>({ type: 'string', enum: [...values], ...options });
}

const strict = { additionalProperties: false } as const;

export const listenerTypes = ['tcp', 'tls', 'ws', 'wss'] as const;
export type ListenerType = (typeof listenerTypes)[number];

export const logLevels = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof logLevels)[number];

const queueOverflowPolicies = [
  'drop-new',
  'drop-oldest',
  'disconnect',
] as const satisfies readonly QueueOverflowPolicy[];

const Port = Type.Integer({ minimum: 0, maximum: 65535, description: 'TCP port; 0 picks a free port.' });

export const TlsFilesSchema = Type.Object(
  {
    cert: Type.String({ minLength: 1, description: 'PEM certificate chain file.' }),
    key: Type.String({ minLength: 1, description: 'PEM private key file.' }),
    ca: Type.Optional(
      Type.String({ minLength: 1, description: 'PEM CA bundle used to verify client certificates.' }),
    ),
    requestCert: Type.Boolean({
      default: false,
      description: 'Ask clients for a certificate (mTLS); clients without a valid one are refused.',
    }),
  },
  strict,
);

export const ListenerSchema = Type.Object(
  {
    name: Type.String({
      minLength: 1,
      maxLength: 64,
      pattern: '^[A-Za-z0-9_.-]+$',
      description: 'Unique name; the `listener` label of the metrics.',
    }),
    type: stringEnum(listenerTypes, {
      description: 'tcp = MQTT, tls = MQTT over TLS, ws/wss = MQTT over (secure) WebSocket.',
    }),
    host: Type.String({ minLength: 1, default: '0.0.0.0', description: 'Address to bind.' }),
    port: Port,
    path: Type.Optional(
      Type.String({ pattern: '^/', description: 'WebSocket path (ws/wss only). Default `/mqtt`.' }),
    ),
    tls: Type.Optional(TlsFilesSchema),
    engine: Type.Optional(
      stringEnum(['handle', 'net'] as const, {
        description:
          "How a tcp listener holds its connections. `handle` (default): on Node's internal TCP handle, about half the memory per idle connection of `net`, node:net's Socket (bench/results/idle-memory.md). `handle` falls back to `net`, with a warning, on a Node.js without that binding. Ignored by tls, ws and wss listeners.",
      }),
    ),
    maxConnections: Type.Optional(
      Type.Integer({ minimum: 1, description: 'Sockets beyond this many are refused at accept.' }),
    ),
    backlog: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: 65_535,
        description:
          "Accept queue length passed to listen(2) (the kernel caps it at net.core.somaxconn). Default 4096: Node's 511 overflows when a whole fleet reconnects in the same second, and a dropped handshake costs the device a SYN retransmit of 1-15 s.",
      }),
    ),
  },
  strict,
);

// `satisfies` makes a BrokerLimits field without a config key (or a key without a field) a
// compile error, so `mqtt.*` always covers every limit.
const limitSchemas = {
  connectTimeoutMs: Type.Integer({
    minimum: 1,
    default: defaultLimits.connectTimeoutMs,
    description: 'A socket that sends no CONNECT within this time is destroyed.',
  }),
  keepaliveFactor: Type.Number({
    minimum: 1,
    default: defaultLimits.keepaliveFactor,
    description: "Keepalive is enforced at this multiple of the client's keepalive.",
  }),
  maxKeepaliveSec: Type.Integer({
    minimum: 0,
    maximum: 65535,
    default: defaultLimits.maxKeepaliveSec,
    description: 'MQTT 5 Server Keep Alive cap, seconds (0 = no cap).',
  }),
  maxPacketSize: Type.Integer({
    minimum: 1,
    maximum: 268_435_455,
    default: defaultLimits.maxPacketSize,
    description: 'Largest packet accepted, bytes.',
  }),
  receiveMaximum: Type.Integer({
    minimum: 1,
    maximum: 65535,
    default: defaultLimits.receiveMaximum,
    description: 'Inbound QoS 1/2 publishes in flight per client.',
  }),
  maxInflight: Type.Integer({
    minimum: 1,
    maximum: 65535,
    default: defaultLimits.maxInflight,
    description: 'Outbound QoS 1/2 publishes in flight per session.',
  }),
  offlineQueueLimit: Type.Integer({
    minimum: 0,
    default: defaultLimits.offlineQueueLimit,
    description:
      'Messages a session may hold waiting to be sent (offline, or beyond the in-flight window); when full, `mqtt.queueOverflow` decides.',
  }),
  offlineQueueBytes: Type.Integer({
    minimum: 1,
    default: defaultLimits.offlineQueueBytes,
    description: 'The same queue in bytes (topic + payload of each queued message).',
  }),
  queueOverflow: stringEnum(queueOverflowPolicies, {
    default: defaultLimits.queueOverflow,
    description:
      'A full queue: `drop-new` refuses the new message, `drop-oldest` evicts the oldest queued one, `disconnect` refuses it and closes the connected consumer (v5: DISCONNECT 0x97) keeping its session. Every drop is counted in `breakwater_messages_dropped_total{reason}` (`queue_full`, `queue_bytes_full`, `queue_evicted`) and reported per session (warning log, observer event, the device event history at `GET /api/v1/devices/{id}/events`) at most every 10 s. Default `drop-new`: the only policy that can tell the publisher: an MQTT 5 QoS 1/2 PUBLISH that every matching subscriber refused gets PUBACK/PUBREC 151 Quota exceeded instead of a success, while `drop-oldest` discards a message whose publisher was acknowledged long ago.',
  }),
  queueQos0: Type.Boolean({
    default: defaultLimits.queueQos0,
    description:
      'Also queue QoS 0 messages for offline persistent sessions (MQTT 5.0 §4.1 allows it); they count against the same limits.',
  }),
  maxSessionExpirySec: Type.Integer({
    minimum: 0,
    maximum: 0xffff_ffff,
    default: defaultLimits.maxSessionExpirySec,
    description: "Upper bound on a client's Session Expiry Interval, seconds.",
  }),
  topicAliasMaximum: Type.Integer({
    minimum: 0,
    maximum: 65535,
    default: defaultLimits.topicAliasMaximum,
    description: 'Topic Alias Maximum announced to clients.',
  }),
  outboundTopicAliasMaximum: Type.Integer({
    minimum: 0,
    maximum: 65535,
    default: defaultLimits.outboundTopicAliasMaximum,
    description:
      "Topic Aliases the broker sends per connection, at most the client's Topic Alias Maximum; least recently used replaced first (0 = none).",
  }),
  outboundTopicAliasMinLength: Type.Integer({
    minimum: 1,
    maximum: 65535,
    default: defaultLimits.outboundTopicAliasMinLength,
    description: 'Topics shorter than this many characters are sent without a Topic Alias (1 = alias all).',
  }),
  responseInformation: Type.String({
    pattern: '^[^+#]*$',
    default: defaultLimits.responseInformation,
    description:
      "Response Information for MQTT 5 clients that request it: response topic prefix, `{clientId}` substituted ('' = never).",
  }),
  drainTimeoutMs: Type.Integer({
    minimum: 1,
    default: defaultLimits.drainTimeoutMs,
    description: 'A connection that stays unwritable this long is cut as a slow consumer.',
  }),
  maxClientIdLength: Type.Integer({
    minimum: 1,
    maximum: 65535,
    default: defaultLimits.maxClientIdLength,
    description: 'Longest client id accepted.',
  }),
  intakeBudgetMs: Type.Union([Type.Integer({ minimum: 0, maximum: 10_000 }), Type.Null()], {
    default: defaultLimits.intakeBudgetMs,
    description:
      'Per event-loop turn, client input is framed for at most this long (ms); the other clients wait for the next turn, TCP pushing back. In a cluster, QoS 0 from other nodes is routed for at most this long per turn, the rest dropped (counted as `cluster_overload`). Keeps the NATS connection, subscribers and /metrics serviced under overload. 0 = no limit; null = 10 in a cluster, no limit on a single node.',
  }),
} satisfies Record<keyof BrokerLimits, TSchema>;

export const MqttLimitsSchema = Type.Object(limitSchemas, { ...strict, default: {} });

export const StorageSchema = Type.Object(
  {
    driver: stringEnum(['sqlite', 'memory'] as const, {
      default: 'sqlite',
      description: 'sqlite persists sessions, QoS 1/2 state and retained messages; memory does not.',
    }),
    file: Type.Optional(
      Type.String({ minLength: 1, description: 'SQLite database file. Default `<dataDir>/breakwater.db`.' }),
    ),
  },
  { ...strict, default: {} },
);

export const HttpSchema = Type.Object(
  {
    enabled: Type.Boolean({ default: true, description: 'Serve /metrics, /healthz and /readyz.' }),
    host: Type.String({ minLength: 1, default: '0.0.0.0', description: 'Address the HTTP server binds.' }),
    port: Type.Integer({
      minimum: 0,
      maximum: 65535,
      default: 8080,
      description: 'HTTP port (flag --http-port).',
    }),
  },
  { ...strict, default: {} },
);

/**
 * Scale-out (issue 15): `cluster.servers` set → this process is one node of a cluster whose
 * routing, sessions, retained messages and wills live in NATS JetStream (`@breakwater/cluster`).
 * Empty (the default): a single node with its own storage, exactly as without this section.
 */
export const ClusterSchema = Type.Object(
  {
    servers: Type.Array(Type.String({ minLength: 1, pattern: '^(nats|tls)://' }), {
      default: [],
      description:
        'NATS servers of the cluster (`nats://host:4222`); empty = single node. `--cluster` sets it (comma-separated).',
    }),
    discoverServers: Type.Boolean({
      default: true,
      description:
        'Also use the NATS servers the cluster announces (failover beyond `servers`); false pins this node to `servers`.',
    }),
    prefix: Type.String({
      minLength: 1,
      maxLength: 32,
      pattern: '^[a-z][a-z0-9_]*$',
      default: 'bw',
      description: 'Subject and bucket prefix: several Breakwater clusters can share one NATS.',
    }),
    replicas: Type.Integer({
      minimum: 1,
      maximum: 5,
      default: 1,
      description: 'JetStream replicas of the message stream and KV buckets (3 on a 3-server NATS cluster).',
    }),
    streamMaxAgeSec: Type.Integer({
      minimum: 60,
      default: 3600,
      description:
        'How long QoS 1/2 messages stay in the stream for sessions that resume on another node, seconds.',
    }),
    heartbeatMs: Type.Integer({
      minimum: 100,
      maximum: 60_000,
      default: 1000,
      description: 'Node heartbeat period, ms.',
    }),
    deadAfterMs: Type.Integer({
      minimum: 500,
      default: 5000,
      description: "A node silent this long is dead: the survivors publish its clients' wills, once.",
    }),
    isolateAfterMs: Type.Integer({
      minimum: 0,
      default: 3000,
      description:
        'Without a NATS connection this long, the node sends its clients to other nodes; readiness is false at once when NATS or JetStream fails.',
    }),
    advertise: Type.Optional(
      Type.String({
        minLength: 1,
        description:
          "This node's MQTT address (`host:port`) given to clients redirected by other nodes (MQTT 5 Server Reference). Default: the first tcp listener.",
      }),
    ),
    requestTimeoutMs: Type.Integer({
      minimum: 100,
      default: 3000,
      description: 'Timeout of one JetStream request (publish ack, KV write), ms.',
    }),
    liveConnections: Type.Integer({
      minimum: 1,
      maximum: 16,
      default: 4,
      description:
        'NATS connections per node for QoS 0 between nodes, spread by topic (one topic stays on one): a node receiving a flood reads each once per event-loop turn, and NATS closes one that lets 64 MiB wait (max_pending) as a slow consumer. Each distinct filter is a NATS subscription on each. Every node must use the same number.',
    }),
    drainRatePerSec: Type.Integer({
      minimum: 1,
      default: 500,
      description: '`breakwater node drain` and isolation evict clients at this rate (per second).',
    }),
    sharedAckWaitMs: Type.Integer({
      minimum: 1000,
      maximum: 600_000,
      default: 5000,
      description:
        "Ack wait of a shared group's JetStream consumer (QoS 1/2 `$share/…`), ms: a message held by a member whose node died goes to another member after this. Taken when the group's consumer is created (an existing one keeps its value).",
    }),
    sharedMaxAckPending: Type.Integer({
      minimum: 1,
      maximum: 1_000_000,
      default: 1024,
      description:
        "Unacknowledged QoS 1/2 messages of one shared group's consumer, cluster-wide; at the limit JetStream pauses the group. Taken when the group's consumer is created (an existing one keeps its value).",
    }),
    sharedInFlightPerNode: Type.Integer({
      minimum: 1,
      maximum: 65_535,
      default: 64,
      description:
        "Unsettled deliveries of one shared group's consumer that the members on one node may hold; more are handed back for members elsewhere.",
    }),
    sharedInactiveMs: Type.Integer({
      minimum: 5000,
      maximum: 604_800_000,
      default: 60_000,
      description:
        "A shared group's consumer that no node has listened to for this long (its last member left) is removed by JetStream, ms. Taken when the group's consumer is created (an existing one keeps its value).",
    }),
  },
  { ...strict, default: {} },
);

/**
 * The fleet control plane (issue 5) that `breakwater up` serves on the HTTP port: device registry,
 * API keys, token issuer (JWKS), kill switches. Its storage is separate from the broker's.
 */
export const ControlSchema = Type.Object(
  {
    enabled: Type.Boolean({
      default: true,
      description: 'Serve the control-plane API (/api/v1, /.well-known/jwks.json) on the HTTP port.',
    }),
    gamedayReports: Type.String({
      minLength: 1,
      default: 'gameday-reports',
      description:
        'Directory the web console lists game-day runs from (`breakwater gameday run` writes `./gameday-reports/<run>` by default); relative to the working directory.',
    }),
    deviceEventsPerDevice: Type.Integer({
      minimum: 1,
      maximum: 100_000,
      default: 200,
      description:
        "Events kept in each device's history (connects, disconnects, queue drops by reason; `GET /api/v1/devices/{id}/events`): the newest are kept, older ones pruned as new ones are written.",
    }),
    storage: Type.Object(
      {
        driver: stringEnum(['sqlite', 'postgres'] as const, {
          default: 'sqlite',
          description: 'Control-plane database: embedded SQLite, or PostgreSQL (needs `url`).',
        }),
        file: Type.Optional(
          Type.String({
            minLength: 1,
            description: 'SQLite file (sqlite only). Default `<dataDir>/control.db`.',
          }),
        ),
        url: Type.Optional(
          Type.String({
            pattern: '^postgres(ql)?://',
            description:
              'PostgreSQL connection URL (postgres only), e.g. `postgres://user:pass@db:5432/fleet`.',
          }),
        ),
        schema: Type.Optional(
          Type.String({
            pattern: '^[A-Za-z_][A-Za-z0-9_]{0,62}$',
            description: 'PostgreSQL schema holding the tables (postgres only). Default `breakwater`.',
          }),
        ),
      },
      { ...strict, default: {} },
    ),
  },
  { ...strict, default: {} },
);

export const LogSchema = Type.Object(
  {
    level: stringEnum(logLevels, { default: 'info', description: 'Log level.' }),
    format: stringEnum(['auto', 'json', 'pretty'] as const, {
      default: 'auto',
      description:
        'auto: human-readable lines when stdout is a terminal, JSON lines (one pino object each) otherwise — what log shippers expect.',
    }),
  },
  { ...strict, default: {} },
);

export const defaultListeners = [
  { name: 'mqtt', type: 'tcp', host: '0.0.0.0', port: 1883 },
  { name: 'ws', type: 'ws', host: '0.0.0.0', port: 8083, path: '/mqtt' },
] as const;

export const ConfigSchema = Type.Object(
  {
    listeners: Type.Array(ListenerSchema, {
      default: defaultListeners,
      description: 'MQTT listeners. Default: tcp on 1883 and ws on 8083 (/mqtt).',
    }),
    mqtt: MqttLimitsSchema,
    storage: StorageSchema,
    dataDir: Type.String({ minLength: 1, default: './data', description: 'Directory for persistent state.' }),
    http: HttpSchema,
    log: LogSchema,
    control: ControlSchema,
    cluster: ClusterSchema,
    /**
     * Authentication and authorization per listener (issue 3). No `guard.listeners` at all means
     * no guard: every listener admits anonymous clients with full access (the out-of-the-box
     * quick tour), and `breakwater up` warns loudly. Once any listener is configured, a listener
     * without an entry (and without `*`) refuses every CONNECT.
     */
    guard: Type.Object(guardConfigSchema.properties, {
      ...strict,
      default: {},
      description: 'Authentication (authenticators, per-listener authn chains, authz rules, revocations).',
    }),
    admission: Type.Object(admissionConfigSchema.properties, {
      ...strict,
      default: {},
      description: 'Admission control: connection-rate buckets, caps, flapping, tarpit, slow start.',
    }),
    /** Built-in alert rules, their overrides and notification receivers (issue 7). */
    alerts: Type.Object(alertsConfigSchema.properties, {
      ...strict,
      default: {},
      description: 'Alert engine: rule overrides by id, webhooks, log, metric history length.',
    }),
    /** Data integration (issue 16): rules → sinks through a durable buffer, telemetry validation. */
    integration: Type.Object(integrationConfigSchema.properties, {
      ...strict,
      default: {},
      description: 'Data integration: sinks, rules, durable buffer, dead-letter queue, telemetry validation.',
    }),
  },
  strict,
);

export type BreakwaterConfig = Static<typeof ConfigSchema>;
export type ListenerConfig = Static<typeof ListenerSchema>;
export type TlsFilesConfig = Static<typeof TlsFilesSchema>;
export type MqttLimitsConfig = Static<typeof MqttLimitsSchema>;
export type ControlConfig = Static<typeof ControlSchema>;
export type ClusterConfig = Static<typeof ClusterSchema>;
