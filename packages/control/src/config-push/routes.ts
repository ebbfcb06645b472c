/**
 * Config push routes (kill switch 2). Operators change, viewers read.
 *
 *   PUT  /v1/devices/:id/config      desired config of one device
 *   GET  /v1/devices/:id/config      desired + reported + drift status of one device
 *   POST /v1/config/push             desired config for a selector
 *   GET  /v1/config/drift            drift per device (paginated) + counts for the filters
 *   POST /v1/killswitch/config-push  the push, as the kill switch (reason required)
 */
import type { Static } from '@sinclair/typebox';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { ApiError } from '../errors.js';
import { audit, iso, isoOrNull, type RouteContext } from '../http/context.js';
import { DeviceIdParams, errorResponses } from '../http/schemas.js';
import { requireTargeted, type Selector } from '../selector.js';
import type { JsonObject } from './document.js';
import { ConfigPusher, type PushAuditDetails, type PushResult, type PushTarget } from './pusher.js';
import {
  DeviceConfigBody,
  DeviceConfigView,
  DriftQuery,
  DriftView,
  KillSwitchBody,
  PushBody,
  PushResultView,
} from './schemas.js';

// Room for a config over the limit to reach the handler, which answers 413 naming `config`.
const BODY_LIMIT = 1024 * 1024;

// One pusher per control plane (its lock orders pushes), however often the routes are registered.
const pushers = new WeakMap<RouteContext, ConfigPusher>();

export function configPusherFor(ctx: RouteContext): ConfigPusher {
  let pusher = pushers.get(ctx);
  if (!pusher) {
    pusher = new ConfigPusher({
      storage: ctx.storage,
      fleet: ctx.fleet,
      clock: ctx.clock,
      logger: ctx.logger,
    });
    pushers.set(ctx, pusher);
  }
  return pusher;
}

