/**
 * The public status page: `GET /status` (HTML) and `GET /status.json`. No API key (`public`),
 * read-only, and `cache-control: max-age=15` so a crowd refreshing it during an outage costs one
 * query per 15 s behind any cache. Posting an update is an operator API call
 * (`POST /api/v1/incidents/:id/updates`).
 */
import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import type { RouteContext } from '../http/context.js';
import { statusHtml } from './html.js';
import { statusPage } from './model.js';

const State = Type.Union([Type.Literal('operational'), Type.Literal('degraded'), Type.Literal('outage')]);

const StatusJson = Type.Object({
  generatedAt: Type.String(),
  overall: State,
  components: Type.Array(
    Type.Object({ id: Type.String(), name: Type.String(), state: State, history: Type.Array(State) }),
  ),
  activeIncidents: Type.Array(
    Type.Object({
      id: Type.String(),
      title: Type.String(),
      severity: Type.String(),
      state: Type.String(),
      components: Type.Array(Type.String()),
      startedAt: Type.String(),
      resolvedAt: Type.Union([Type.String(), Type.Null()]),
      updates: Type.Array(Type.Object({ at: Type.String(), status: Type.String(), message: Type.String() })),
    }),
  ),
  history: Type.Array(
    Type.Object({
      date: Type.String(),
      state: State,
      incidents: Type.Array(Type.Object({ id: Type.String(), title: Type.String() })),
    }),
  ),
});

export function statusRoutes(app: FastifyInstance, ctx: RouteContext): void {
  app.get(
    '/status.json',
    {
      config: { access: 'public' },
      schema: {
        tags: ['status'],
        summary: 'Public status: components, active incidents with their updates, 90 days of history.',
        security: [],
        response: { 200: StatusJson },
      },
    },
    async (_request, reply) => {
      reply.header('cache-control', 'public, max-age=15');
      return statusPage(ctx.storage.incidents, ctx.clock.now());
    },
  );
  app.get(
    '/status',
    {
      config: { access: 'public' },
      schema: { tags: ['status'], summary: 'The status page (HTML).', security: [] },
    },
    async (_request, reply) => {
      const page = await statusPage(ctx.storage.incidents, ctx.clock.now());
      return reply
        .header('cache-control', 'public, max-age=15')
        .header('content-security-policy', "default-src 'none'; style-src 'unsafe-inline'")
        .type('text/html; charset=utf-8')
        .send(statusHtml(page));
    },
  );
}
