import { type Static, type TProperties, Type } from '@sinclair/typebox';
import { parseTopicFilter } from '../topics/validate.js';

/**
 * The `integration:` section of breakwater.yaml (issue 16): rules that hand messages to sinks
 * (webhook, PostgreSQL, NATS JetStream, Redis streams) through a durable buffer, and JSON Schema
 * validation of telemetry. The engine lives in @breakwater/integration, which depends on this
 * package; the schema lives here (like `alerts:`) because the broker's config loader validates
 * the whole file at once and cannot import a package that depends on it.
 */

const strict = { additionalProperties: false } as const;

/** Sink and rule names: metric labels and URL path segments. */
export const INTEGRATION_NAME_PATTERN = '^[A-Za-z0-9_.-]{1,64}$';
const Name = Type.String({ pattern: INTEGRATION_NAME_PATTERN });

function stringEnum<const T extends readonly string[]>(
  values: T,
  options: { default?: T[number]; description?: string },
) {
  return Type.Unsafe<T[number]>({ type: 'string', enum: [...values], ...options });
}

export const overflowPolicies = ['drop-oldest', 'drop-new'] as const;
export type OverflowPolicy = (typeof overflowPolicies)[number];

/** What every sink type has: batching, the drain bound, retries and its durable buffer's size. */
const deliveryProperties = {
  batchSize: Type.Integer({
    minimum: 1,
    maximum: 10_000,
    default: 500,
    description: 'Messages per delivery (one HTTP request, one INSERT, one pipeline).',
  }),
  maxPerSec: Type.Integer({
    minimum: 1,
    default: 2_000,
    description:
      'Delivery rate bound, messages/s, always in force: after an outage the backlog drains at this rate, so the recovered sink is not stormed.',
  }),
  timeoutMs: Type.Integer({ minimum: 100, default: 10_000, description: 'One delivery attempt.' }),
  retry: Type.Object(
    {
      initialMs: Type.Integer({
        minimum: 1,
        default: 500,
        description: 'First retry delay after a failure.',
      }),
      maxMs: Type.Integer({
        minimum: 1,
        default: 30_000,
        description: 'Retry delay cap; delays double up to it, with full jitter.',
      }),
    },
    { ...strict, default: {} },
  ),
  buffer: Type.Object(
    {
      maxMessages: Type.Integer({
        minimum: 1,
        default: 1_000_000,
        description: 'Messages the durable buffer holds for this sink.',
      }),
      maxBytes: Type.Integer({
        minimum: 1024,
        default: 1_073_741_824,
        description: 'Payload bytes the durable buffer holds for this sink.',
      }),
      overflow: stringEnum(overflowPolicies, {
        default: 'drop-oldest',
        description:
          'When full: drop-oldest deletes the oldest buffered messages to make room; drop-new refuses the new one. Either way counted in breakwater_integration_dropped_total.',
      }),
    },
    { ...strict, default: {} },
  ),
  paused: Type.Boolean({
    default: false,
    description: 'Start paused: buffer, deliver nothing until resumed (API / CLI).',
  }),
} satisfies TProperties;

function sinkSchema<P extends TProperties>(properties: P, description: string) {
  return Type.Object({ ...properties, ...deliveryProperties }, { ...strict, description });
}

export const WebhookSinkSchema = sinkSchema(
  {
    url: Type.String({ pattern: '^https?://', description: 'Receives one JSON POST per batch.' }),
    secretEnv: Type.Optional(
      Type.String({
        minLength: 1,
        description:
          'Environment variable holding the HMAC-SHA256 signing secret (x-breakwater-signature: t=<unix s>,v1=<hex of HMAC(secret, "<t>.<body>")>).',
      }),
    ),
    secret: Type.Optional(
      Type.String({ minLength: 16, description: 'The signing secret itself (prefer secretEnv).' }),
    ),
    headers: Type.Record(Type.String(), Type.String(), {
      default: {},
      description: 'Extra request headers (e.g. authorization).',
    }),
  },
  'HTTP webhook: batched JSON POSTs, signed with HMAC-SHA256.',
);

export const PostgresSinkSchema = sinkSchema(
  {
    url: Type.String({
      pattern: '^postgres(ql)?://',
      description: 'PostgreSQL connection URL, e.g. `postgres://ingest@db:5432/telemetry`.',
    }),
    table: Type.String({
      pattern: '^[A-Za-z_][A-Za-z0-9_]{0,62}(\\.[A-Za-z_][A-Za-z0-9_]{0,62})?$',
      description: 'Target table (`table` or `schema.table`); it must exist.',
    }),
    columns: Type.Record(Type.String({ pattern: '^[A-Za-z_][A-Za-z0-9_]{0,62}$' }), Type.String(), {
      minProperties: 1,
      description:
        'Column → value: `$id` (message id, bigint), `$topic`, `$topic.N` (level N), `$publisher`, `$receivedAt` (timestamptz), `$payload` (bytea), `$text`, `$json` (json/jsonb), `$json.a.b` (a field).',
    }),
    onConflict: stringEnum(['error', 'ignore'] as const, {
      default: 'error',
      description:
        'ignore: ON CONFLICT DO NOTHING — with a unique column mapped to `$id`, a redelivered batch inserts nothing twice.',
    }),
    poolSize: Type.Integer({ minimum: 1, maximum: 20, default: 2, description: 'Connections.' }),
  },
  'PostgreSQL: batched multi-row INSERTs into a table you map.',
);

