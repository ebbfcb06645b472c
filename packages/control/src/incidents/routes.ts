/**
 * `/api/v1/incidents…` and `/api/v1/runbooks…`. Reads need `viewer`, changes `operator` (the
 * on-call engineer runs an incident without an admin). Every change is audited in the same
 * transaction (IncidentManager).
 */
import type { Static } from '@sinclair/typebox';
import { Type } from '@sinclair/typebox';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { ApiError } from '../errors.js';
import { iso, isoOrNull, type RouteContext, reasonOf } from '../http/context.js';
import { errorResponses, page } from '../http/schemas.js';
import { durations, quarterOf } from './lifecycle.js';
import type { IncidentActor, IncidentDetail, IncidentManager } from './manager.js';
import { type Audience, message } from './messages.js';
import { type IncidentAlertRecord, type IncidentRecord, type IncidentState, incidentRef } from './model.js';
import { postmortemMarkdown } from './postmortem.js';
import { type RunbookMeta, runbookPath } from './runbooks.js';
import {
  CreateIncidentBody,
  IncidentDetailView,
  IncidentParams,
  IncidentView,
  ListIncidentsQuery,
  MessagesQuery,
  MessageView,
  NoteBody,
  PostmortemQuery,
  RunbookMetaView,
  RunbookView,
  SlugParams,
  SummaryQuery,
  SummaryView,
  TimelineEntryView,
  TransitionBody,
  UpdateBody,
} from './schemas.js';
import type { TimelineItem } from './timeline.js';

export function incidentView(
  i: IncidentRecord,
  runbooks: readonly RunbookMeta[],
): Static<typeof IncidentView> {
  return {
    id: i.id,
    ref: incidentRef(i.id),
    type: i.type,
    severity: i.severity,
    title: i.title,
    state: i.state,
    commander: i.commander,
    runbook: {
      slug: i.runbook,
      title: runbooks.find((r) => r.slug === i.runbook)?.title ?? null,
      path: runbookPath(i.runbook),
    },
    components: i.components,
    source: i.source,
    startedAt: iso(i.startedAt),
    detectedAt: iso(i.detectedAt),
    acknowledgedAt: isoOrNull(i.acknowledgedAt),
    mitigatedAt: isoOrNull(i.mitigatedAt),
    resolvedAt: isoOrNull(i.resolvedAt),
    createdBy: i.createdBy,
    updatedAt: iso(i.updatedAt),
    durations: durations(i),
  };
}

function alertView(a: IncidentAlertRecord) {
  return {
    ruleId: a.ruleId,
    name: a.name,
    severity: a.severity,
    labels: a.labels,
    firing: a.firing,
    startedAt: iso(a.startedAt),
    firstFiredAt: iso(a.firstFiredAt),
    lastEventAt: iso(a.lastEventAt),
    value: a.value,
    threshold: a.threshold,
    summary: a.summary,
  };
}

function timelineView(e: TimelineItem) {
  return { at: iso(e.at), kind: e.kind, source: e.source, actor: e.actor, text: e.text, details: e.details };
}

export function detailView(d: IncidentDetail, runbooks: readonly RunbookMeta[]) {
  return {
    incident: incidentView(d.incident, runbooks),
    alerts: d.alerts.map(alertView),
    timeline: d.timeline.map(timelineView),
  };
}

function idOf(params: { id: string }): number {
  return Number(params.id.replace(/^INC-/, ''));
}

function actorOf(request: FastifyRequest): IncidentActor {
  return {
    id: request.actor?.id ?? 'anonymous',
    name: request.actor?.name ?? 'anonymous',
    reason: reasonOf(request),
  };
}

