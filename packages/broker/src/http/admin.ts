import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyError, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { Counter, type Registry } from 'prom-client';
import { BreakwaterError, ErrorCatalog, type ErrorCode } from '../errors.js';
import type { AdmissionGate } from '../guard/admission/gate.js';
import type { BypassState, Guard } from '../guard/guard.js';
import type { DrainStatus } from '../node-drain.js';
import type { AuditLog } from './audit-log.js';

/** Longest break-glass bypass: a forgotten bypass must still end the same day (DESIGN.md §3). */
export const MAX_BYPASS_TTL_MS = 24 * 3600 * 1000;

const UNIT_MS = { s: 1000, m: 60_000, h: 3_600_000 } as const;

/** `30m`, `90s`, `2h` → milliseconds; undefined when malformed, zero or above 24 h. */
export function parseBypassTtl(text: string): number | undefined {
  const m = /^([1-9][0-9]{0,6})(s|m|h)$/.exec(text.trim());
  if (!m) return undefined;
  const ms = Number(m[1]) * UNIT_MS[m[2] as keyof typeof UNIT_MS];
  return ms <= MAX_BYPASS_TTL_MS ? ms : undefined;
}

export interface BrokerAdminRoutesOptions {
  /** Bearer token (`<dataDir>/admin.token`). */
  token: string;
  /** The running guard; null when authentication is off (no `guard.listeners`). */
  guard: Guard | null;
  /** Names of the configured MQTT listeners. */
  listeners: readonly string[];
  audit: AuditLog;
  /** The broker registry: the change counter lands on the same /metrics. */
  registry: Registry;
  /** Connect admission, for the flapping-ban routes; absent: those routes answer 404. */
  admission?: AdmissionGate | null;
  /** Node drain (issue 15); absent: the drain routes answer 404. */
  node?: NodeControl | null;
  /**
   * Also accept the control plane's credentials (API keys, console session tokens; issue 14):
   * `breakwater up` passes `ControlPlane.verifyBearer`. Reads need `viewer`, changes `operator`;
   * the audit line then names the key, not the `actor` the body claims.
   */
  apiKeys?: AdminCredentialCheck | null;
}

export type AdminCredentialCheck = (
  credential: string,
  role: 'viewer' | 'operator',
) => Promise<{ ok: true; actor: { name: string } } | { ok: false; status: 401 | 403; message: string }>;

/** What `breakwater up` does for `POST /api/v1/node/drain`: readiness false, stop accepting, evict. */
export interface NodeControl {
  drain(request: { ratePerSec?: number; serverReference?: string }): DrainStatus;
  drainStatus(): DrainStatus;
}

interface ErrorBody {
  error: { code: ErrorCode; message: string; field?: string };
}

function errorBody(code: ErrorCode, message: string, field?: string): ErrorBody {
  return { error: { code, message, ...(field !== undefined ? { field } : {}) } };
}

const NameParams = {
  type: 'object',
  required: ['name'],
  properties: { name: { type: 'string', minLength: 1, maxLength: 64 } },
} as const;

const Actor = { type: 'string', minLength: 1, maxLength: 200 } as const;

const BypassBody = {
  type: 'object',
  required: ['ttl', 'reason'],
  additionalProperties: false,
  properties: {
    ttl: { type: 'string', pattern: '^[1-9][0-9]{0,6}(s|m|h)$', description: 'e.g. 30m; at most 24h' },
    reason: { type: 'string', minLength: 3, maxLength: 500 },
    actor: Actor,
  },
} as const;

const LiftBody = {
  type: 'object',
  required: ['scope', 'key'],
  additionalProperties: false,
  properties: {
    scope: { type: 'string', enum: ['client_id', 'address'] },
    key: { type: 'string', minLength: 1, maxLength: 65535 },
    actor: Actor,
  },
} as const;

const DrainBody = {
  type: 'object',
  additionalProperties: false,
  properties: {
    ratePerSec: { type: 'integer', minimum: 1, maximum: 1_000_000 },
    serverReference: { type: 'string', minLength: 1, maxLength: 1024 },
    actor: Actor,
  },
} as const;

