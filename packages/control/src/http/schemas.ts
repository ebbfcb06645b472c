/** JSON schemas (TypeBox) for every route: validation, serialization and the OpenAPI document. */
import { type TSchema, Type } from '@sinclair/typebox';
import { DEVICE_EVENT_KINDS } from '../devices/events.js';
import {
  ConnectionStateSchema,
  DeviceIdSchema,
  FIRMWARE_PATTERN,
  LABEL_PATTERN,
  SelectorSchema,
  TagSchema,
} from '../selector.js';

const strict = { additionalProperties: false } as const;
const Iso = Type.String({ description: 'ISO 8601 timestamp (UTC).' });
const NullableIso = Type.Union([Iso, Type.Null()]);

export const ErrorResponse = Type.Object({
  error: Type.Object({
    code: Type.String({ description: 'Stable BW_ERR_* code (docs/errors.md).' }),
    message: Type.String(),
    field: Type.Optional(Type.String({ description: 'The offending field, e.g. `ttl` or `rows[3].id`.' })),
  }),
});

/** Error responses every route documents. */
export const errorResponses = {
  '4xx': ErrorResponse,
  '5xx': ErrorResponse,
} as const;

export const Reason = Type.String({
  minLength: 1,
  maxLength: 500,
  description: 'Why (goes to the audit log). Also accepted as the `x-breakwater-reason` header.',
});

export const Role = Type.Union([Type.Literal('admin'), Type.Literal('operator'), Type.Literal('viewer')]);

export const ApiKeyView = Type.Object({
  id: Type.String(),
  name: Type.String(),
  role: Role,
  createdAt: Iso,
  createdBy: Type.Union([Type.String(), Type.Null()]),
  revokedAt: NullableIso,
  lastUsedAt: NullableIso,
});

export const CreateApiKeyBody = Type.Object(
  { name: Type.String({ minLength: 1, maxLength: 100 }), role: Role, reason: Type.Optional(Reason) },
  strict,
);

export const IdParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 128 }) }, strict);
export const DeviceIdParams = Type.Object({ id: DeviceIdSchema }, strict);

const Tags = Type.Array(TagSchema, { maxItems: 32, uniqueItems: true });
const Cohort = Type.Union([Type.String({ pattern: LABEL_PATTERN }), Type.Null()]);
const Firmware = Type.Union([Type.String({ pattern: FIRMWARE_PATTERN }), Type.Null()]);

export const DeviceView = Type.Object({
  id: Type.String(),
  tags: Type.Array(Type.String()),
  cohort: Type.Union([Type.String(), Type.Null()]),
  firmwareVersion: Type.Union([Type.String(), Type.Null()]),
  connectionState: ConnectionStateSchema,
  lastSeen: NullableIso,
  lastDisconnectReason: Type.Union([Type.String(), Type.Null()]),
  createdAt: Iso,
  updatedAt: Iso,
});

/** One device in a create request or an import row. */
export const DeviceInput = Type.Object(
  {
    id: DeviceIdSchema,
    tags: Type.Optional(Tags),
    cohort: Type.Optional(Cohort),
    firmwareVersion: Type.Optional(Firmware),
  },
  strict,
);

export const CreateDeviceBody = Type.Object(
  {
    id: DeviceIdSchema,
    tags: Type.Optional(Tags),
    cohort: Type.Optional(Cohort),
    firmwareVersion: Type.Optional(Firmware),
    reason: Type.Optional(Reason),
  },
  strict,
);

export const PatchDeviceBody = Type.Object(
  {
    tags: Type.Optional(Tags),
    cohort: Type.Optional(Cohort),
    firmwareVersion: Type.Optional(Firmware),
    reason: Type.Optional(Reason),
  },
  { ...strict, minProperties: 1 },
);

export const MAX_IMPORT_ROWS = 10_000;
export const ImportJsonBody = Type.Array(DeviceInput, { minItems: 1, maxItems: MAX_IMPORT_ROWS });

export const Limit = Type.Integer({ minimum: 1, maximum: 1000, default: 100 });
const Cursor = Type.String({ minLength: 1, maxLength: 400 });

