/**
 * Game-day runs for the console (issue 14): `breakwater gameday run` writes each run's
 * report.json / report.html into a directory under its reports dir (default ./gameday-reports);
 * these routes list those directories and hand out a report. Read-only, from the files: the
 * control plane does not import the gameday package (dependencies point cli → gameday).
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { type Static, Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { ApiError } from '../errors.js';
import type { RouteContext } from '../http/context.js';
import { errorResponses, Limit } from '../http/schemas.js';

const RUN_PATTERN = '^[A-Za-z0-9][A-Za-z0-9._-]{0,199}(/[A-Za-z0-9][A-Za-z0-9._-]{0,199})?$';

const ListQuery = Type.Object(
  {
    limit: Type.Optional(Limit),
    cursor: Type.Optional(
      Type.String({ pattern: '^[0-9]{1,9}$', description: 'Offset from the previous page.' }),
    ),
  },
  { additionalProperties: false },
);
const RunQuery = Type.Object(
  {
    run: Type.String({ pattern: RUN_PATTERN, description: 'Run id from the list (`dir` or `matrix/cell`).' }),
  },
  { additionalProperties: false },
);

const RunView = Type.Object({
  run: Type.String(),
  scenario: Type.String(),
  title: Type.String(),
  cell: Type.Union([Type.String(), Type.Null()]),
  devices: Type.Union([Type.Integer(), Type.Null()]),
  passed: Type.Boolean(),
  startedAt: Type.Union([Type.String(), Type.Null()]),
  finishedAt: Type.Union([Type.String(), Type.Null()]),
  hasHtml: Type.Boolean(),
});
type RunViewT = Static<typeof RunView>;

interface ReportHead {
  scenario?: { name?: string; title?: string };
  params?: { devices?: number; cell?: string };
  passed?: boolean;
  startedAt?: string;
  finishedAt?: string;
}

async function readRun(root: string, run: string): Promise<RunViewT | null> {
  try {
    const head = JSON.parse(await readFile(join(root, run, 'report.json'), 'utf8')) as ReportHead;
    const hasHtml = await stat(join(root, run, 'report.html')).then(
      () => true,
      () => false,
    );
    return {
      run,
      scenario: head.scenario?.name ?? run,
      title: head.scenario?.title ?? '',
      cell: head.params?.cell ?? null,
      devices: typeof head.params?.devices === 'number' ? head.params.devices : null,
      passed: head.passed === true,
      startedAt: head.startedAt ?? null,
      finishedAt: head.finishedAt ?? null,
      hasHtml,
    };
  } catch {
    return null; // not a run directory (or a run still being written)
  }
}

/** Every run directory, a matrix's cells as `matrix/cell`, newest first. */
async function listRuns(root: string): Promise<RunViewT[]> {
  let names: string[];
  try {
    names = (await readdir(root, { withFileTypes: true })).filter((d) => d.isDirectory()).map((d) => d.name);
  } catch {
    return []; // no reports dir yet: no runs
  }
  const runs: RunViewT[] = [];
  for (const name of names) {
    const run = await readRun(root, name);
    if (run) {
      runs.push(run);
      continue;
    }
    const cells = await readdir(join(root, name), { withFileTypes: true }).catch(() => []);
    for (const c of cells) {
      if (!c.isDirectory()) continue;
      const cell = await readRun(root, `${name}/${c.name}`);
      if (cell) runs.push(cell);
    }
  }
  return runs.sort(
    (a, b) => (b.startedAt ?? '').localeCompare(a.startedAt ?? '') || a.run.localeCompare(b.run),
  );
}

export function gamedayRoutes(app: FastifyInstance, _ctx: RouteContext, reportsDir: string): void {
  const root = resolve(reportsDir);
  const file = async (run: string, name: string): Promise<string> => {
    try {
      return await readFile(join(root, run, name), 'utf8');
    } catch {
      throw new ApiError(
        'BW_ERR_API_NOT_FOUND',
        `no game-day run "${run}" (GET /api/v1/gamedays lists them)`,
        {
          field: 'run',
        },
      );
    }
  };

  app.get<{ Querystring: Static<typeof ListQuery> }>(
    '/v1/gamedays',
    {
      config: { access: 'viewer' },
      schema: {
        tags: ['gamedays'],
        summary: 'Game-day runs found in the reports directory, newest first.',
        querystring: ListQuery,
        response: {
          200: Type.Object({
            reportsDir: Type.String(),
            items: Type.Array(RunView),
            nextCursor: Type.Union([Type.String(), Type.Null()]),
          }),
          ...errorResponses,
        },
      },
    },
    async (request) => {
      const all = await listRuns(root);
      const offset = Number(request.query.cursor ?? 0);
      const limit = request.query.limit ?? 100;
      const items = all.slice(offset, offset + limit);
      return {
        reportsDir: root,
        items,
        nextCursor: offset + limit < all.length ? String(offset + limit) : null,
      };
    },
  );

  app.get<{ Querystring: Static<typeof RunQuery> }>(
    '/v1/gamedays/report',
    {
      config: { access: 'viewer' },
      schema: { tags: ['gamedays'], summary: "A run's report.json.", querystring: RunQuery },
    },
    async (request, reply) =>
      reply.type('application/json; charset=utf-8').send(await file(request.query.run, 'report.json')),
  );

  app.get<{ Querystring: Static<typeof RunQuery> }>(
    '/v1/gamedays/report.html',
    {
      config: { access: 'viewer' },
      schema: { tags: ['gamedays'], summary: "A run's report.html (self-contained).", querystring: RunQuery },
    },
    async (request, reply) =>
      reply
        .type('text/html; charset=utf-8')
        .header('content-security-policy', "default-src 'none'; style-src 'unsafe-inline'; img-src data:")
        .send(await file(request.query.run, 'report.html')),
  );
}
