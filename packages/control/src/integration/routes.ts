/**
 * Data-integration routes (issue 16), under /api: rules (`/v1/rules`), sinks (`/v1/sinks`, pause and
 * resume), the dead-letter queue (`/v1/dlq`, inspect, replay, purge) and telemetry validation
 * (`/v1/telemetry/validation`). Every change is audited (the audit entry is written after the
 * change: the integration buffer and the control database are separate stores).
 */
import { isUtf8 } from 'node:buffer';
import type { DeadLetter, DeadLetterSelection, Integration, SinkStatus } from '@breakwater/integration';
import { IntegrationRequestError } from '@breakwater/integration';
import type { Static } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { ApiError } from '../errors.js';
import { audit, type RouteContext } from '../http/context.js';
import { errorResponses } from '../http/schemas.js';
import {
  DeadLetterPage,
  DeadLetterView,
  DlqIdParams,
  DlqSelectionBody,
  type DlqSelectionBodyT,
  ListDlqQuery,
  PauseBody,
  PurgeResult,
  ReplayResult,
  ResumeBody,
  RuleBody,
  type RuleBodyT,
  RuleIdParams,
  RuleList,
  RuleView,
  SinkList,
  SinkNameParams,
  SinkView,
  ValidationQuery,
  ValidationView,
} from './schemas.js';
import type { ValidationAlerts } from './validation-alerts.js';

const NOT_ENABLED =
  'data integration is not enabled on this server: configure integration.sinks and integration.rules in the config file';

function iso(ms: number | null): string | null {
  return ms === null ? null : new Date(ms).toISOString();
}

function sinkView(s: SinkStatus) {
  return {
    ...s,
    paused: s.paused === null ? null : { reason: s.paused.reason, at: iso(s.paused.at)! },
    lastError: s.lastError === null ? null : { ...s.lastError, at: iso(s.lastError.at)! },
    lastDeliveryAt: iso(s.lastDeliveryAt),
    nextRetryAt: iso(s.nextRetryAt),
  };
}

function deadLetterView(d: DeadLetter) {
  const utf8 = isUtf8(d.payload);
  return {
    id: d.id,
    sink: d.sink,
    msgId: d.msgId,
    rule: d.rule,
    topic: d.topic,
    publisher: d.publisher,
    receivedAt: iso(d.receivedAt)!,
    failedAt: iso(d.failedAt)!,
    reason: d.reason,
    errorCode: d.errorCode,
    error: d.error,
    attempts: d.attempts,
    context: d.context,
    payloadBytes: d.payload.length,
    payload: d.payload.toString(utf8 ? 'utf8' : 'base64'),
    encoding: utf8 ? ('utf8' as const) : ('base64' as const),
  };
}

/** The engine's refusals as API errors (status from the catalog, field named). */
function call<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof IntegrationRequestError)
      throw new ApiError(
        err.code,
        err.message.replace(/^[^:]*: /, ''),
        err.field === undefined ? {} : { field: err.field },
      );
    throw err;
  }
}

function selectionOf(body: DlqSelectionBodyT): DeadLetterSelection {
  const sel: DeadLetterSelection = {};
  if (body.ids !== undefined) sel.ids = body.ids;
  if (body.sink !== undefined) sel.sink = body.sink;
  if (body.rule !== undefined) sel.rule = body.rule;
  if (body.dlqReason !== undefined) sel.reason = body.dlqReason;
  if (
    body.ids !== undefined &&
    (body.sink !== undefined || body.rule !== undefined || body.dlqReason !== undefined || body.all)
  ) {
    throw new ApiError('BW_ERR_API_VALIDATION', 'ids cannot be combined with sink, rule, dlqReason or all', {
      field: 'ids',
    });
  }
  if (Object.keys(sel).length === 0 && body.all !== true) {
    throw new ApiError(
      'BW_ERR_API_VALIDATION',
      'name the dead letters: ids, sink, rule, dlqReason, or all: true',
      {
        field: 'ids',
      },
    );
  }
  return sel;
}