export const NatsSinkSchema = sinkSchema(
  {
    servers: Type.Array(Type.String({ minLength: 1 }), {
      minItems: 1,
      default: ['nats://127.0.0.1:4222'],
      description: 'NATS servers.',
    }),
    subject: Type.String({
      minLength: 1,
      default: 'breakwater.{topic}',
      description:
        'Subject; `{topic}` is the MQTT topic with `/` as `.` (levels that are not valid subject tokens are escaped).',
    }),
    token: Type.Optional(Type.String({ minLength: 1, description: 'Auth token.' })),
    user: Type.Optional(Type.String({ minLength: 1, description: 'User name.' })),
    pass: Type.Optional(Type.String({ minLength: 1, description: 'Password.' })),
  },
  'NATS JetStream: each message published with a Nats-Msg-Id (duplicates within the stream window are dropped by JetStream); a stream must capture the subject.',
);

export const RedisSinkSchema = sinkSchema(
  {
    url: Type.String({ pattern: '^rediss?://', description: 'e.g. `redis://127.0.0.1:6379/0`.' }),
    stream: Type.String({
      minLength: 1,
      default: 'breakwater:{topic}',
      description: 'Stream key; `{topic}` is the MQTT topic.',
    }),
    maxLen: Type.Optional(
      Type.Integer({
        minimum: 1,
        description: 'XADD MAXLEN ~ n: Redis trims the stream to about n entries.',
      }),
    ),
  },
  'Redis streams: one XADD per message in one pipeline per batch.',
);

export const whereOps = ['eq', 'ne', 'gt', 'gte', 'lt', 'lte', 'exists', 'missing'] as const;
export type WhereOp = (typeof whereOps)[number];

export const RuleConditionSchema = Type.Object(
  {
    path: Type.String({
      minLength: 1,
      maxLength: 200,
      description: 'Dot path into the JSON payload, e.g. `temp` or `meta.fw`.',
    }),
    op: stringEnum(whereOps, { description: 'Comparison.' }),
    value: Type.Optional(
      Type.Union([Type.String(), Type.Number(), Type.Boolean(), Type.Null()], {
        description: 'Compared value (not for exists/missing).',
      }),
    ),
  },
  strict,
);

export const RuleSchema = Type.Object(
  {
    id: Type.String({ pattern: INTEGRATION_NAME_PATTERN, description: 'Unique rule id.' }),
    filter: Type.String({
      minLength: 1,
      maxLength: 1024,
      description: 'MQTT topic filter (+ and # allowed).',
    }),
    where: Type.Optional(
      Type.Array(RuleConditionSchema, {
        maxItems: 16,
        description: 'Payload conditions (all must hold; a payload that is not JSON matches none).',
      }),
    ),
    sinks: Type.Array(Name, { minItems: 1, maxItems: 16, description: 'Sink names.' }),
    enabled: Type.Boolean({ default: true }),
    description: Type.Optional(Type.String({ maxLength: 500 })),
  },
  strict,
);

export const ValidationSchema = Type.Object(
  {
    filter: Type.String({ minLength: 1, maxLength: 1024, description: 'Topics whose payload is checked.' }),
    schema: Type.Optional(
      Type.Unsafe<Record<string, unknown>>({ type: 'object', description: 'The JSON Schema (inline).' }),
    ),
    schemaFile: Type.Optional(Type.String({ minLength: 1, description: 'The JSON Schema, from a file.' })),
    onInvalid: stringEnum(['drop', 'deliver'] as const, {
      default: 'drop',
      description: 'drop: an invalid message goes to no sink (it is counted and sampled into the DLQ).',
    }),
    sampleIntervalSec: Type.Integer({
      minimum: 0,
      default: 60,
      description: 'At most one invalid message per device per interval is kept in the DLQ (0: every one).',
    }),
  },
  strict,
);