export function configPushRoutes(app: FastifyInstance, ctx: RouteContext): void {
  const pusher = configPusherFor(ctx);

  async function push(
    request: FastifyRequest,
    action: string,
    target: PushTarget,
    config: JsonObject,
    merge: boolean | undefined,
  ): Promise<Static<typeof PushResultView>> {
    const result: PushResult = await pusher.push(
      { target, config, merge: merge === true, actorId: request.actor?.id ?? 'anonymous' },
      (tx, details: PushAuditDetails) =>
        audit(tx, ctx, request, {
          action,
          targetType: 'device',
          targetId: details.deviceId ?? null,
          details: { ...details } as Record<string, unknown>,
        }),
    );
    return { action, ...result };
  }

  app.put<{ Params: Static<typeof DeviceIdParams>; Body: Static<typeof DeviceConfigBody> }>(
    '/v1/devices/:id/config',
    {
      bodyLimit: BODY_LIMIT,
      config: { access: 'operator' },
      schema: {
        tags: ['config'],
        summary: "Set one device's desired config (published retained on $fleet/{id}/config).",
        params: DeviceIdParams,
        body: DeviceConfigBody,
        response: { 200: PushResultView, ...errorResponses },
      },
    },
    (request) =>
      push(request, 'config.push', { deviceId: request.params.id }, request.body.config, request.body.merge),
  );

  app.get<{ Params: Static<typeof DeviceIdParams> }>(
    '/v1/devices/:id/config',
    {
      config: { access: 'viewer' },
      schema: {
        tags: ['config'],
        summary: 'Desired and reported config of one device, and whether they agree.',
        params: DeviceIdParams,
        response: { 200: DeviceConfigView, ...errorResponses },
      },
    },
    async (request) => {
      const r = await ctx.storage.configPushes.get(request.params.id);
      if (!r) throw new ApiError('BW_ERR_API_NOT_FOUND', `device ${request.params.id}`);
      return {
        deviceId: r.deviceId,
        status: r.status,
        inSync: r.status === 'in-sync',
        contentMatches: r.contentMatches,
        desired:
          r.desiredVersion === null || r.desired === null
            ? null
            : { version: r.desiredVersion, config: r.desired, pushedAt: iso(r.pushedAt ?? 0) },
        reported:
          r.reported === null
            ? null
            : { version: r.reportedVersion, config: r.reported, reportedAt: iso(r.reportedAt ?? 0) },
      };
    },
  );

  app.post<{ Body: Static<typeof PushBody> }>(
    '/v1/config/push',
    {
      bodyLimit: BODY_LIMIT,
      config: { access: 'operator' },
      schema: {
        tags: ['config'],
        summary: 'Push a desired config to every device a selector matches.',
        description:
          'Stores the config as desired for each matched device (one version for the whole push), audits ' +
          'it, and publishes it retained QoS 1 on `$fleet/{id}/config`: online devices apply it now, ' +
          'offline ones on their next connect. An empty selector needs `all: true`.',
        body: PushBody,
        response: { 200: PushResultView, ...errorResponses },
      },
    },
    (request) => {
      requireTargeted(request.body.selector);
      return push(
        request,
        'config.push',
        { selector: request.body.selector },
        request.body.config,
        request.body.merge,
      );
    },
  );

  app.post<{ Body: Static<typeof KillSwitchBody> }>(
    '/v1/killswitch/config-push',
    {
      bodyLimit: BODY_LIMIT,
      config: { access: 'operator' },
      schema: {
        tags: ['killswitch'],
        summary: 'Kill switch 2: push a config to a selector; answers how many devices it reached.',
        description:
          'The same as `POST /v1/config/push` with a required `reason`. `published` counts the retained ' +
          'publishes (every matched device gets the config on its next connect at the latest), `online` ' +
          'the devices connected now (they apply it at once).',
        body: KillSwitchBody,
        response: { 200: PushResultView, ...errorResponses },
      },
    },
    (request) => {
      requireTargeted(request.body.selector);
      return push(
        request,
        'config-push',
        { selector: request.body.selector },
        request.body.config,
        request.body.merge,
      );
    },
  );

  app.get<{ Querystring: Static<typeof DriftQuery> }>(
    '/v1/config/drift',
    {
      config: { access: 'viewer' },
      schema: {
        tags: ['config'],
        summary: 'Desired vs reported config version per device, with counts per status for the filters.',
        description:
          'Filters are a selector (`id`, `tag` repeatable; `cohort`, `firmware`, `connectionState`) plus ' +
          '`status`; `summary` counts every device the selector matches, `items` is one page (by id).',
        querystring: DriftQuery,
        response: { 200: DriftView, ...errorResponses },
      },
    },
    async (request) => {
      const q = request.query;
      const selector: Selector = {};
      if (q.id !== undefined && q.id.length > 0) selector.ids = q.id;
      if (q.tag !== undefined && q.tag.length > 0) selector.tags = q.tag;
      if (q.cohort !== undefined) selector.cohort = q.cohort;
      if (q.firmware !== undefined) selector.firmware = q.firmware;
      if (q.connectionState !== undefined) selector.connectionState = q.connectionState;
      const [summary, page] = await Promise.all([
        ctx.storage.configPushes.summary(selector),
        ctx.storage.configPushes.drift(selector, q.status ?? null, q.limit ?? 100, q.cursor ?? null),
      ]);
      return {
        summary: {
          matched: summary.matched,
          inSync: summary['in-sync'],
          pending: summary.pending,
          neverReported: summary['never-reported'],
          differs: summary.differs,
          noDesired: summary['no-desired'],
        },
        items: page.items.map((d) => ({
          deviceId: d.deviceId,
          connectionState: d.connectionState,
          desiredVersion: d.desiredVersion,
          reportedVersion: d.reportedVersion,
          inSync: d.status === 'in-sync',
          contentMatches: d.contentMatches,
          status: d.status,
          pushedAt: isoOrNull(d.pushedAt),
          reportedAt: isoOrNull(d.reportedAt),
        })),
        nextCursor: page.nextCursor,
      };
    },
  );
}
