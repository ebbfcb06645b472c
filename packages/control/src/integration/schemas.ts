/** JSON schemas (TypeBox) of the data-integration routes: rules, sinks, dead-letter queue, validation. */
import { INTEGRATION_NAME_PATTERN, RuleConditionSchema } from '@breakwater/broker';
import { type Static, Type } from '@sinclair/typebox';
import { Reason } from '../http/schemas.js';

const strict = { additionalProperties: false } as const;
const Iso = Type.String({ description: 'ISO 8601 timestamp (UTC).' });
const NullableIso = Type.Union([Iso, Type.Null()]);
const Name = Type.String({ pattern: INTEGRATION_NAME_PATTERN });

export const RuleBody = Type.Object(
  {
    id: Name,
    filter: Type.String({
      minLength: 1,
      maxLength: 1024,
      description: 'MQTT topic filter (+ and # allowed).',
    }),
    where: Type.Optional(Type.Array(RuleConditionSchema, { maxItems: 16 })),
    sinks: Type.Array(Name, { minItems: 1, maxItems: 16 }),
    enabled: Type.Optional(Type.Boolean()),
    description: Type.Optional(Type.String({ maxLength: 500 })),
    reason: Type.Optional(Reason),
  },
  strict,
);
export type RuleBodyT = Static<typeof RuleBody>;

export const RuleView = Type.Object({
  id: Type.String(),
  filter: Type.String(),
  where: Type.Optional(Type.Array(RuleConditionSchema)),
  sinks: Type.Array(Type.String()),
  enabled: Type.Boolean(),
  description: Type.Optional(Type.String()),
  source: Type.Union([Type.Literal('config'), Type.Literal('api')], {
    description: 'config: from the config file (read-only here; reloaded on SIGHUP); api: created here.',
  }),
  createdAt: NullableIso,
  updatedAt: NullableIso,
  stats: Type.Object({
    matched: Type.Integer({ description: 'Handed to the sinks since start.' }),
    filtered: Type.Integer({ description: 'Payload condition false.' }),
    invalid: Type.Integer({ description: 'Dropped by validation.' }),
  }),
});

export const RuleIdParams = Type.Object({ id: Name }, strict);
export const SinkNameParams = Type.Object({ name: Name }, strict);

export const SinkView = Type.Object({
  name: Type.String(),
  type: Type.String(),
  state: Type.Union([Type.Literal('healthy'), Type.Literal('failing'), Type.Literal('paused')]),
  paused: Type.Union([
    Type.Object({ reason: Type.Union([Type.String(), Type.Null()]), at: Iso }),
    Type.Null(),
  ]),
  queued: Type.Integer({ description: 'Messages in the durable buffer.' }),
  queuedBytes: Type.Integer(),
  oldestAgeSec: Type.Union([Type.Number(), Type.Null()]),
  delivered: Type.Integer(),
  failedAttempts: Type.Integer(),
  consecutiveFailures: Type.Integer(),
  deadLettered: Type.Integer(),
  dropped: Type.Integer(),
  lastError: Type.Union([Type.Object({ code: Type.String(), message: Type.String(), at: Iso }), Type.Null()]),
  lastDeliveryAt: NullableIso,
  nextRetryAt: NullableIso,
  maxPerSec: Type.Integer(),
  batchSize: Type.Integer(),
  bufferLimits: Type.Object({
    maxMessages: Type.Integer(),
    maxBytes: Type.Integer(),
    overflow: Type.String(),
  }),
});

export const PauseBody = Type.Object({ reason: Reason }, strict);
export const ResumeBody = Type.Object({ reason: Type.Optional(Reason) }, strict);

const DlqReason = Type.Union([Type.Literal('rejected'), Type.Literal('invalid')]);

export const DeadLetterView = Type.Object({
  id: Type.Integer(),
  sink: Type.Union([Type.String(), Type.Null()]),
  msgId: Type.Integer(),
  rule: Type.Union([Type.String(), Type.Null()]),
  topic: Type.String(),
  publisher: Type.Union([Type.String(), Type.Null()]),
  receivedAt: Iso,
  failedAt: Iso,
  reason: DlqReason,
  errorCode: Type.String(),
  error: Type.String(),
  attempts: Type.Integer(),
  context: Type.Union([Type.Record(Type.String(), Type.Unknown()), Type.Null()]),
  payloadBytes: Type.Integer(),
  payload: Type.String({ description: 'The payload (UTF-8 text, or base64 when it is not UTF-8).' }),
  encoding: Type.Union([Type.Literal('utf8'), Type.Literal('base64')]),
});

export const ListDlqQuery = Type.Object(
  {
    sink: Type.Optional(Name),
    rule: Type.Optional(Name),
    reason: Type.Optional(DlqReason),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })),
    cursor: Type.Optional(Type.String({ pattern: '^[0-9]{1,15}$' })),
  },
  strict,
);

export const DlqIdParams = Type.Object({ id: Type.Integer({ minimum: 1 }) }, strict);

export const DlqSelectionBody = Type.Object(
  {
    ids: Type.Optional(
      Type.Array(Type.Integer({ minimum: 1 }), { minItems: 1, maxItems: 10_000, uniqueItems: true }),
    ),
    sink: Type.Optional(Name),
    rule: Type.Optional(Name),
    dlqReason: Type.Optional(DlqReason),
    all: Type.Optional(
      Type.Literal(true, { description: 'Every entry (needed when nothing else selects).' }),
    ),
    reason: Type.Optional(Reason),
  },
  strict,
);
export type DlqSelectionBodyT = Static<typeof DlqSelectionBody>;

export const ReplayResult = Type.Object({
  replayed: Type.Integer(),
  skipped: Type.Array(Type.Object({ id: Type.Integer(), why: Type.String() })),
});

export const ValidationQuery = Type.Object(
  { limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })) },
  strict,
);

export const ValidationView = Type.Object({
  total: Type.Integer({ description: 'Messages that failed validation since start.' }),
  devicesTracked: Type.Integer(),
  devices: Type.Array(
    Type.Object({
      device: Type.String(),
      cohort: Type.Union([Type.String(), Type.Null()]),
      count: Type.Integer(),
      lastAt: Iso,
      lastTopic: Type.String(),
      lastError: Type.String(),
      filter: Type.String(),
    }),
  ),
  cohorts: Type.Array(Type.Object({ cohort: Type.String(), failures: Type.Integer() })),
});

export const RuleList = Type.Object({ items: Type.Array(RuleView) });
export const SinkList = Type.Object({ items: Type.Array(SinkView) });
export const DeadLetterPage = Type.Object({
  items: Type.Array(DeadLetterView),
  nextCursor: Type.Union([Type.String(), Type.Null()]),
  total: Type.Integer({ description: 'Entries in the dead-letter queue.' }),
});
export const PurgeResult = Type.Object({ deleted: Type.Integer() });