export function integrationRoutes(
  app: FastifyInstance,
  ctx: RouteContext,
  integration: Integration | null,
  validation: ValidationAlerts | null,
): void {
  const { storage } = ctx;
  const engine = (): Integration => {
    if (integration === null) throw new ApiError('BW_ERR_API_NOT_FOUND', NOT_ENABLED);
    return integration;
  };
  const tags = ['integration'];

  app.get(
    '/v1/rules',
    {
      config: { access: 'viewer' },
      schema: {
        tags,
        summary: 'Data-integration rules (config file and API) with their counters.',
        response: { 200: RuleList, ...errorResponses },
      },
    },
    async () => ({ items: engine().rules() }),
  );

  app.get<{ Params: Static<typeof RuleIdParams> }>(
    '/v1/rules/:id',
    {
      config: { access: 'viewer' },
      schema: {
        tags,
        summary: 'One rule.',
        params: RuleIdParams,
        response: { 200: RuleView, ...errorResponses },
      },
    },
    async (request) => {
      const r = engine().rule(request.params.id);
      if (r === null) throw new ApiError('BW_ERR_API_NOT_FOUND', `rule ${request.params.id}`);
      return r;
    },
  );

  app.post<{ Body: RuleBodyT }>(
    '/v1/rules',
    {
      config: { access: 'operator' },
      schema: {
        tags,
        summary: 'Create a rule: topic filter (+ payload conditions) → sinks. Applied at once.',
        description:
          '409 when the id exists (a config-file rule cannot be changed here). 400 names the field (`sinks[1]` for an unknown sink).',
        body: RuleBody,
        response: { 201: RuleView, ...errorResponses },
      },
    },
    async (request, reply) => {
      const { reason: _reason, ...rule } = request.body;
      const view = call(() =>
        engine().putRule({ ...rule, enabled: rule.enabled !== false }, { replace: false }),
      );
      await audit(storage, ctx, request, {
        action: 'integration.rule.create',
        targetType: 'rule',
        targetId: view.id,
        details: { rule },
      });
      return reply.code(201).send(view);
    },
  );

  app.put<{ Params: Static<typeof RuleIdParams>; Body: RuleBodyT }>(
    '/v1/rules/:id',
    {
      config: { access: 'operator' },
      schema: {
        tags,
        summary: 'Replace an API rule (same id in the path and the body).',
        params: RuleIdParams,
        body: RuleBody,
        response: { 200: RuleView, ...errorResponses },
      },
    },
    async (request) => {
      const { reason: _reason, ...rule } = request.body;
      if (rule.id !== request.params.id)
        throw new ApiError(
          'BW_ERR_API_VALIDATION',
          `body id ${rule.id} differs from the path's ${request.params.id}`,
          { field: 'id' },
        );
      const view = call(() =>
        engine().putRule({ ...rule, enabled: rule.enabled !== false }, { replace: true }),
      );
      await audit(storage, ctx, request, {
        action: 'integration.rule.update',
        targetType: 'rule',
        targetId: view.id,
        details: { rule },
      });
      return view;
    },
  );

  app.delete<{ Params: Static<typeof RuleIdParams> }>(
    '/v1/rules/:id',
    {
      config: { access: 'operator' },
      schema: {
        tags,
        summary: 'Delete an API rule (reason: x-breakwater-reason header).',
        params: RuleIdParams,
        response: { 200: RuleView, ...errorResponses },
      },
    },
    async (request) => {
      const view = call(() => engine().deleteRule(request.params.id));
      await audit(storage, ctx, request, {
        action: 'integration.rule.delete',
        targetType: 'rule',
        targetId: view.id,
      });
      return view;
    },
  );

  app.get(
    '/v1/sinks',
    {
      config: { access: 'viewer' },
      schema: {
        tags,
        summary:
          'Sinks: state, buffered messages, age of the oldest, delivered, failures, dead-lettered, dropped.',
        response: { 200: SinkList, ...errorResponses },
      },
    },
    async () => ({ items: engine().sinks().map(sinkView) }),
  );

  app.get<{ Params: Static<typeof SinkNameParams> }>(
    '/v1/sinks/:name',
    {
      config: { access: 'viewer' },
      schema: {
        tags,
        summary: 'One sink.',
        params: SinkNameParams,
        response: { 200: SinkView, ...errorResponses },
      },
    },
    async (request) => sinkView(call(() => engine().sink(request.params.name))),
  );

  app.post<{ Params: Static<typeof SinkNameParams>; Body: Static<typeof PauseBody> }>(
    '/v1/sinks/:name/pause',
    {
      config: { access: 'operator' },
      schema: {
        tags,
        summary:
          'Pause delivery to a sink: messages keep being buffered (up to its limits), nothing is sent until resumed. Survives restarts.',
        params: SinkNameParams,
        body: PauseBody,
        response: { 200: SinkView, ...errorResponses },
      },
    },
    async (request) => {
      const s = call(() => engine().pauseSink(request.params.name, request.body.reason));
      await audit(storage, ctx, request, {
        action: 'integration.sink.pause',
        targetType: 'sink',
        targetId: s.name,
      });
      return sinkView(s);
    },
  );

  app.post<{ Params: Static<typeof SinkNameParams>; Body: Static<typeof ResumeBody> }>(
    '/v1/sinks/:name/resume',
    {
      config: { access: 'operator' },
      schema: {
        tags,
        summary:
          'Resume a paused sink (and retry a failing one now): the buffer drains at the sink’s maxPerSec.',
        params: SinkNameParams,
        body: ResumeBody,
        response: { 200: SinkView, ...errorResponses },
      },
    },
    async (request) => {
      const s = call(() => engine().resumeSink(request.params.name));
      await audit(storage, ctx, request, {
        action: 'integration.sink.resume',
        targetType: 'sink',
        targetId: s.name,
      });
      return sinkView(s);
    },
  );

  app.get<{ Querystring: Static<typeof ListDlqQuery> }>(
    '/v1/dlq',
    {
      config: { access: 'viewer' },
      schema: {
        tags,
        summary:
          'Dead letters, newest first: what the sink rejected (with its error) and sampled invalid telemetry.',
        querystring: ListDlqQuery,
        response: { 200: DeadLetterPage, ...errorResponses },
      },
    },
    async (request) => {
      const q = request.query;
      const limit = q.limit ?? 100;
      const items = engine().deadLetters({
        limit,
        ...(q.sink !== undefined ? { sink: q.sink } : {}),
        ...(q.rule !== undefined ? { rule: q.rule } : {}),
        ...(q.reason !== undefined ? { reason: q.reason } : {}),
        ...(q.cursor !== undefined ? { beforeId: Number(q.cursor) } : {}),
      });
      return {
        items: items.map(deadLetterView),
        nextCursor: items.length === limit ? String(items[items.length - 1]!.id) : null,
        total: engine().deadLetterCount,
      };
    },
  );

  app.get<{ Params: Static<typeof DlqIdParams> }>(
    '/v1/dlq/:id',
    {
      config: { access: 'viewer' },
      schema: {
        tags,
        summary: 'One dead letter with its payload.',
        params: DlqIdParams,
        response: { 200: DeadLetterView, ...errorResponses },
      },
    },
    async (request) => {
      const d = engine().deadLetter(request.params.id);
      if (d === null) throw new ApiError('BW_ERR_API_NOT_FOUND', `dead letter ${request.params.id}`);
      return deadLetterView(d);
    },
  );

  app.post<{ Body: DlqSelectionBodyT }>(
    '/v1/dlq/replay',
    {
      config: { access: 'operator' },
      schema: {
        tags,
        summary:
          'Replay dead letters: rejected ones go back to their sink (same message id), invalid ones through today’s validation and rules.',
        description:
          'Select by `ids`, or by `sink` / `rule` / `dlqReason`, or `all: true`; at most 10,000 per call.',
        body: DlqSelectionBody,
        response: { 200: ReplayResult, ...errorResponses },
      },
    },
    async (request) => {
      const sel = selectionOf(request.body);
      const out = engine().replay(sel);
      await audit(storage, ctx, request, {
        action: 'integration.dlq.replay',
        targetType: 'dlq',
        targetId: sel.sink ?? sel.rule ?? '*',
        details: { selection: sel, replayed: out.replayed, skipped: out.skipped.length },
      });
      return out;
    },
  );

  app.post<{ Body: DlqSelectionBodyT }>(
    '/v1/dlq/purge',
    {
      config: { access: 'operator' },
      schema: {
        tags,
        summary: 'Delete dead letters (same selection as replay).',
        body: DlqSelectionBody,
        response: { 200: PurgeResult, ...errorResponses },
      },
    },
    async (request) => {
      const sel = selectionOf(request.body);
      const deleted = engine().purge(sel);
      await audit(storage, ctx, request, {
        action: 'integration.dlq.purge',
        targetType: 'dlq',
        targetId: sel.sink ?? sel.rule ?? '*',
        details: { selection: sel, deleted },
      });
      return { deleted };
    },
  );

  app.get<{ Querystring: Static<typeof ValidationQuery> }>(
    '/v1/telemetry/validation',
    {
      config: { access: 'viewer' },
      schema: {
        tags,
        summary:
          'Telemetry validation failures: the devices with the most, with their cohort, and totals per cohort.',
        querystring: ValidationQuery,
        response: { 200: ValidationView, ...errorResponses },
      },
    },
    async (request) => {
      const summary = engine().validationSummary(request.query.limit ?? 100);
      const cohorts = validation
        ? await validation.cohortsOf(
            summary.devices.map((d) => d.device),
            ctx.clock.now(),
          )
        : new Map<string, string>();
      return {
        total: summary.total,
        devicesTracked: summary.devicesTracked,
        devices: summary.devices.map((d) => ({
          ...d,
          lastAt: iso(d.lastAt)!,
          cohort: cohorts.get(d.device) ?? null,
        })),
        cohorts: validation?.cohorts() ?? [],
      };
    },
  );
}