const RestoreBody = {
  type: 'object',
  additionalProperties: false,
  properties: { actor: Actor },
} as const;

/**
 * The broker's admin API (issue 3, "Break-glass instead of turn auth off"), on the broker's HTTP
 * port next to /metrics:
 * - `POST /api/v1/listeners/:name/bypass-authn {ttl, reason, actor?}`: admit clients on the
 *   listener without their backends, each confined to its own topics, until the TTL ends it;
 * - `POST /api/v1/listeners/:name/restore-authn {actor?}`: end it now;
 * - `GET /api/v1/listeners/:name/authn`: the chain and any bypass in force (`GET /api/v1/listeners`:
 *   every listener);
 * - `GET /api/v1/admission/flapping-bans`: client ids and addresses banned for flapping, with the
 *   time left; `POST /api/v1/admission/flapping-bans/lift {scope, key, actor?}` lifts one (a device
 *   fixed in the field should not wait out its ban).
 *
 * Every route needs `Authorization: Bearer <admin token>` (401 otherwise, before any validation).
 * Errors are `{ error: { code, message, field? } }` like the control plane's. Each change is
 * written to the audit log first (no audit line → no change) and counted in
 * `breakwater_authn_bypass_changes_total`.
 *
 * Encapsulated (not fastify-plugin wrapped): the auth hook and error handler apply to these
 * routes only, never to /metrics or /healthz.
 */
