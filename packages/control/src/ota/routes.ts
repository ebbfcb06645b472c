/**
 * HTTP routes of OTA campaigns and the OTA-halt kill switch. Waves are numbered from 1 in the
 * API (`currentWave: 2` = the second wave); storage counts from 0.
 */
import { type Static, type TSchema, Type } from '@sinclair/typebox';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { ApiError } from '../errors.js';
import { iso, isoOrNull, type RouteContext, reasonOf } from '../http/context.js';
import { errorResponses, Limit, Reason } from '../http/schemas.js';
import { FIRMWARE_PATTERN, SelectorSchema } from '../selector.js';
import {
  type CampaignActor,
  type CampaignEngine,
  DEFAULT_GATE,
  type HaltOutcome,
  type WaveSummary,
} from './engine.js';
import {
  type Artifact,
  type CampaignRecord,
  type CampaignState,
  campaignStates,
  type DeviceJobRecord,
  type Gate,
  type JobState,
  jobStates,
  type WaveSpec,
} from './types.js';

const strict = { additionalProperties: false } as const;
const Iso = Type.String({ description: 'ISO 8601 timestamp (UTC).' });
const NullableIso = Type.Union([Iso, Type.Null()]);
const NullableString = Type.Union([Type.String(), Type.Null()]);
const MAX_MS = 7 * 24 * 3600_000;

const literalUnion = <T extends readonly string[]>(values: T) =>
  Type.Union(values.map((v) => Type.Literal(v)));

const ArtifactSchema = Type.Object(
  {
    url: Type.String({ pattern: '^https?://', maxLength: 2048, description: 'http(s) URL of the artifact.' }),
    version: Type.String({ pattern: FIRMWARE_PATTERN, description: 'Firmware version it installs.' }),
    sha256: Type.String({
      pattern: '^[0-9a-fA-F]{64}$',
      description: 'SHA-256 of the artifact, 64 hex digits.',
    }),
    size: Type.Optional(Type.Integer({ minimum: 0, description: 'Bytes; devices check it exactly.' })),
  },
  strict,
);

const GateInput = Type.Object(
  {
    maxFailureRatio: Type.Optional(
      Type.Number({
        minimum: 0,
        maximum: 1,
        description: `(failed + rolled-back + timed-out) / wave devices above this halts. Default ${DEFAULT_GATE.maxFailureRatio}.`,
      }),
    ),
    maxOfflineRatio: Type.Optional(
      Type.Number({
        minimum: 0,
        maximum: 1,
        description: `Devices that updated and are offline at the end of the soak / wave devices above this halts. Default ${DEFAULT_GATE.maxOfflineRatio}.`,
      }),
    ),
    reportTimeoutMs: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: MAX_MS,
        description: `A notified device silent this long counts as failed. Default ${DEFAULT_GATE.reportTimeoutMs}.`,
      }),
    ),
  },
  strict,
);

const WaveInput = Type.Object(
  {
    percent: Type.Number({
      exclusiveMinimum: 0,
      maximum: 100,
      description: 'Cumulative share of the targets.',
    }),
    minDevices: Type.Optional(Type.Integer({ minimum: 0, description: 'Cumulative minimum device count.' })),
    soakMs: Type.Optional(
      Type.Integer({ minimum: 0, maximum: MAX_MS, description: 'Healthy time after the wave finished.' }),
    ),
    gate: Type.Optional(GateInput),
  },
  strict,
);

const Waves = Type.Array(WaveInput, { minItems: 1, maxItems: 20 });

const CreateCampaignBody = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 200 }),
    artifact: ArtifactSchema,
    selector: SelectorSchema,
    waves: Waves,
    gate: Type.Optional(GateInput),
    reason: Type.Optional(Reason),
  },
  strict,
);

const ReasonBody = Type.Object({ reason: Type.Optional(Reason) }, strict);

const RollbackBody = Type.Object(
  {
    reason: Type.Optional(Reason),
    artifacts: Type.Optional(
      Type.Array(ArtifactSchema, {
        minItems: 1,
        maxItems: 20,
        description: 'Artifacts of the previous versions; default: the newest campaign that shipped each.',
      }),
    ),
    waves: Type.Optional(Waves),
    gate: Type.Optional(GateInput),
    start: Type.Optional(
      Type.Boolean({ description: 'Start the rollback campaigns at once (default true).' }),
    ),
  },
  strict,
);