export const ListDevicesQuery = Type.Object(
  {
    tag: Type.Optional(Type.Array(TagSchema, { maxItems: 32, description: 'Repeat for "has all of".' })),
    cohort: Type.Optional(Type.String({ pattern: LABEL_PATTERN })),
    firmware: Type.Optional(Type.String({ pattern: FIRMWARE_PATTERN })),
    connectionState: Type.Optional(ConnectionStateSchema),
    q: Type.Optional(
      Type.String({
        pattern: '^[A-Za-z0-9._:@-]{1,128}$',
        description: 'Search: devices whose id contains this (case-insensitive).',
      }),
    ),
    lastDisconnectReason: Type.Optional(
      Type.String({ pattern: '^[A-Za-z0-9_ .:-]{1,64}$', description: 'e.g. KeepAliveTimeout' }),
    ),
    includeTotal: Type.Optional(
      Type.Boolean({ description: 'Also count every match (`total`): one more query.' }),
    ),
    limit: Type.Optional(Limit),
    cursor: Type.Optional(Cursor),
  },
  strict,
);

export const KickDevicesBody = Type.Object(
  {
    ids: Type.Array(DeviceIdSchema, { minItems: 1, maxItems: 1000, uniqueItems: true }),
    reason: Type.Optional(Reason),
  },
  strict,
);

export function page<T extends TSchema>(item: T) {
  return Type.Object({
    items: Type.Array(item),
    nextCursor: Type.Union([Type.String(), Type.Null()], {
      description: 'Pass as `cursor` for the next page.',
    }),
  });
}

export const ResolveSelectorBody = Type.Object({ selector: SelectorSchema }, strict);

export const AuditView = Type.Object({
  seq: Type.Integer(),
  at: Iso,
  actor: Type.Object({ id: Type.String(), name: Type.String() }),
  action: Type.String(),
  target: Type.Object({ type: Type.String(), id: Type.Union([Type.String(), Type.Null()]) }),
  reason: Type.Union([Type.String(), Type.Null()]),
  details: Type.Union([Type.Object({}, { additionalProperties: true }), Type.Null()]),
});

export const AuditQuery = Type.Object(
  {
    actor: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })),
    action: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
    targetType: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
    targetId: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })),
    since: Type.Optional(Type.String({ minLength: 1, description: 'ISO 8601; entries at or after.' })),
    until: Type.Optional(Type.String({ minLength: 1, description: 'ISO 8601; entries before.' })),
    limit: Type.Optional(Limit),
    cursor: Type.Optional(Cursor),
  },
  strict,
);

const DeviceEventKind = Type.Union(
  DEVICE_EVENT_KINDS.map((k) => Type.Literal(k)),
  {
    description:
      'connected / disconnected: the broker accepted or ended a session. messages_dropped: the session queue was full and the broker dropped `count` messages for `reason` since its previous report (at most one report per session every 10 s).',
  },
);

export const DeviceEventView = Type.Object({
  seq: Type.Integer({ description: 'Increases with every stored event; the list is newest first.' }),
  at: Iso,
  kind: DeviceEventKind,
  clientId: Type.String({ description: 'The MQTT client id of the session.' }),
  reason: Type.Union([Type.String(), Type.Null()], {
    description:
      'disconnected: the disconnect reason (e.g. KeepAliveTimeout). messages_dropped: queue_full (the message limit `mqtt.offlineQueueLimit`), queue_bytes_full (`mqtt.offlineQueueBytes`) or queue_evicted (dropped to make room under `mqtt.queueOverflow: drop-oldest`), as in the metric breakwater_messages_dropped_total{reason}.',
  }),
  count: Type.Union([Type.Integer({ minimum: 1 }), Type.Null()], {
    description: 'messages_dropped: how many messages; null for other kinds.',
  }),
});

export const DeviceEventsQuery = Type.Object(
  {
    kind: Type.Optional(DeviceEventKind),
    limit: Type.Optional(Limit),
    cursor: Type.Optional(Cursor),
  },
  strict,
);

export const MintTokenBody = Type.Object(
  {
    deviceId: DeviceIdSchema,
    ttl: Type.Integer({ minimum: 1, description: 'Lifetime in seconds (at most the issuer maximum).' }),
    reason: Type.Optional(Reason),
  },
  strict,
);

export const TokenView = Type.Object({
  token: Type.String(),
  tokenId: Type.String({ description: 'The `jti` claim.' }),
  kid: Type.String(),
  issuedAt: Iso,
  expiresAt: Iso,
});

export const DeviceTokenBody = Type.Object(
  { deviceId: DeviceIdSchema, secret: Type.String({ minLength: 1, maxLength: 200 }) },
  strict,
);

export const SigningKeyView = Type.Object({
  kid: Type.String(),
  createdAt: Iso,
  retiredAt: NullableIso,
  inJwksUntil: Type.Union([Iso, Type.Null()], { description: 'null: active key.' }),
});

export const RotateBody = Type.Object({ reason: Type.Optional(Reason) }, strict);

export const Jwk = Type.Object({}, { additionalProperties: true });
