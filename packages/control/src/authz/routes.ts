/**
 * Authorization rules over the API (issue 13): GET/PUT /api/v1/authz/rules (the live rules: the
 * broker's rules file, which PUT rewrites and which is in force at once) and POST
 * /api/v1/authz/check (which rule decides a publish or subscribe, and the verdict).
 */
import { type AuthzRule, AuthzRuleError, AuthzRuleSchema, compileRule, GuardError } from '@breakwater/broker';
import { type Static, Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { ApiError } from '../errors.js';
import type { FleetAuthz } from '../fleet-broker.js';
import { audit, type RouteContext } from '../http/context.js';
import { errorResponses, Reason } from '../http/schemas.js';

const MAX_RULES = 10_000;

const RuleView = Type.Object(
  { ...AuthzRuleSchema.properties, line: Type.Integer({ description: 'Line in the rules file.' }) },
  { additionalProperties: false },
);

const RulesView = Type.Object({
  file: Type.String({ description: 'The rules file on the broker (the API writes it).' }),
  rules: Type.Array(RuleView, { description: 'The live rules in force, first match wins.' }),
  configRules: Type.Array(AuthzRuleSchema, {
    description: 'guard.authz.rules from the config file, checked after these (read-only here).',
  }),
  error: Type.Union([
    Type.Null(),
    Type.Object({
      line: Type.Union([Type.Integer(), Type.Null()]),
      message: Type.String(),
      at: Type.Number(),
    }),
  ]),
});

export const PutRulesBody = Type.Object(
  {
    rules: Type.Array(AuthzRuleSchema, { maxItems: MAX_RULES }),
    reason: Type.Optional(Reason),
  },
  { additionalProperties: false },
);

export const CheckBody = Type.Object(
  {
    clientId: Type.String({ minLength: 1 }),
    username: Type.Optional(Type.String()),
    certCn: Type.Optional(Type.String()),
    listener: Type.Optional(Type.String({ minLength: 1 })),
    source: Type.Optional(Type.String({ minLength: 1 })),
    superuser: Type.Optional(Type.Boolean()),
    action: Type.Union([Type.Literal('publish'), Type.Literal('subscribe')]),
    topic: Type.String({ minLength: 1 }),
  },
  { additionalProperties: false },
);

const CheckView = Type.Object({
  allowed: Type.Boolean(),
  verdict: Type.Union([Type.Literal('allow'), Type.Literal('deny')]),
  listener: Type.String(),
  decidedBy: Type.Union([Type.Literal('rule'), Type.Literal('default'), Type.Literal('superuser')]),
  index: Type.Union([Type.Integer(), Type.Null()]),
  rule: Type.Union([Type.Null(), Type.Object({ text: Type.String(), origin: Type.String() })]),
});

function requireAuthz(ctx: RouteContext): FleetAuthz {
  const authz = ctx.fleet?.authz ?? null;
  if (authz === null) {
    throw new ApiError(
      'BW_ERR_API_CONFLICT',
      'the broker runs without a guard (no guard.listeners): there are no authorization rules',
    );
  }
  return authz;
}

/** What the schema cannot check (CIDR, filter syntax), reported like a schema error: by field. */
function validateRules(rules: readonly AuthzRule[]): void {
  rules.forEach((rule, i) => {
    try {
      compileRule(rule, `rules[${i}]`);
    } catch (err) {
      if (!(err instanceof AuthzRuleError)) throw err;
      const field = `rules[${i}].${err.field}`;
      throw new ApiError('BW_ERR_API_VALIDATION', `body.${field} ${err.detail}`, { field });
    }
  });
}

export function authzRoutes(app: FastifyInstance, ctx: RouteContext): void {
  app.get(
    '/v1/authz/rules',
    {
      config: { access: 'viewer' },
      schema: {
        tags: ['authz'],
        summary:
          'The live authorization rules (rules file), the config file rules after them, and any file error.',
        response: { 200: RulesView, ...errorResponses },
      },
    },
    async () => requireAuthz(ctx).authzRules(),
  );

  app.put<{ Body: Static<typeof PutRulesBody> }>(
    '/v1/authz/rules',
    {
      config: { access: 'admin' },
      schema: {
        tags: ['authz'],
        summary:
          'Replace the live authorization rules: written to the rules file, in force at once (cached decisions dropped). Audit logged.',
        body: PutRulesBody,
        response: { 200: RulesView, ...errorResponses },
      },
    },
    async (request) => {
      const authz = requireAuthz(ctx);
      const { rules } = request.body;
      validateRules(rules);
      const before = authz.authzRules().rules.length;
      const actor = request.actor?.name ?? 'anonymous';
      const view = authz.replaceAuthzRules(rules, `PUT /api/v1/authz/rules (${actor})`);
      await audit(ctx.storage, ctx, request, {
        action: 'authz.rules.replace',
        targetType: 'authz',
        targetId: 'rules',
        details: { before, after: view.rules.length, file: view.file },
      });
      ctx.logger?.warn({ audit: true, actor, rules: view.rules.length }, 'authorization rules replaced');
      return view;
    },
  );

  app.post<{ Body: Static<typeof CheckBody> }>(
    '/v1/authz/check',
    {
      config: { access: 'viewer' },
      schema: {
        tags: ['authz'],
        summary:
          'Which rule decides this publish or subscribe (index in the effective list, text), and the verdict.',
        body: CheckBody,
        response: { 200: CheckView, ...errorResponses },
      },
    },
    async (request) => {
      const authz = requireAuthz(ctx);
      let result: ReturnType<FleetAuthz['explainAuthz']>;
      try {
        result = authz.explainAuthz(request.body);
      } catch (err) {
        if (err instanceof GuardError)
          throw new ApiError('BW_ERR_API_VALIDATION', err.message.replace(/^[^:]*: /, ''), {
            field: 'listener',
          });
        throw err;
      }
      return { ...result, verdict: result.allowed ? 'allow' : 'deny' };
    },
  );
}
