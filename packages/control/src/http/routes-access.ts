import { type Static, Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import type { AuditFilter, AuditRecord } from '../audit/model.js';
import { generateApiKey } from '../auth/api-keys.js';
import type { ApiKeyRecord } from '../auth/model.js';
import { ApiError } from '../errors.js';
import { audit, iso, isoOrNull, type RouteContext } from './context.js';
import {
  ApiKeyView,
  AuditQuery,
  AuditView,
  CreateApiKeyBody,
  errorResponses,
  IdParams,
  page,
} from './schemas.js';

function keyView(k: ApiKeyRecord): Static<typeof ApiKeyView> {
  return {
    id: k.id,
    name: k.name,
    role: k.role,
    createdAt: iso(k.createdAt),
    createdBy: k.createdBy,
    revokedAt: isoOrNull(k.revokedAt),
    lastUsedAt: isoOrNull(k.lastUsedAt),
  };
}

function auditView(e: AuditRecord): Static<typeof AuditView> {
  return {
    seq: e.seq,
    at: iso(e.at),
    actor: { id: e.actorId, name: e.actorName },
    action: e.action,
    target: { type: e.targetType, id: e.targetId },
    reason: e.reason,
    details: e.details,
  };
}

function parseTime(value: string | undefined, field: string): number | undefined {
  if (value === undefined) return undefined;
  const ms = Date.parse(value);
  if (Number.isNaN(ms)) {
    throw new ApiError('BW_ERR_API_VALIDATION', `query.${field} must be an ISO 8601 timestamp`, { field });
  }
  return ms;
}

export function accessRoutes(app: FastifyInstance, ctx: RouteContext): void {
  const { storage, clock } = ctx;

  app.post<{ Body: Static<typeof CreateApiKeyBody> }>(
    '/v1/keys',
    {
      config: { access: 'admin' },
      schema: {
        tags: ['access'],
        summary: 'Create an API key. The key itself is in this response only; only its hash is stored.',
        body: CreateApiKeyBody,
        response: { 201: Type.Object({ apiKey: ApiKeyView, key: Type.String() }), ...errorResponses },
      },
    },
    async (request, reply) => {
      const { id, key, keyHash } = generateApiKey();
      const record: ApiKeyRecord = {
        id,
        name: request.body.name,
        role: request.body.role,
        keyHash,
        createdAt: clock.now(),
        createdBy: request.actor?.id ?? null,
        revokedAt: null,
        lastUsedAt: null,
      };
      await storage.transaction(async (tx) => {
        await tx.apiKeys.insert(record);
        await audit(tx, ctx, request, {
          action: 'apikey.create',
          targetType: 'apikey',
          targetId: id,
          details: { name: record.name, role: record.role },
        });
      });
      return reply.code(201).send({ apiKey: keyView(record), key });
    },
  );

  app.get(
    '/v1/keys',
    {
      config: { access: 'admin' },
      schema: {
        tags: ['access'],
        summary: 'List API keys (never the keys themselves).',
        response: { 200: Type.Object({ items: Type.Array(ApiKeyView) }), ...errorResponses },
      },
    },
    async () => ({ items: (await storage.apiKeys.list()).map(keyView) }),
  );

  app.delete<{ Params: Static<typeof IdParams> }>(
    '/v1/keys/:id',
    {
      config: { access: 'admin' },
      schema: {
        tags: ['access'],
        summary:
          'Revoke an API key (effective on its next request). The last active admin key cannot be revoked.',
        params: IdParams,
        response: { 200: ApiKeyView, ...errorResponses },
      },
    },
    async (request) => {
      const { id } = request.params;
      const revoked = await storage.transaction(async (tx) => {
        const keys = await tx.apiKeys.list();
        const target = keys.find((k) => k.id === id && k.revokedAt === null);
        if (!target) throw new ApiError('BW_ERR_API_NOT_FOUND', `API key ${id}`);
        const activeAdmins = keys.filter((k) => k.role === 'admin' && k.revokedAt === null);
        if (target.role === 'admin' && activeAdmins.length === 1) {
          // Locking every admin out would need database surgery to undo.
          throw new ApiError(
            'BW_ERR_API_CONFLICT',
            `API key ${id} is the last active admin key; create another first`,
          );
        }
        await tx.apiKeys.revoke(id, clock.now());
        await audit(tx, ctx, request, { action: 'apikey.revoke', targetType: 'apikey', targetId: id });
        return tx.apiKeys.get(id);
      });
      return keyView(revoked!);
    },
  );

  app.get<{ Querystring: Static<typeof AuditQuery> }>(
    '/v1/audit',
    {
      config: { access: 'viewer' },
      schema: {
        tags: ['access'],
        summary: 'The audit log, newest first: who (API key), what (action + target), when, why.',
        querystring: AuditQuery,
        response: { 200: page(AuditView), ...errorResponses },
      },
    },
    async (request) => {
      const q = request.query;
      const filter: AuditFilter = {};
      if (q.actor !== undefined) filter.actorId = q.actor;
      if (q.action !== undefined) filter.action = q.action;
      if (q.targetType !== undefined) filter.targetType = q.targetType;
      if (q.targetId !== undefined) filter.targetId = q.targetId;
      const since = parseTime(q.since, 'since');
      const until = parseTime(q.until, 'until');
      if (since !== undefined) filter.since = since;
      if (until !== undefined) filter.until = until;
      const result = await storage.audit.list(filter, q.limit ?? 100, q.cursor ?? null);
      return { items: result.items.map(auditView), nextCursor: result.nextCursor };
    },
  );
}
