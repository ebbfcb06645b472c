/**
 * The web console's server side (issue 14): its static files at `/console/`, the API-key →
 * session-token exchange, and the live stream. Everything else the console shows or does goes
 * through the ordinary API routes with the session token as the Bearer credential.
 */
import { Type } from '@sinclair/typebox';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { hashApiKey } from '../auth/api-keys.js';
import { ApiError } from '../errors.js';
import type { RouteContext } from '../http/context.js';
import { errorResponses } from '../http/schemas.js';
import type { ConsoleSessionTokens } from './session-tokens.js';
import type { StaticFile } from './static-files.js';
import type { ConsoleStreamHub } from './stream.js';

// The console loads its own script and stylesheet only and talks to its own origin only.
const CONSOLE_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-src 'self'; " +
  "base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const Role = Type.Union([Type.Literal('viewer'), Type.Literal('operator'), Type.Literal('admin')]);
const SessionView = Type.Object({
  token: Type.String({ description: 'Send as `Authorization: Bearer <token>`; valid until expiresAt.' }),
  expiresAt: Type.String(),
  key: Type.Object({ id: Type.String(), name: Type.String(), role: Role }),
});

export function consoleStaticRoutes(app: FastifyInstance, files: Map<string, StaticFile> | null): void {
  const send = (path: string) => async (request: FastifyRequest, reply: FastifyReply) => {
    if (files === null) {
      return reply
        .code(503)
        .type('text/plain; charset=utf-8')
        .send(
          'The web console is not built: run `npm run build -w @breakwater/console` (npm install does it).\n',
        );
    }
    const file = files.get(path);
    if (!file) return reply.code(404).type('text/plain; charset=utf-8').send('not found\n');
    const gz = /\bgzip\b/.test(String(request.headers['accept-encoding'] ?? ''));
    reply
      .type(file.contentType)
      .header('vary', 'accept-encoding')
      .header('x-content-type-options', 'nosniff')
      .header('content-security-policy', CONSOLE_CSP)
      .header('referrer-policy', 'no-referrer')
      // The bundle names are fixed (no content hash): revalidate rather than cache for long.
      .header('cache-control', 'no-cache');
    if (gz) reply.header('content-encoding', 'gzip');
    return reply.send(gz ? file.gzip : file.body);
  };
  const hidden = { config: { access: 'public' as const }, schema: { hide: true } };
  app.get('/console', hidden, async (_request, reply) => reply.redirect('/console/', 302));
  app.get('/console/', hidden, send('index.html'));
  app.get<{ Params: { file: string } }>('/console/assets/:file', hidden, async (request, reply) =>
    send(`assets/${request.params.file}`)(request, reply),
  );
}

export function consoleApiRoutes(
  app: FastifyInstance,
  ctx: RouteContext,
  sessions: ConsoleSessionTokens,
  hub: ConsoleStreamHub,
): void {
  app.post<{ Body: { apiKey: string } }>(
    '/v1/console/session',
    {
      config: { access: 'public' },
      schema: {
        tags: ['console'],
        summary:
          'Exchange an API key for a short-lived console session token (the console keeps only the token).',
        body: Type.Object(
          { apiKey: Type.String({ minLength: 1, maxLength: 200 }) },
          { additionalProperties: false },
        ),
        response: { 201: SessionView, ...errorResponses },
      },
    },
    async (request, reply) => {
      const key = await ctx.storage.apiKeys.findByHash(hashApiKey(request.body.apiKey.trim()));
      if (!key || key.revokedAt !== null) {
        throw new ApiError('BW_ERR_API_UNAUTHENTICATED', key ? 'the API key is revoked' : 'unknown API key', {
          field: 'apiKey',
        });
      }
      const now = ctx.clock.now();
      const session = sessions.issue(key.id, now);
      await ctx.storage.audit.append({
        at: now,
        actorId: key.id,
        actorName: key.name,
        action: 'console.login',
        targetType: 'apikey',
        targetId: key.id,
        reason: null,
        details: { expiresAt: new Date(session.expiresAt).toISOString() },
      });
      return reply.code(201).send({
        token: session.token,
        expiresAt: new Date(session.expiresAt).toISOString(),
        key: { id: key.id, name: key.name, role: key.role },
      });
    },
  );

  app.get(
    '/v1/console/stream',
    {
      config: { access: 'viewer' },
      schema: {
        tags: ['console'],
        summary:
          'Server-Sent Events: `snapshot` (last hour of the console series, thresholds, alerts, audit seq), then a `delta` per second.',
      },
    },
    async (_request, reply) => {
      reply.hijack();
      await hub.open(reply);
    },
  );
}