export const brokerAdminRoutes: FastifyPluginAsync<BrokerAdminRoutesOptions> = async (app, options) => {
  const { guard, audit } = options;
  const known = new Set(options.listeners);
  // Compare digests: equal lengths for timingSafeEqual, and no early exit on the first bad byte.
  const expected = createHash('sha256').update(options.token).digest();
  const changes =
    (options.registry.getSingleMetric('breakwater_authn_bypass_changes_total') as
      | Counter<'listener' | 'action'>
      | undefined) ??
    new Counter({
      name: 'breakwater_authn_bypass_changes_total',
      help: 'Break-glass changes through the admin API, by listener and action (bypass-authn, restore-authn)',
      labelNames: ['listener', 'action'],
      registers: [options.registry],
    });

  // Requests authenticated by an API key: the key's name is the audit actor.
  const keyActors = new WeakMap<FastifyRequest, string>();
  const actorOf = (request: FastifyRequest, claimed: string | undefined) =>
    keyActors.get(request) ?? claimed ?? 'admin-token';

  app.addHook('onRequest', async (request: FastifyRequest, reply: FastifyReply) => {
    const header = request.headers.authorization ?? '';
    const m = /^Bearer\s+(\S+)$/i.exec(header);
    const given = m ? createHash('sha256').update(m[1]!).digest() : null;
    if (given !== null && timingSafeEqual(given, expected)) return;
    if (m && options.apiKeys) {
      const check = await options.apiKeys(m[1]!, request.method === 'GET' ? 'viewer' : 'operator');
      if (check.ok) {
        keyActors.set(request, `apikey:${check.actor.name}`);
        return;
      }
      const code = check.status === 403 ? 'BW_ERR_API_FORBIDDEN' : 'BW_ERR_API_UNAUTHENTICATED';
      if (check.status === 401) reply.header('www-authenticate', 'Bearer');
      return reply.code(check.status).send(errorBody(code, check.message));
    }
    return reply
      .code(401)
      .header('www-authenticate', 'Bearer')
      .send(errorBody('BW_ERR_API_UNAUTHENTICATED', 'missing or invalid admin token'));
  });

  app.setErrorHandler((err: FastifyError, _request, reply) => {
    if (err.validation) {
      const v = err.validation[0]!;
      const params = v.params as { missingProperty?: string; additionalProperty?: string };
      const field =
        params.missingProperty ??
        params.additionalProperty ??
        (v.instancePath.replace(/^\//, '').replaceAll('/', '.') || String(err.validationContext ?? 'body'));
      return reply
        .code(400)
        .send(
          errorBody(
            'BW_ERR_API_VALIDATION',
            `${err.validationContext ?? 'body'}.${field} ${v.message}`,
            field,
          ),
        );
    }
    if (err instanceof BreakwaterError) {
      return reply.code(err.httpStatus ?? 500).send(errorBody(err.code, err.message));
    }
    if (err.statusCode !== undefined && err.statusCode < 500) {
      // Fastify's own 4xx (bad JSON, wrong content type): same shape.
      return reply.code(err.statusCode).send(errorBody('BW_ERR_API_VALIDATION', err.message, 'body'));
    }
    app.log.error({ err }, 'admin API failure');
    return reply.code(500).send(errorBody('BW_ERR_API_INTERNAL', ErrorCatalog.BW_ERR_API_INTERNAL.message));
  });

  /** 404 for an unknown listener; 400 when it has no authentication to bypass. */
  const target = (name: string, reply: FastifyReply, needAuthn: boolean): Guard | null | undefined => {
    if (!known.has(name)) {
      reply.code(404).send(errorBody('BW_ERR_API_NOT_FOUND', `no listener named "${name}"`, 'name'));
      return undefined;
    }
    if (needAuthn && (guard === null || guard.engine(name) === null)) {
      reply
        .code(400)
        .send(
          errorBody(
            'BW_ERR_API_VALIDATION',
            `listener "${name}" has no authentication configured (guard.listeners): nothing to bypass`,
            'name',
          ),
        );
      return undefined;
    }
    return guard;
  };

  app.post<{ Params: { name: string }; Body: { ttl: string; reason: string; actor?: string } }>(
    '/api/v1/listeners/:name/bypass-authn',
    { schema: { params: NameParams, body: BypassBody } },
    async (request, reply) => {
      const { name } = request.params;
      const g = target(name, reply, true);
      if (!g) return reply;
      const ttlMs = parseBypassTtl(request.body.ttl);
      if (ttlMs === undefined) {
        return reply
          .code(400)
          .send(errorBody('BW_ERR_API_VALIDATION', 'body.ttl must be at most 24h (e.g. 30m, 2h)', 'ttl'));
      }
      const actor = actorOf(request, request.body.actor);
      const reason = request.body.reason;
      // Audit first: if the line cannot be written, the bypass does not happen.
      audit.append({
        at: new Date().toISOString(),
        actor,
        action: 'bypass-authn',
        listener: name,
        reason,
        until: new Date(Date.now() + ttlMs).toISOString(),
      });
      const state = g.bypassAuthn(name, { ttlMs, reason, actor });
      changes.inc({ listener: name, action: 'bypass-authn' });
      return { listener: name, bypass: bypassJson(state) };
    },
  );

  app.post<{ Params: { name: string }; Body: { actor?: string } | undefined }>(
    '/api/v1/listeners/:name/restore-authn',
    { schema: { params: NameParams, body: RestoreBody } },
    async (request, reply) => {
      const { name } = request.params;
      if (target(name, reply, false) === undefined && reply.sent) return reply;
      const actor = actorOf(request, request.body?.actor);
      const active = guard?.bypassStatus(name) ?? null;
      if (active !== null) {
        audit.append({ at: new Date().toISOString(), actor, action: 'restore-authn', listener: name });
        guard!.restoreAuthn(name, actor);
        changes.inc({ listener: name, action: 'restore-authn' });
      }
      return { listener: name, bypass: null, restored: active !== null };
    },
  );

  flappingRoutes(app, options.admission, audit, actorOf);
  drainRoutes(app, options.node ?? null, audit, actorOf);

  // Every listener with its authentication and bypass (the console's Guard page, issue 14).
  app.get('/api/v1/listeners', async () => ({
    listeners: options.listeners.map((name) => {
      const lc = guard ? (guard.config.listeners[name] ?? guard.config.listeners['*']) : undefined;
      const state = guard?.bypassStatus(name) ?? null;
      return {
        name,
        authn: guard === null ? null : (lc?.authn ?? []),
        bypass: state ? bypassJson(state) : null,
      };
    }),
  }));

  app.get<{ Params: { name: string } }>(
    '/api/v1/listeners/:name/authn',
    { schema: { params: NameParams } },
    async (request, reply) => {
      const { name } = request.params;
      if (target(name, reply, false) === undefined && reply.sent) return reply;
      const lc = guard ? (guard.config.listeners[name] ?? guard.config.listeners['*']) : undefined;
      const state = guard?.bypassStatus(name) ?? null;
      return {
        listener: name,
        // null: no guard on this broker, the listener admits anonymous clients.
        authn: guard === null ? null : (lc?.authn ?? []),
        bypass: state ? bypassJson(state) : null,
      };
    },
  );
};

type ActorOf = (request: FastifyRequest, claimed: string | undefined) => string;

function flappingRoutes(
  app: Parameters<FastifyPluginAsync>[0],
  admission: AdmissionGate | null | undefined,
  audit: AuditLog,
  actorOf: ActorOf,
): void {
  const none = (reply: FastifyReply) =>
    reply.code(404).send(errorBody('BW_ERR_API_NOT_FOUND', 'connect admission is off on this broker'));
  app.get('/api/v1/admission/flapping-bans', async (_request, reply) => {
    if (!admission) return none(reply);
    const now = Date.now();
    return {
      bans: admission.flappingBans().map((b) => ({
        scope: b.scope,
        key: b.key,
        remainingMs: b.remainingMs,
        until: new Date(now + b.remainingMs).toISOString(),
      })),
    };
  });
  app.post<{ Body: { scope: 'client_id' | 'address'; key: string; actor?: string } }>(
    '/api/v1/admission/flapping-bans/lift',
    { schema: { body: LiftBody } },
    async (request, reply) => {
      if (!admission) return none(reply);
      const { scope, key } = request.body;
      if (!admission.flappingBans().some((b) => b.scope === scope && b.key === key)) {
        return reply
          .code(404)
          .send(errorBody('BW_ERR_API_NOT_FOUND', `no flapping ban on ${scope} "${key}"`, 'key'));
      }
      audit.append({
        at: new Date().toISOString(),
        actor: actorOf(request, request.body.actor),
        action: 'lift-flapping-ban',
        scope,
        key,
      });
      admission.liftFlappingBan(scope, key);
      return { scope, key, lifted: true };
    },
  );
}

function drainRoutes(
  app: Parameters<FastifyPluginAsync>[0],
  node: NodeControl | null,
  audit: AuditLog,
  actorOf: ActorOf,
): void {
  const none = (reply: FastifyReply) =>
    reply.code(404).send(errorBody('BW_ERR_API_NOT_FOUND', 'node drain is not available on this broker'));
  app.get('/api/v1/node/drain', async (_request, reply) => (node ? node.drainStatus() : none(reply)));
  app.post<{ Body: { ratePerSec?: number; serverReference?: string; actor?: string } | undefined }>(
    '/api/v1/node/drain',
    { schema: { body: DrainBody } },
    async (request, reply) => {
      if (!node) return none(reply);
      const body = request.body ?? {};
      audit.append({
        at: new Date().toISOString(),
        actor: actorOf(request, body.actor),
        action: 'node-drain',
        ...(body.ratePerSec !== undefined ? { ratePerSec: body.ratePerSec } : {}),
      });
      const req: { ratePerSec?: number; serverReference?: string } = {};
      if (body.ratePerSec !== undefined) req.ratePerSec = body.ratePerSec;
      if (body.serverReference !== undefined) req.serverReference = body.serverReference;
      return reply.code(202).send(node.drain(req));
    },
  );
}

function bypassJson(s: BypassState): { until: string; reason: string; actor: string } {
  return { until: new Date(s.until).toISOString(), reason: s.reason, actor: s.actor };
}