export const integrationConfigSchema = Type.Object(
  {
    buffer: Type.Object(
      {
        file: Type.Optional(
          Type.String({ minLength: 1, description: 'SQLite file. Default `<dataDir>/integration.db`.' }),
        ),
        synchronous: stringEnum(['normal', 'full'] as const, {
          default: 'normal',
          description: 'normal: survives a killed process; full: fsync per commit (power loss).',
        }),
      },
      { ...strict, default: {} },
    ),
    deadLetter: Type.Object(
      {
        maxMessages: Type.Integer({
          minimum: 1,
          default: 100_000,
          description: 'DLQ entries kept; beyond it the oldest is deleted (counted).',
        }),
      },
      { ...strict, default: {} },
    ),
    sinks: Type.Object(
      {
        webhook: Type.Record(Name, WebhookSinkSchema, { default: {} }),
        postgres: Type.Record(Name, PostgresSinkSchema, { default: {} }),
        nats: Type.Record(Name, NatsSinkSchema, { default: {} }),
        redis: Type.Record(Name, RedisSinkSchema, { default: {} }),
      },
      { ...strict, default: {}, description: 'Sinks by type, then by name (names unique across types).' },
    ),
    rules: Type.Array(RuleSchema, {
      default: [],
      description: 'Topic filter (+ optional payload condition) → sinks. Reloaded on SIGHUP.',
    }),
    validation: Type.Array(ValidationSchema, {
      default: [],
      description: 'JSON Schema per topic filter. Reloaded on SIGHUP.',
    }),
  },
  { ...strict, default: {} },
);

export type IntegrationConfig = Static<typeof integrationConfigSchema>;
export type RuleConfig = Static<typeof RuleSchema>;
export type RuleCondition = Static<typeof RuleConditionSchema>;
export type ValidationConfig = Static<typeof ValidationSchema>;
export type WebhookSinkConfig = Static<typeof WebhookSinkSchema>;
export type PostgresSinkConfig = Static<typeof PostgresSinkSchema>;
export type NatsSinkConfig = Static<typeof NatsSinkSchema>;
export type RedisSinkConfig = Static<typeof RedisSinkSchema>;
export type SinkType = keyof IntegrationConfig['sinks'];
export const sinkTypes = ['webhook', 'postgres', 'nats', 'redis'] as const satisfies readonly SinkType[];

/**
 * The rules the schema cannot express, one line per problem naming the key: sink names unique
 * across types, rules naming known sinks, valid topic filters, one schema source per validation.
 */
export function integrationProblems(c: IntegrationConfig): string[] {
  const problems: string[] = [];
  const sinkNames = new Map<string, string>();
  for (const type of sinkTypes) {
    for (const name of Object.keys(c.sinks[type])) {
      const seen = sinkNames.get(name);
      if (seen !== undefined)
        problems.push(
          `integration.sinks.${type}.${name}: the name is already used by integration.sinks.${seen}.${name}`,
        );
      else sinkNames.set(name, type);
      const hook = type === 'webhook' ? c.sinks.webhook[name]! : null;
      if (hook && hook.secret !== undefined && hook.secretEnv !== undefined)
        problems.push(`integration.sinks.webhook.${name}: set secret or secretEnv, not both`);
    }
  }
  return [
    ...problems,
    ...rulesProblems(c.rules, new Set(sinkNames.keys()), 'integration.rules'),
    ...validationProblems(c.validation),
  ];
}

/** Problems of a rule list (config file or API): unique ids, valid filters, known sinks. */
export function rulesProblems(
  rules: readonly RuleConfig[],
  sinks: ReadonlySet<string>,
  at: string,
): string[] {
  const problems: string[] = [];
  const ids = new Map<string, number>();
  rules.forEach((r, i) => {
    const seen = ids.get(r.id);
    if (seen !== undefined) problems.push(`${at}[${i}].id "${r.id}" is already used by ${at}[${seen}]`);
    else ids.set(r.id, i);
    const f = filterProblem(r.filter);
    if (f) problems.push(`${at}[${i}].filter ${f}`);
    r.sinks.forEach((s, j) => {
      if (!sinks.has(s)) problems.push(`${at}[${i}].sinks[${j}]: there is no sink named "${s}"`);
    });
    r.where?.forEach((w, j) => {
      const needsValue = w.op !== 'exists' && w.op !== 'missing';
      if (needsValue && w.value === undefined)
        problems.push(`${at}[${i}].where[${j}].value is required for op "${w.op}"`);
      if (
        (w.op === 'gt' || w.op === 'gte' || w.op === 'lt' || w.op === 'lte') &&
        typeof w.value !== 'number' &&
        typeof w.value !== 'string'
      )
        problems.push(`${at}[${i}].where[${j}].value must be a number or a string for op "${w.op}"`);
    });
  });
  return problems;
}

function validationProblems(list: readonly ValidationConfig[]): string[] {
  const problems: string[] = [];
  list.forEach((v, i) => {
    const f = filterProblem(v.filter);
    if (f) problems.push(`integration.validation[${i}].filter ${f}`);
    if ((v.schema === undefined) === (v.schemaFile === undefined))
      problems.push(`integration.validation[${i}]: set exactly one of schema and schemaFile`);
  });
  return problems;
}

/** Null when `filter` is a valid, non-shared MQTT topic filter; else why not. */
export function filterProblem(filter: string): string | null {
  const parsed = parseTopicFilter(filter);
  if (!parsed.ok) return `is not a valid topic filter (${parsed.reason})`;
  if (parsed.shareGroup !== null) return 'must not be a shared subscription ($share/…)';
  return null;
}