const OtaHaltBody = Type.Object(
  {
    campaignId: Type.Optional(
      Type.String({ minLength: 1, maxLength: 64, description: 'Default: every running campaign.' }),
    ),
    reason: Reason,
  },
  strict,
);

const CampaignIdParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 64 }) }, strict);

const GateView = Type.Object({
  maxFailureRatio: Type.Number(),
  maxOfflineRatio: Type.Number(),
  reportTimeoutMs: Type.Integer(),
});

const CampaignView = Type.Object({
  id: Type.String(),
  name: Type.String(),
  state: literalUnion(campaignStates),
  artifact: Type.Object({
    url: Type.String(),
    version: Type.String(),
    sha256: Type.String(),
    size: Type.Union([Type.Integer(), Type.Null()]),
  }),
  selector: Type.Object({}, { additionalProperties: true }),
  waves: Type.Array(
    Type.Object({
      percent: Type.Number(),
      minDevices: Type.Integer(),
      soakMs: Type.Integer(),
      gate: Type.Object({}, { additionalProperties: true }),
    }),
  ),
  gate: GateView,
  currentWave: Type.Union([Type.Integer(), Type.Null()], { description: '1-based; null before start.' }),
  targetCount: Type.Integer(),
  haltReason: NullableString,
  haltedBy: Type.Union([Type.String(), Type.Null()], { description: '`system` when a gate halted it.' }),
  haltedAt: NullableIso,
  rollbackOf: NullableString,
  createdAt: Iso,
  createdBy: Type.String(),
  startedAt: NullableIso,
  completedAt: NullableIso,
  updatedAt: Iso,
});

const StateCounts = Type.Object(
  Object.fromEntries(jobStates.map((s) => [s, Type.Optional(Type.Integer())])) as Record<string, TSchema>,
);

const WaveView = Type.Object({
  wave: Type.Integer(),
  percent: Type.Number(),
  soakMs: Type.Integer(),
  gate: GateView,
  devices: Type.Integer(),
  states: StateCounts,
  failureRatio: Type.Number(),
});

const CampaignDetail = Type.Object({
  campaign: CampaignView,
  waves: Type.Array(WaveView),
  states: StateCounts,
});

const JobView = Type.Object({
  deviceId: Type.String(),
  wave: Type.Integer(),
  state: literalUnion(jobStates),
  jobId: NullableString,
  attempt: Type.Integer(),
  previousVersion: NullableString,
  notifiedAt: NullableIso,
  lastReportAt: NullableIso,
  progress: Type.Union([Type.Integer(), Type.Null()]),
  error: Type.Union([Type.Object({ code: Type.String(), message: NullableString }), Type.Null()]),
});

const HaltView = Type.Object({
  campaignId: Type.String(),
  name: Type.String(),
  previousState: Type.String(),
  state: Type.String(),
  cancelledNotifications: Type.Integer(),
  toldToStop: Type.Integer(),
  devicesReached: Type.Integer(),
});

const ListQuery = Type.Object(
  {
    state: Type.Optional(literalUnion(campaignStates)),
    limit: Type.Optional(Limit),
    cursor: Type.Optional(Type.String({ minLength: 1, maxLength: 400 })),
  },
  strict,
);

const JobsQuery = Type.Object(
  {
    wave: Type.Optional(Type.Integer({ minimum: 1, maximum: 20 })),
    state: Type.Optional(literalUnion(jobStates)),
    limit: Type.Optional(Limit),
    cursor: Type.Optional(Type.String({ minLength: 1, maxLength: 400 })),
  },
  strict,
);

function gateOf(input: Static<typeof GateInput> | undefined, base: Gate): Gate {
  return { ...base, ...(input ?? {}) };
}

function wavesOf(input: Static<typeof Waves>): WaveSpec[] {
  return input.map((w) => ({
    percent: w.percent,
    minDevices: w.minDevices ?? 0,
    soakMs: w.soakMs ?? 0,
    gate: { ...(w.gate ?? {}) },
  }));
}

