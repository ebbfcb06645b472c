import { type Static, Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { ApiError } from '../errors.js';
import type { RouteContext } from '../http/context.js';
import { errorResponses } from '../http/schemas.js';
import type { MetricHistory } from './history.js';

const SeriesQuery = Type.Object(
  {
    name: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 200,
        description:
          'Metric name as on /metrics, e.g. `breakwater_connection_attempts_total`. Omit for the list.',
      }),
    ),
    since: Type.Optional(
      Type.String({ minLength: 1, description: 'ISO 8601 or epoch ms; default 5 minutes ago.' }),
    ),
    until: Type.Optional(Type.String({ minLength: 1, description: 'ISO 8601 or epoch ms; default now.' })),
    step: Type.Optional(
      Type.Integer({ minimum: 1, maximum: 3600, description: 'Seconds per point (average), default 1.' }),
    ),
  },
  { additionalProperties: false },
);

const Labels = Type.Record(Type.String(), Type.String());
const Kind = Type.Union([Type.Literal('gauge'), Type.Literal('rate')], {
  description: '`rate`: a counter, stored as per-second increase; `gauge`: as sampled.',
});

const SeriesList = Type.Object({
  names: Type.Array(Type.String()),
  series: Type.Array(
    Type.Object({
      name: Type.String(),
      kind: Kind,
      labels: Labels,
      latestAt: Type.Union([Type.String(), Type.Null()]),
    }),
  ),
});

const SeriesData = Type.Object({
  name: Type.String(),
  kind: Kind,
  since: Type.String(),
  until: Type.String(),
  step: Type.Integer(),
  series: Type.Array(
    Type.Object({
      labels: Labels,
      points: Type.Array(Type.Array(Type.Number()), { description: '[epoch ms, value], oldest first' }),
    }),
  ),
});

function parseInstant(value: string | undefined, field: string, fallback: number): number {
  if (value === undefined) return fallback;
  const ms = /^\d+$/.test(value) ? Number(value) : Date.parse(value);
  if (!Number.isFinite(ms)) {
    throw new ApiError('BW_ERR_API_VALIDATION', `query.${field} must be an ISO 8601 timestamp or epoch ms`, {
      field,
    });
  }
  return ms;
}

/** Averages samples into `step`-second buckets aligned to the epoch. */
export function downsample(points: Array<[number, number]>, stepSec: number): Array<[number, number]> {
  if (stepSec <= 1) return points;
  const stepMs = stepSec * 1000;
  const out: Array<[number, number]> = [];
  let bucket = Number.NaN;
  let sum = 0;
  let n = 0;
  for (const [t, v] of points) {
    const b = Math.floor(t / stepMs) * stepMs;
    if (b !== bucket) {
      if (n > 0) out.push([bucket, sum / n]);
      bucket = b;
      sum = 0;
      n = 0;
    }
    sum += v;
    n++;
  }
  if (n > 0) out.push([bucket, sum / n]);
  return out;
}

/** `GET /api/v1/metrics/series`: the in-process metric history (the last hour, per second). */
export function metricSeriesRoutes(app: FastifyInstance, ctx: RouteContext, history: MetricHistory): void {
  app.get<{ Querystring: Static<typeof SeriesQuery> }>(
    '/v1/metrics/series',
    {
      config: { access: 'viewer' },
      schema: {
        tags: ['alerts'],
        summary:
          'Per-second history of the key metric series (counters as rates/s). Without `name`: the series held.',
        querystring: SeriesQuery,
        response: { 200: Type.Union([SeriesData, SeriesList]), ...errorResponses },
      },
    },
    async (request) => {
      const q = request.query;
      if (q.name === undefined) {
        const all = history.all();
        return {
          names: history.names(),
          series: all.map((s) => {
            const latest = s.ring.latestAt;
            return {
              name: s.name,
              kind: s.kind,
              labels: { ...s.labels },
              latestAt: latest === null ? null : new Date(latest).toISOString(),
            };
          }),
        };
      }
      const series = history.series(q.name);
      if (series.length === 0) {
        throw new ApiError(
          'BW_ERR_API_NOT_FOUND',
          `no series named ${q.name} (GET /api/v1/metrics/series lists them)`,
        );
      }
      const now = ctx.clock.now();
      const until = parseInstant(q.until, 'until', now);
      const since = parseInstant(q.since, 'since', until - 5 * 60_000);
      if (since > until) {
        throw new ApiError('BW_ERR_API_VALIDATION', 'query.since must not be after query.until', {
          field: 'since',
        });
      }
      const step = q.step ?? 1;
      return {
        name: q.name,
        kind: series[0]!.kind,
        since: new Date(since).toISOString(),
        until: new Date(until).toISOString(),
        step,
        series: series.map((s) => ({
          labels: { ...s.labels },
          points: downsample(s.ring.range(since, until), step),
        })),
      };
    },
  );
}
