/**
 * Kill switch 1 routes, under /api: `POST|GET /v1/revocations`, `GET|DELETE /v1/revocations/:id`
 * and `POST /v1/killswitch/revoke` (the one-call form; same body, answers what it reached).
 */
import type { Static } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { ApiError } from '../errors.js';
import type { RouteContext } from '../http/context.js';
import { errorResponses, page } from '../http/schemas.js';
import { createRevocation, revertRevocation } from './revoke.js';
import {
  CreatedRevocation,
  KillswitchRevokeResult,
  ListRevocationsQuery,
  RevertedRevocation,
  RevocationDetail,
  RevocationIdParams,
  RevocationView,
  RevokeBody,
  type RevokeBodyT,
  revocationView,
} from './schemas.js';

const DESCRIPTION =
  'Live sessions are ended at once (MQTT 5: DISCONNECT 0x87 Not authorized) after their wills and the ' +
  'retained messages they published are purged; reconnects are refused with CONNACK 0x8A Banned (MQTT ' +
  '3.1.1: return code 5). Degrades with `warnings` instead of failing: without a broker it is only stored; ' +
  'with a broker without authentication live sessions are ended but reconnects cannot be refused.';

function inputOf(body: RevokeBodyT) {
  const { reason: _reason, ...input } = body;
  return input;
}

export function revocationRoutes(app: FastifyInstance, ctx: RouteContext): void {
  const { storage } = ctx;

  app.post<{ Body: RevokeBodyT }>(
    '/v1/revocations',
    {
      config: { access: 'operator' },
      schema: {
        tags: ['revocation'],
        summary: 'Revoke a device, the devices of a selector, a token id, or tokens issued before T.',
        description: DESCRIPTION,
        body: RevokeBody,
        response: { 201: CreatedRevocation, ...errorResponses },
      },
    },
    async (request, reply) => {
      const out = await createRevocation(ctx, request, inputOf(request.body), 'api');
      return reply.code(201).send({ ...out, revocation: revocationView(out.revocation) });
    },
  );

  app.post<{ Body: RevokeBodyT }>(
    '/v1/killswitch/revoke',
    {
      config: { access: 'operator' },
      schema: {
        tags: ['killswitch'],
        summary: 'Kill switch 1: revoke in one call and report how many devices it reached.',
        description: `Same body as POST /api/v1/revocations. ${DESCRIPTION}`,
        body: RevokeBody,
        response: { 200: KillswitchRevokeResult, ...errorResponses },
      },
    },
    async (request) => {
      const out = await createRevocation(ctx, request, inputOf(request.body), 'killswitch');
      return {
        action: 'revoke' as const,
        revocationId: out.revocation.id,
        kind: out.revocation.kind,
        matchedDevices: out.matchedDevices,
        disconnected: out.disconnected,
        purgedRetained: out.purgedRetained,
        purgedWills: out.purgedWills,
        warnings: out.warnings,
      };
    },
  );

  app.get<{ Querystring: Static<typeof ListRevocationsQuery> }>(
    '/v1/revocations',
    {
      config: { access: 'viewer' },
      schema: {
        tags: ['revocation'],
        summary: 'List revocations, newest first; filters are AND-combined.',
        querystring: ListRevocationsQuery,
        response: { 200: page(RevocationView), ...errorResponses },
      },
    },
    async (request) => {
      const { limit, cursor, ...filter } = request.query;
      const result = await storage.revocations.list(filter, limit ?? 100, cursor ?? null);
      return { items: result.items.map(revocationView), nextCursor: result.nextCursor };
    },
  );

  app.get<{ Params: Static<typeof RevocationIdParams> }>(
    '/v1/revocations/:id',
    {
      config: { access: 'viewer' },
      schema: {
        tags: ['revocation'],
        summary: 'One revocation with every device it names.',
        params: RevocationIdParams,
        response: { 200: RevocationDetail, ...errorResponses },
      },
    },
    async (request) => {
      const r = await storage.revocations.get(request.params.id);
      if (!r) throw new ApiError('BW_ERR_API_NOT_FOUND', `revocation ${request.params.id}`);
      return { revocation: revocationView(r), deviceIds: await storage.revocations.deviceIds(r.id) };
    },
  );

  app.delete<{ Params: Static<typeof RevocationIdParams> }>(
    '/v1/revocations/:id',
    {
      config: { access: 'operator' },
      schema: {
        tags: ['revocation'],
        summary: 'Un-revoke. Denylist entries another active revocation also covers stay in force.',
        description:
          '409 when it was already reverted. The revocation stays listed (active: false). Reason via the ' +
          'x-breakwater-reason header.',
        params: RevocationIdParams,
        response: { 200: RevertedRevocation, ...errorResponses },
      },
    },
    async (request) => {
      const out = await revertRevocation(ctx, request, request.params.id);
      return { ...out, revocation: revocationView(out.revocation) };
    },
  );
}
