/** JSON schemas (TypeBox) of the config-push routes. */
import { Type } from '@sinclair/typebox';
import { Limit, Reason } from '../http/schemas.js';
import {
  ConnectionStateSchema,
  DeviceIdSchema,
  FIRMWARE_PATTERN,
  LABEL_PATTERN,
  SelectorSchema,
  TagSchema,
} from '../selector.js';
import { MAX_CONFIG_BYTES } from './document.js';
import { driftStatuses } from './model.js';

const strict = { additionalProperties: false } as const;
const Iso = Type.String({ description: 'ISO 8601 timestamp (UTC).' });
const NullableIso = Type.Union([Iso, Type.Null()]);
const ContentMatches = Type.Union([Type.Boolean(), Type.Null()], {
  description:
    'Whether the reported config (without `version`) equals the desired one; null when either is missing. ' +
    'Informative: a device may report its effective config (defaults filled in).',
});

export const ConfigDocument = Type.Object(
  {},
  {
    additionalProperties: true,
    description:
      `A JSON object, at most ${MAX_CONFIG_BYTES} bytes as published. The top-level key \`version\` is ` +
      'reserved: the control plane sets it to the push version.',
  },
);

const Merge = Type.Boolean({
  default: false,
  description:
    "false: `config` replaces each device's desired config. true: `config` is a JSON Merge Patch " +
    "(RFC 7396: objects merge, `null` deletes a key) applied to each device's current desired config.",
});

export const DeviceConfigBody = Type.Object(
  { config: ConfigDocument, merge: Type.Optional(Merge), reason: Type.Optional(Reason) },
  strict,
);

export const PushBody = Type.Object(
  {
    selector: SelectorSchema,
    config: ConfigDocument,
    merge: Type.Optional(Merge),
    reason: Type.Optional(Reason),
  },
  strict,
);

/** The kill switch: the same as a push, but the why is required. */
export const KillSwitchBody = Type.Object(
  { selector: SelectorSchema, config: ConfigDocument, merge: Type.Optional(Merge), reason: Reason },
  strict,
);

export const PushResultView = Type.Object({
  action: Type.String({ description: '`config.push` (or `config-push` for the kill switch route).' }),
  version: Type.Union([Type.Integer(), Type.Null()], {
    description: 'The config version every reached device now has as desired; null when nothing matched.',
  }),
  matchedDevices: Type.Integer(),
  published: Type.Integer({ description: 'Retained publishes the broker accepted.' }),
  online: Type.Integer({ description: 'Targeted devices connected at publish time (applied live).' }),
  warnings: Type.Array(Type.String()),
});

export const DriftStatusSchema = Type.Union(
  driftStatuses.map((s) => Type.Literal(s)),
  {
    description:
      'Desired vs reported version. `in-sync`: reports the desired version. `pending`: reports an older ' +
      'version. `never-reported`: has a desired config, never reported. `differs`: reports a version ' +
      'that is newer, not a push version, or missing. `no-desired`: nothing pushed.',
  },
);

export const DeviceConfigView = Type.Object({
  deviceId: Type.String(),
  status: DriftStatusSchema,
  inSync: Type.Boolean(),
  contentMatches: ContentMatches,
  desired: Type.Union([
    Type.Object({ version: Type.Integer(), config: ConfigDocument, pushedAt: Iso }),
    Type.Null(),
  ]),
  reported: Type.Union([
    Type.Object({
      version: Type.Union([Type.String(), Type.Null()]),
      config: ConfigDocument,
      reportedAt: Iso,
    }),
    Type.Null(),
  ]),
});

export const DriftQuery = Type.Object(
  {
    id: Type.Optional(Type.Array(DeviceIdSchema, { maxItems: 1000, description: 'Repeat for several.' })),
    tag: Type.Optional(Type.Array(TagSchema, { maxItems: 32, description: 'Repeat for "has all of".' })),
    cohort: Type.Optional(Type.String({ pattern: LABEL_PATTERN })),
    firmware: Type.Optional(Type.String({ pattern: FIRMWARE_PATTERN })),
    connectionState: Type.Optional(ConnectionStateSchema),
    status: Type.Optional(DriftStatusSchema),
    limit: Type.Optional(Limit),
    cursor: Type.Optional(Type.String({ minLength: 1, maxLength: 400 })),
  },
  strict,
);

export const DriftItemView = Type.Object({
  deviceId: Type.String(),
  connectionState: ConnectionStateSchema,
  desiredVersion: Type.Union([Type.Integer(), Type.Null()]),
  reportedVersion: Type.Union([Type.String(), Type.Null()]),
  inSync: Type.Boolean(),
  contentMatches: ContentMatches,
  status: DriftStatusSchema,
  pushedAt: NullableIso,
  reportedAt: NullableIso,
});

export const DriftSummaryView = Type.Object({
  matched: Type.Integer({ description: 'Devices the filters match (all pages).' }),
  inSync: Type.Integer(),
  pending: Type.Integer(),
  neverReported: Type.Integer(),
  differs: Type.Integer(),
  noDesired: Type.Integer(),
});

export const DriftView = Type.Object({
  summary: DriftSummaryView,
  items: Type.Array(DriftItemView),
  nextCursor: Type.Union([Type.String(), Type.Null()], {
    description: 'Pass as `cursor` for the next page.',
  }),
});