export function incidentRoutes(app: FastifyInstance, ctx: RouteContext, incidents: IncidentManager): void {
  const { storage, clock } = ctx;
  const runbooks = incidents.runbooks;
  const tags = ['incidents'];

  app.get<{ Querystring: Static<typeof ListIncidentsQuery> }>(
    '/v1/incidents',
    {
      config: { access: 'viewer' },
      schema: {
        tags,
        summary: 'Incidents, newest first.',
        querystring: ListIncidentsQuery,
        response: { 200: page(IncidentView), ...errorResponses },
      },
    },
    async (request) => {
      const { state, type, limit = 100, cursor } = request.query;
      const result = await storage.incidents.list(
        {
          ...(state !== undefined ? { state: state as IncidentState | 'open' } : {}),
          ...(type !== undefined ? { type: type as IncidentRecord['type'] } : {}),
        },
        limit,
        cursor ?? null,
      );
      const meta = runbooks.list();
      return { items: result.items.map((i) => incidentView(i, meta)), nextCursor: result.nextCursor };
    },
  );

  app.post<{ Body: Static<typeof CreateIncidentBody> }>(
    '/v1/incidents',
    {
      config: { access: 'operator' },
      schema: {
        tags,
        summary: 'Declare an incident by hand (alerts open theirs automatically).',
        body: CreateIncidentBody,
        response: { 201: IncidentView, ...errorResponses },
      },
    },
    async (request, reply) => {
      const body = request.body;
      let startedAt: number | undefined;
      if (body.startedAt !== undefined) {
        startedAt = Date.parse(body.startedAt);
        if (Number.isNaN(startedAt)) {
          throw new ApiError('BW_ERR_API_VALIDATION', 'startedAt must be an ISO 8601 timestamp', {
            field: 'startedAt',
          });
        }
      }
      const incident = await incidents.create(
        {
          type: body.type as IncidentRecord['type'],
          title: body.title,
          severity: body.severity as IncidentRecord['severity'],
          ...(body.commander !== undefined ? { commander: body.commander } : {}),
          ...(body.runbook !== undefined ? { runbook: body.runbook } : {}),
          ...(body.components !== undefined
            ? { components: body.components as IncidentRecord['components'] }
            : {}),
          ...(startedAt !== undefined ? { startedAt } : {}),
        },
        actorOf(request),
      );
      return reply.code(201).send(incidentView(incident, runbooks.list()));
    },
  );

  app.get<{ Querystring: Static<typeof SummaryQuery> }>(
    '/v1/incidents/summary',
    {
      config: { access: 'viewer' },
      schema: {
        tags,
        summary: 'TTD / TTA / TTM / TTR per quarter (median and p90) of the incidents that started in it.',
        querystring: SummaryQuery,
        response: { 200: SummaryView, ...errorResponses },
      },
    },
    async (request) => incidents.summary(request.query.quarter ?? quarterOf(clock.now())),
  );

  app.get<{ Params: Static<typeof IncidentParams> }>(
    '/v1/incidents/:id',
    {
      config: { access: 'viewer' },
      schema: {
        tags,
        summary:
          'One incident with its alerts and timeline (alerts, state changes, kill-switch actions, notes, updates).',
        params: IncidentParams,
        response: { 200: IncidentDetailView, ...errorResponses },
      },
    },
    async (request) => detailView(await incidents.detail(idOf(request.params)), runbooks.list()),
  );

  const transitions = [
    ['ack', 'acknowledged', 'Acknowledge: a human owns it. `commander` defaults to the caller.'],
    ['mitigate', 'mitigated', 'Mitigated: the impact has stopped (the cause may still be there).'],
    ['resolve', 'resolved', 'Resolved: the incident is over. Final.'],
  ] as const;
  for (const [verb, to, summary] of transitions) {
    app.post<{ Params: Static<typeof IncidentParams>; Body: Static<typeof TransitionBody> }>(
      `/v1/incidents/:id/${verb}`,
      {
        config: { access: 'operator' },
        schema: {
          tags,
          summary: `${summary} Skipped states get the same time; going back is 409 BW_ERR_INCIDENT_TRANSITION.`,
          params: IncidentParams,
          body: TransitionBody,
          response: { 200: IncidentView, ...errorResponses },
        },
      },
      async (request) => {
        const { commander, note } = request.body ?? {};
        const incident = await incidents.transition(idOf(request.params), to, actorOf(request), {
          ...(commander !== undefined ? { commander } : {}),
          ...(note !== undefined ? { note } : {}),
        });
        return incidentView(incident, runbooks.list());
      },
    );
  }

  app.post<{ Params: Static<typeof IncidentParams>; Body: Static<typeof NoteBody> }>(
    '/v1/incidents/:id/notes',
    {
      config: { access: 'operator' },
      schema: {
        tags,
        summary: 'An internal note on the timeline (not shown on /status).',
        params: IncidentParams,
        body: NoteBody,
        response: { 201: TimelineEntryView, ...errorResponses },
      },
    },
    async (request, reply) => {
      const entry = await incidents.note(idOf(request.params), request.body.text, actorOf(request));
      return reply.code(201).send({ ...entry, at: iso(entry.at) });
    },
  );

  app.post<{ Params: Static<typeof IncidentParams>; Body: Static<typeof UpdateBody> }>(
    '/v1/incidents/:id/updates',
    {
      config: { access: 'operator' },
      schema: {
        tags,
        summary: 'A customer-facing status update: published on the public /status page.',
        params: IncidentParams,
        body: UpdateBody,
        response: { 201: TimelineEntryView, ...errorResponses },
      },
    },
    async (request, reply) => {
      const { status, message: text, title } = request.body;
      const entry = await incidents.postUpdate(
        idOf(request.params),
        { status: status as 'investigating', message: text, ...(title !== undefined ? { title } : {}) },
        actorOf(request),
      );
      return reply.code(201).send({ ...entry, at: iso(entry.at) });
    },
  );

  app.get<{ Params: Static<typeof IncidentParams>; Querystring: Static<typeof PostmortemQuery> }>(
    '/v1/incidents/:id/postmortem',
    {
      config: { access: 'viewer' },
      schema: {
        tags,
        summary:
          'Postmortem draft (markdown) from the incident: timeline, detection, response; root cause to fill.',
        description: '`?format=json` wraps the markdown as `{ ref, markdown }` for JSON-only clients.',
        params: IncidentParams,
        querystring: PostmortemQuery,
        response: {
          200: {
            content: {
              'text/markdown': { schema: Type.String() },
              'application/json': { schema: Type.Object({ ref: Type.String(), markdown: Type.String() }) },
            },
          },
          ...errorResponses,
        },
      },
    },
    async (request, reply) => {
      const detail = await incidents.detail(idOf(request.params));
      const markdown = postmortemMarkdown(detail, clock.now());
      if (request.query.format === 'json') {
        return reply.type('application/json').send({ ref: incidentRef(detail.incident.id), markdown });
      }
      return reply.type('text/markdown; charset=utf-8').send(markdown);
    },
  );

  app.get<{ Params: Static<typeof IncidentParams>; Querystring: Static<typeof MessagesQuery> }>(
    '/v1/incidents/:id/messages',
    {
      config: { access: 'viewer' },
      schema: {
        tags,
        summary: 'A message for an audience (internal, customer, regulator), filled from the incident.',
        params: IncidentParams,
        querystring: MessagesQuery,
        response: { 200: MessageView, ...errorResponses },
      },
    },
    async (request) => {
      const detail = await incidents.detail(idOf(request.params));
      return message(detail, (request.query.audience ?? 'internal') as Audience, clock.now());
    },
  );

  app.get(
    '/v1/runbooks',
    {
      config: { access: 'viewer' },
      schema: {
        tags: ['runbooks'],
        summary: 'Runbooks (runbooks/*.md): one per incident type and per specific alert.',
        response: { 200: Type.Object({ items: Type.Array(RunbookMetaView) }), ...errorResponses },
      },
    },
    async () => ({ items: runbooks.list().map((r) => ({ ...r, path: runbookPath(r.slug) })) }),
  );

  app.get<{ Params: Static<typeof SlugParams> }>(
    '/v1/runbooks/:slug',
    {
      config: { access: 'viewer' },
      schema: {
        tags: ['runbooks'],
        summary: 'One runbook: metadata and markdown (Confirm, Contain, Communicate, Escalate, Debug).',
        params: SlugParams,
        response: { 200: RunbookView, ...errorResponses },
      },
    },
    async (request) => {
      const r = runbooks.get(request.params.slug);
      if (r === null) throw new ApiError('BW_ERR_API_NOT_FOUND', `runbook ${request.params.slug}`);
      return { ...r, path: runbookPath(r.slug) };
    },
  );
}
