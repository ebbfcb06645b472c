import { type Static, Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { iso, isoOrNull, type RouteContext } from '../http/context.js';
import { errorResponses } from '../http/schemas.js';
import type { AlertEngine } from './engine.js';

const Labels = Type.Record(Type.String(), Type.String());
const Severity = Type.Union([Type.Literal('critical'), Type.Literal('warning'), Type.Literal('info')]);

const AlertEventView = Type.Object({
  ruleId: Type.String(),
  name: Type.String(),
  state: Type.Union([Type.Literal('firing'), Type.Literal('resolved')]),
  severity: Severity,
  incidentType: Type.String(),
  runbook: Type.String({ description: 'runbooks/<slug>.md' }),
  labels: Labels,
  value: Type.Number(),
  threshold: Type.Number(),
  startedAt: Type.String({ description: 'First abnormal sample of the triggering series.' }),
  at: Type.String(),
  summary: Type.String(),
});

const ActiveAlertView = Type.Object({
  ruleId: Type.String(),
  name: Type.String(),
  state: Type.Union([Type.Literal('pending'), Type.Literal('firing')]),
  severity: Severity,
  incidentType: Type.String(),
  runbook: Type.String(),
  labels: Labels,
  value: Type.Number(),
  threshold: Type.Number(),
  startedAt: Type.String(),
  firedAt: Type.Union([Type.String(), Type.Null()]),
  summary: Type.String(),
});

const AlertsQuery = Type.Object(
  {
    limit: Type.Optional(
      Type.Integer({ minimum: 1, maximum: 500, description: 'Recent events (default 100).' }),
    ),
  },
  { additionalProperties: false },
);

const RuleView = Type.Object({
  id: Type.String(),
  name: Type.String(),
  description: Type.String(),
  kind: Type.Union([Type.Literal('metric'), Type.Literal('event')], {
    description: '`event` rules are raised by the feature that observes them (no PromQL).',
  }),
  enabled: Type.Boolean(),
  severity: Severity,
  incidentType: Type.String(),
  runbook: Type.String(),
  threshold: Type.Number(),
  windowSec: Type.Integer(),
  forSec: Type.Integer(),
  clearSec: Type.Integer(),
  minVolume: Type.Number(),
  metrics: Type.Array(Type.String()),
  promql: Type.Union([Type.String(), Type.Null()]),
});

function finite(n: number): number {
  return Number.isFinite(n) ? n : 0;
}

/** `GET /api/v1/alerts` and `GET /api/v1/alerts/rules`. */
export function alertRoutes(app: FastifyInstance, _ctx: RouteContext, engine: AlertEngine): void {
  app.get<{ Querystring: Static<typeof AlertsQuery> }>(
    '/v1/alerts',
    {
      config: { access: 'viewer' },
      schema: {
        tags: ['alerts'],
        summary: 'Active alerts (pending and firing) and the recent firing/resolved events, newest first.',
        querystring: AlertsQuery,
        response: {
          200: Type.Object({ active: Type.Array(ActiveAlertView), recent: Type.Array(AlertEventView) }),
          ...errorResponses,
        },
      },
    },
    async (request) => ({
      active: engine.active().map((a) => {
        const rule = engine.rules.get(a.ruleId)!;
        return {
          ruleId: a.ruleId,
          name: rule.name,
          state: a.state,
          severity: rule.params.severity,
          incidentType: rule.incidentType,
          runbook: rule.runbook,
          labels: { ...a.labels },
          value: finite(a.value),
          threshold: a.threshold,
          startedAt: iso(a.startedAt),
          firedAt: isoOrNull(a.firedAt),
          summary: a.summary,
        };
      }),
      recent: engine.recent(request.query.limit ?? 100).map((e) => ({
        ...e,
        value: finite(e.value),
        startedAt: iso(e.startedAt),
        at: iso(e.at),
      })),
    }),
  );

  app.get(
    '/v1/alerts/rules',
    {
      config: { access: 'viewer' },
      schema: {
        tags: ['alerts'],
        summary: 'The built-in rules with the thresholds in force (defaults plus the `alerts.rules` config).',
        response: { 200: Type.Object({ rules: Type.Array(RuleView) }), ...errorResponses },
      },
    },
    async () => ({
      rules: [...engine.rules.values()].map((r) => ({
        id: r.id,
        name: r.name,
        description: r.description,
        kind: r.metric ? ('metric' as const) : ('event' as const),
        ...r.params,
        incidentType: r.incidentType,
        runbook: r.runbook,
        metrics: [...(r.metric?.metrics ?? [])],
        promql: r.metric ? r.metric.promql(r.params) : null,
      })),
    }),
  );
}