function artifactOf(a: Static<typeof ArtifactSchema>): Artifact {
  return { url: a.url, version: a.version, sha256: a.sha256.toLowerCase(), size: a.size ?? null };
}

export function campaignView(c: CampaignRecord): Static<typeof CampaignView> {
  return {
    id: c.id,
    name: c.name,
    state: c.state,
    artifact: c.artifact,
    selector: c.selector as Record<string, unknown>,
    waves: c.waves,
    gate: c.gate,
    currentWave: c.currentWave === null ? null : c.currentWave + 1,
    targetCount: c.targetCount,
    haltReason: c.haltReason,
    haltedBy: c.haltedBy,
    haltedAt: isoOrNull(c.haltedAt),
    rollbackOf: c.rollbackOf,
    createdAt: iso(c.createdAt),
    createdBy: c.createdBy,
    startedAt: isoOrNull(c.startedAt),
    completedAt: isoOrNull(c.completedAt),
    updatedAt: iso(c.updatedAt),
  };
}

function jobView(j: DeviceJobRecord): Static<typeof JobView> {
  return {
    deviceId: j.deviceId,
    wave: j.wave + 1,
    state: j.state,
    jobId: j.jobId,
    attempt: j.attempt,
    previousVersion: j.previousVersion,
    notifiedAt: isoOrNull(j.notifiedAt),
    lastReportAt: isoOrNull(j.lastReportAt),
    progress: j.progress,
    error: j.errorCode === null ? null : { code: j.errorCode, message: j.errorMessage },
  };
}

function waveView(w: WaveSummary): Static<typeof WaveView> {
  const { index, ...rest } = w;
  return { wave: index + 1, ...rest };
}

/** Action routes take an optional body: a POST without one reads as `{}`. */
async function emptyBodyIsEmptyObject(request: FastifyRequest): Promise<void> {
  if (request.body === undefined || request.body === null) request.body = {};
}

function actorOf(request: FastifyRequest): CampaignActor {
  return { id: request.actor?.id ?? 'anonymous', name: request.actor?.name ?? 'anonymous' };
}

function totals(waves: readonly WaveSummary[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const w of waves) for (const [s, n] of Object.entries(w.states)) out[s] = (out[s] ?? 0) + (n ?? 0);
  return out;
}

