/** JSON schemas (TypeBox) of the incident, runbook and status routes. */
import { type TSchema, Type } from '@sinclair/typebox';
import { Limit, Reason } from '../http/schemas.js';
import { incidentStates, incidentTypes, severities, statusComponents, updateStatuses } from './model.js';

const strict = { additionalProperties: false } as const;
const Iso = Type.String({ description: 'ISO 8601 timestamp (UTC).' });
const NullableIso = Type.Union([Iso, Type.Null()]);
const NullableMs = Type.Union([Type.Integer(), Type.Null()]);

function literals<T extends readonly string[]>(values: T, description?: string): TSchema {
  return Type.Union(
    values.map((v) => Type.Literal(v)),
    description ? { description } : {},
  );
}

export const IncidentTypeSchema = literals(incidentTypes);
export const SeveritySchema = literals(severities);
export const ComponentSchema = literals(statusComponents);
export const UpdateStatusSchema = literals(updateStatuses);

export const IncidentParams = Type.Object(
  { id: Type.String({ pattern: '^(INC-)?[1-9][0-9]{0,15}$', description: '`12` or `INC-12`.' }) },
  strict,
);
export const SlugParams = Type.Object(
  { slug: Type.String({ pattern: '^[a-z0-9][a-z0-9-]{0,63}$' }) },
  strict,
);

export const Durations = Type.Object(
  { ttdMs: NullableMs, ttaMs: NullableMs, ttmMs: NullableMs, ttrMs: NullableMs },
  {
    description:
      'TTD = detected − started (first abnormal sample); TTA = acknowledged − detected; TTM = mitigated − started; TTR = resolved − started. null until reached.',
  },
);

export const RunbookRef = Type.Object({
  slug: Type.String(),
  title: Type.Union([Type.String(), Type.Null()]),
  path: Type.String({ description: 'GET this for the markdown.' }),
});

export const IncidentView = Type.Object({
  id: Type.Integer(),
  ref: Type.String({ description: '`INC-<id>`' }),
  type: IncidentTypeSchema,
  severity: SeveritySchema,
  title: Type.String(),
  state: literals(incidentStates),
  commander: Type.Union([Type.String(), Type.Null()]),
  runbook: RunbookRef,
  components: Type.Array(ComponentSchema),
  source: Type.Union([Type.Literal('alert'), Type.Literal('manual')]),
  startedAt: Iso,
  detectedAt: Iso,
  acknowledgedAt: NullableIso,
  mitigatedAt: NullableIso,
  resolvedAt: NullableIso,
  createdBy: Type.String(),
  updatedAt: Iso,
  durations: Durations,
});

const Details = Type.Union([Type.Object({}, { additionalProperties: true }), Type.Null()]);

export const TimelineItemView = Type.Object({
  at: Iso,
  kind: literals(['alert', 'state', 'note', 'update', 'action']),
  source: literals(['incident', 'control-audit', 'broker-audit']),
  actor: Type.String(),
  text: Type.String(),
  details: Details,
});

export const AlertView = Type.Object({
  ruleId: Type.String(),
  name: Type.String(),
  severity: SeveritySchema,
  labels: Type.Record(Type.String(), Type.String()),
  firing: Type.Boolean(),
  startedAt: Iso,
  firstFiredAt: Iso,
  lastEventAt: Iso,
  value: Type.Number(),
  threshold: Type.Number(),
  summary: Type.String(),
});

export const IncidentDetailView = Type.Object({
  incident: IncidentView,
  alerts: Type.Array(AlertView),
  timeline: Type.Array(TimelineItemView),
});

export const ListIncidentsQuery = Type.Object(
  {
    state: Type.Optional(literals([...incidentStates, 'open'], '`open`: every state but resolved.')),
    type: Type.Optional(IncidentTypeSchema),
    limit: Type.Optional(Limit),
    cursor: Type.Optional(Type.String({ minLength: 1, maxLength: 100 })),
  },
  strict,
);

const Title = Type.String({ minLength: 1, maxLength: 200 });
const Person = Type.String({ minLength: 1, maxLength: 100 });
const Text = Type.String({ minLength: 1, maxLength: 5000 });

export const CreateIncidentBody = Type.Object(
  {
    type: IncidentTypeSchema,
    title: Title,
    severity: SeveritySchema,
    commander: Type.Optional(Person),
    runbook: Type.Optional(
      Type.String({ pattern: '^[a-z0-9][a-z0-9-]{0,63}$', description: 'Default: the type.' }),
    ),
    components: Type.Optional(Type.Array(ComponentSchema, { minItems: 1, uniqueItems: true })),
    startedAt: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 64,
        description: 'ISO 8601: when it started, if known (default: now).',
      }),
    ),
    reason: Type.Optional(Reason),
  },
  strict,
);

export const TransitionBody = Type.Object(
  {
    commander: Type.Optional(Person),
    note: Type.Optional(Text),
    reason: Type.Optional(Reason),
  },
  strict,
);

export const NoteBody = Type.Object({ text: Text, reason: Type.Optional(Reason) }, strict);

export const UpdateBody = Type.Object(
  {
    status: UpdateStatusSchema,
    message: Text,
    title: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 200,
        description: 'Public title on /status (default: the incident title).',
      }),
    ),
    reason: Type.Optional(Reason),
  },
  strict,
);

export const TimelineEntryView = Type.Object({
  seq: Type.Integer(),
  at: Iso,
  kind: Type.String(),
  actor: Type.String(),
  text: Type.String(),
  details: Details,
});

export const SummaryQuery = Type.Object(
  {
    quarter: Type.Optional(
      Type.String({ pattern: '^[0-9]{4}Q[1-4]$', description: 'e.g. 2026Q4; default: now.' }),
    ),
  },
  strict,
);

const Stats = Type.Object({
  count: Type.Integer(),
  medianMs: Type.Union([Type.Number(), Type.Null()]),
  p90Ms: Type.Union([Type.Number(), Type.Null()]),
});

export const SummaryView = Type.Object({
  quarter: Type.String(),
  incidents: Type.Integer(),
  open: Type.Integer(),
  byType: Type.Record(Type.String(), Type.Integer()),
  bySeverity: Type.Record(Type.String(), Type.Integer()),
  ttd: Stats,
  tta: Stats,
  ttm: Stats,
  ttr: Stats,
});

export const PostmortemQuery = Type.Object(
  { format: Type.Optional(literals(['markdown', 'json'], 'Default: markdown (text/markdown).')) },
  strict,
);

export const MessagesQuery = Type.Object(
  { audience: Type.Optional(literals(['internal', 'customer', 'regulator'], 'Default: internal.')) },
  strict,
);

export const MessageView = Type.Object({
  audience: Type.String(),
  subject: Type.String(),
  body: Type.String(),
});

export const RunbookMetaView = Type.Object({
  slug: Type.String(),
  title: Type.String(),
  incidentTypes: Type.Array(Type.String()),
  summary: Type.String(),
  sections: Type.Array(Type.String()),
  path: Type.String(),
});

export const RunbookView = Type.Object({ ...RunbookMetaView.properties, markdown: Type.String() });
