/**
 * HTTP routes of OTA campaigns and the OTA-halt kill switch (schemas and views: schemas.ts). The
 * routes check what the request names and answer; the engine (engine.ts) does the work.
 */
import { type Static, Type } from '@sinclair/typebox';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { ApiError } from '../errors.js';
import { type RouteContext, reasonOf } from '../http/context.js';
import { errorResponses } from '../http/schemas.js';
import type { CampaignActor } from './campaign-audit.js';
import { DEFAULT_GATE } from './drafts.js';
import type { CampaignEngine } from './engine.js';
import type { HaltOutcome } from './halt.js';
import {
  artifactOf,
  CampaignDetail,
  CampaignIdParams,
  CampaignView,
  CreateCampaignBody,
  campaignDetailView,
  campaignView,
  gateOf,
  HaltView,
  JobsQuery,
  JobView,
  jobView,
  ListQuery,
  NullableString,
  OtaHaltBody,
  ReasonBody,
  RollbackBody,
  wavesOf,
} from './schemas.js';
import type { CampaignState, JobState } from './types.js';

/** Action routes take an optional body: a POST without one reads as `{}`. */
async function emptyBodyIsEmptyObject(request: FastifyRequest): Promise<void> {
  if (request.body === undefined || request.body === null) request.body = {};
}

function actorOf(request: FastifyRequest): CampaignActor {
  return { id: request.actor?.id ?? 'anonymous', name: request.actor?.name ?? 'anonymous' };
}

export function campaignRoutes(app: FastifyInstance, ctx: RouteContext, engine: CampaignEngine): void {
  const { storage } = ctx;
  const tags = ['campaigns'];

  async function detail(id: string): Promise<Static<typeof CampaignDetail>> {
    const c = await storage.campaigns.get(id);
    if (!c) throw notFound(id);
    return campaignDetailView(c, await engine.waveSummaries(c));
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