export function campaignRoutes(app: FastifyInstance, ctx: RouteContext, engine: CampaignEngine): void {
  const { storage } = ctx;
  const tags = ['campaigns'];

  async function detail(id: string): Promise<Static<typeof CampaignDetail>> {
    const c = await storage.campaigns.get(id);
    if (!c) throw notFound(id);
    const waves = await engine.waveSummaries(c);
    return { campaign: campaignView(c), waves: waves.map(waveView), states: totals(waves) };
  }

  app.post<{ Body: Static<typeof CreateCampaignBody> }>(
    '/v1/campaigns',
    {
      config: { access: 'operator' },
      schema: {
        tags,
        summary: 'Create a campaign (draft). Start it with POST /v1/campaigns/:id/start.',
        description:
          'Waves are cumulative (`[{percent: 1}, {percent: 10}, {percent: 100}]`); a device’s wave follows from ' +
          'sha256(campaign id, device id), so raising a percentage only adds devices. Gate fields not set on a ' +
          'wave come from the campaign `gate`.',
        body: CreateCampaignBody,
        response: { 201: Type.Object({ campaign: CampaignView }), ...errorResponses },
      },
    },
    async (request, reply) => {
      const b = request.body;
      const c = await engine.create(
        {
          name: b.name,
          artifact: artifactOf(b.artifact),
          selector: b.selector,
          waves: wavesOf(b.waves),
          gate: gateOf(b.gate, DEFAULT_GATE),
        },
        actorOf(request),
        reasonOf(request),
      );
      return reply.code(201).send({ campaign: campaignView(c) });
    },
  );

  app.get<{ Querystring: Static<typeof ListQuery> }>(
    '/v1/campaigns',
    {
      config: { access: 'viewer' },
      schema: {
        tags,
        summary: 'Campaigns, newest first.',
        querystring: ListQuery,
        response: {
          200: Type.Object({ items: Type.Array(CampaignView), nextCursor: NullableString }),
          ...errorResponses,
        },
      },
    },
    async (request) => {
      const q = request.query;
      const page = await storage.campaigns.list(
        q.state === undefined ? {} : { state: q.state as CampaignState },
        q.limit ?? 100,
        q.cursor ?? null,
      );
      return { items: page.items.map(campaignView), nextCursor: page.nextCursor };
    },
  );

  app.get<{ Params: Static<typeof CampaignIdParams> }>(
    '/v1/campaigns/:id',
    {
      config: { access: 'viewer' },
      schema: {
        tags,
        summary: 'One campaign with device counts per wave and per job state.',
        params: CampaignIdParams,
        response: { 200: CampaignDetail, ...errorResponses },
      },
    },
    async (request) => detail(request.params.id),
  );

  app.get<{ Params: Static<typeof CampaignIdParams>; Querystring: Static<typeof JobsQuery> }>(
    '/v1/campaigns/:id/devices',
    {
      config: { access: 'viewer' },
      schema: {
        tags,
        summary: 'Per-device jobs, in wave order.',
        params: CampaignIdParams,
        querystring: JobsQuery,
        response: {
          200: Type.Object({ items: Type.Array(JobView), nextCursor: NullableString }),
          ...errorResponses,
        },
      },
    },
    async (request) => {
      const { id } = request.params;
      if (!(await storage.campaigns.get(id))) throw notFound(id);
      const q = request.query;
      const page = await storage.campaigns.jobs(
        id,
        {
          ...(q.wave === undefined ? {} : { wave: q.wave - 1 }),
          ...(q.state === undefined ? {} : { states: [q.state as JobState] }),
        },
        q.limit ?? 100,
        q.cursor ?? null,
      );
      return { items: page.items.map(jobView), nextCursor: page.nextCursor };
    },
  );

  app.post<{ Params: Static<typeof CampaignIdParams>; Body: Static<typeof ReasonBody> | undefined }>(
    '/v1/campaigns/:id/start',
    {
      preValidation: emptyBodyIsEmptyObject,
      config: { access: 'operator' },
      schema: {
        tags,
        summary: 'draft → running: assigns waves and notifies wave 1.',
        params: CampaignIdParams,
        body: Type.Optional(ReasonBody),
        response: { 200: CampaignDetail, ...errorResponses },
      },
    },
    async (request) => {
      await engine.startCampaign(request.params.id, actorOf(request), reasonOf(request));
      return detail(request.params.id);
    },
  );

  app.post<{ Params: Static<typeof CampaignIdParams>; Body: Static<typeof ReasonBody> | undefined }>(
    '/v1/campaigns/:id/halt',
    {
      preValidation: emptyBodyIsEmptyObject,
      config: { access: 'operator' },
      schema: {
        tags,
        summary: 'running → halted. When this answers, no further device is notified.',
        description:
          'Jobs not started yet are withdrawn (retained job cleared, cancel sent); devices downloading or ' +
          'installing are told to stop.',
        params: CampaignIdParams,
        body: Type.Optional(ReasonBody),
        response: { 200: Type.Object({ halt: HaltView, campaign: CampaignView }), ...errorResponses },
      },
    },
    async (request) => {
      const halt = await engine.halt(request.params.id, actorOf(request), reasonOf(request));
      const c = await storage.campaigns.get(request.params.id);
      return { halt, campaign: campaignView(c!) };
    },
  );

  app.post<{ Params: Static<typeof CampaignIdParams>; Body: Static<typeof ReasonBody> | undefined }>(
    '/v1/campaigns/:id/resume',
    {
      preValidation: emptyBodyIsEmptyObject,
      config: { access: 'operator' },
      schema: {
        tags,
        summary: 'halted → running, in the wave it stopped in; unfinished jobs are sent again.',
        description: 'Resuming after a gate halt overrides that wave’s gate (audited with the reason).',
        params: CampaignIdParams,
        body: Type.Optional(ReasonBody),
        response: {
          200: Type.Object({ campaign: CampaignView, notified: Type.Integer() }),
          ...errorResponses,
        },
      },
    },
    async (request) => {
      const r = await engine.resume(request.params.id, actorOf(request), reasonOf(request));
      const c = await storage.campaigns.get(request.params.id);
      return { campaign: campaignView(c!), notified: r.notified };
    },
  );

  app.post<{ Params: Static<typeof CampaignIdParams>; Body: Static<typeof RollbackBody> | undefined }>(
    '/v1/campaigns/:id/rollback',
    {
      preValidation: emptyBodyIsEmptyObject,
      config: { access: 'operator' },
      schema: {
        tags,
        summary: 'Campaign(s) back to the previous version for the devices that updated.',
        description:
          'The campaign must be halted or completed and ends as `rolled-back`. One rollback campaign per ' +
          'previous version, single wave at 100 % unless `waves` is given, started at once unless `start: false`.',
        params: CampaignIdParams,
        body: Type.Optional(RollbackBody),
        response: {
          201: Type.Object({
            campaigns: Type.Array(CampaignView),
            skippedUnknownVersion: Type.Array(Type.String()),
            warnings: Type.Array(Type.String()),
          }),
          ...errorResponses,
        },
      },
    },
    async (request, reply) => {
      const b = request.body ?? {};
      const existing = await storage.campaigns.get(request.params.id);
      if (!existing) throw notFound(request.params.id);
      const options: Parameters<CampaignEngine['rollback']>[3] = {};
      if (b.artifacts) options.artifacts = b.artifacts.map(artifactOf);
      if (b.waves) options.waves = wavesOf(b.waves);
      if (b.gate) options.gate = gateOf(b.gate, existing.gate);
      if (b.start !== undefined) options.start = b.start;
      const r = await engine.rollback(request.params.id, actorOf(request), reasonOf(request), options);
      return reply.code(201).send({
        campaigns: r.campaigns.map(campaignView),
        skippedUnknownVersion: r.skippedUnknownVersion,
        warnings: r.warnings,
      });
    },
  );

  app.post<{ Body: Static<typeof OtaHaltBody> }>(
    '/v1/killswitch/ota-halt',
    {
      config: { access: 'operator' },
      schema: {
        tags: ['killswitch'],
        summary: 'OTA halt: stop one campaign (`campaignId`) or every running one, in one call.',
        description:
          'When this answers, no further device is notified; jobs not started yet were withdrawn ' +
          '(`cancelledNotifications`), devices downloading or installing were told to stop (`toldToStop`); ' +
          '`devicesReached` counts the devices whose withdrawal the broker accepted.',
        body: OtaHaltBody,
        response: {
          200: Type.Object({
            action: Type.Literal('ota-halt'),
            campaigns: Type.Array(HaltView),
            cancelledNotifications: Type.Integer(),
            toldToStop: Type.Integer(),
            devicesReached: Type.Integer(),
          }),
          ...errorResponses,
        },
      },
    },
    async (request) => {
      const actor = actorOf(request);
      const { campaignId, reason } = request.body;
      let outcomes: HaltOutcome[];
      if (campaignId !== undefined) {
        if (!(await storage.campaigns.get(campaignId))) throw notFound(campaignId);
        outcomes = [await engine.halt(campaignId, actor, reason)];
      } else {
        outcomes = await engine.haltAll(actor, reason);
      }
      const sum = (k: 'cancelledNotifications' | 'toldToStop' | 'devicesReached') =>
        outcomes.reduce((n, o) => n + o[k], 0);
      const result = {
        action: 'ota-halt' as const,
        campaigns: outcomes,
        cancelledNotifications: sum('cancelledNotifications'),
        toldToStop: sum('toldToStop'),
        devicesReached: sum('devicesReached'),
      };
      await storage.audit.append({
        at: ctx.clock.now(),
        actorId: actor.id,
        actorName: actor.name,
        action: 'killswitch.ota-halt',
        targetType: 'campaign',
        targetId: campaignId ?? null,
        reason,
        details: {
          campaigns: outcomes.map((o) => o.campaignId),
          cancelledNotifications: result.cancelledNotifications,
          toldToStop: result.toldToStop,
          devicesReached: result.devicesReached,
        },
      });
      return result;
    },
  );
}

function notFound(id: string): ApiError {
  return new ApiError('BW_ERR_API_NOT_FOUND', `campaign ${id}`);
}
