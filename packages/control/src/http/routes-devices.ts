import { ReasonCode } from '@breakwater/broker';
import type { Static } from '@sinclair/typebox';
import { Type } from '@sinclair/typebox';
import type { ValidateFunction } from 'ajv';
import { parse as parseCsv } from 'csv-parse/sync';
import type { FastifyInstance } from 'fastify';
import type { DeviceEventFilter, DeviceEventRecord } from '../devices/events.js';
import type { DeviceFilter, DeviceRecord, NewDevice } from '../devices/model.js';
import { generateDeviceSecret, hashDeviceSecret } from '../devices/secret.js';
import { ApiError } from '../errors.js';
import { revokeDeletedDeviceTokens } from '../revocation/revoke.js';
import { audit, iso, isoOrNull, type RouteContext } from './context.js';
import { describeAjvError } from './errors.js';
import {
  CreateDeviceBody,
  DeviceEventsQuery,
  DeviceEventView,
  DeviceIdParams,
  type DeviceInput,
  DeviceView,
  errorResponses,
  ImportJsonBody,
  KickDevicesBody,
  ListDevicesQuery,
  MAX_IMPORT_ROWS,
  PatchDeviceBody,
  page,
  ResolveSelectorBody,
} from './schemas.js';

export function deviceView(d: DeviceRecord): Static<typeof DeviceView> {
  return {
    id: d.id,
    tags: d.tags,
    cohort: d.cohort,
    firmwareVersion: d.firmwareVersion,
    connectionState: d.connectionState,
    lastSeen: isoOrNull(d.lastSeen),
    lastDisconnectReason: d.lastDisconnectReason,
    createdAt: iso(d.createdAt),
    updatedAt: iso(d.updatedAt),
  };
}

function deviceEventView(e: DeviceEventRecord): Static<typeof DeviceEventView> {
  return { seq: e.seq, at: iso(e.at), kind: e.kind, clientId: e.clientId, reason: e.reason, count: e.count };
}

type DeviceInputT = Static<typeof DeviceInput>;

const CSV_COLUMNS = new Set(['id', 'tags', 'cohort', 'firmwareVersion']);

/**
 * CSV import: a header row naming columns (`id` required; `tags` separated by `;`, `cohort`,
 * `firmwareVersion`), one device per line. Empty cells are absent values. Rows are validated
 * with the same schema as JSON rows, so errors read the same (`rows[3].firmwareVersion`).
 */
function csvRows(text: string): unknown[] {
  let records: Array<Record<string, string>>;
  try {
    records = parseCsv(text, { columns: true, skip_empty_lines: true, trim: true, bom: true });
  } catch (err) {
    const line = (err as { lines?: number }).lines;
    throw new ApiError('BW_ERR_API_VALIDATION', `CSV cannot be parsed: ${(err as Error).message}`, {
      field: line === undefined ? 'body' : `rows[${Math.max(0, line - 2)}]`,
    });
  }
  const header = records[0] ? Object.keys(records[0]) : [];
  for (const column of header) {
    if (!CSV_COLUMNS.has(column)) {
      throw new ApiError(
        'BW_ERR_API_VALIDATION',
        `CSV column "${column}" is not one of ${[...CSV_COLUMNS].join(', ')}`,
        {
          field: column,
        },
      );
    }
  }
  return records.map((r) => {
    const row: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(r)) {
      if (v === '') continue;
      row[k] =
        k === 'tags'
          ? v
              .split(';')
              .map((t) => t.trim())
              .filter((t) => t !== '')
          : v;
    }
    return row;
  });
}

export function deviceRoutes(app: FastifyInstance, ctx: RouteContext, validateRow: ValidateFunction): void {
  const { storage, clock } = ctx;

  async function createDevices(
    rows: DeviceInputT[],
  ): Promise<Array<{ row: DeviceInputT; secret: string; device: NewDevice }>> {
    const now = clock.now();
    return Promise.all(
      rows.map(async (row) => {
        const secret = generateDeviceSecret();
        return {
          row,
          secret,
          device: {
            id: row.id,
            tags: row.tags ?? [],
            cohort: row.cohort ?? null,
            firmwareVersion: row.firmwareVersion ?? null,
            secretHash: await hashDeviceSecret(secret),
            createdAt: now,
          },
        };
      }),
    );
  }

  app.post<{ Body: Static<typeof CreateDeviceBody> }>(
    '/v1/devices',
    {
      config: { access: 'operator' },
      schema: {
        tags: ['devices'],
        summary: 'Register a device. The response carries its secret, shown only this once.',
        body: CreateDeviceBody,
        response: {
          201: Type.Object({ device: DeviceView, secret: Type.String() }),
          ...errorResponses,
        },
      },
    },
    async (request, reply) => {
      const { reason: _reason, ...row } = request.body;
      const [created] = await createDevices([row]);
      const device = await storage.transaction(async (tx) => {
        await tx.devices.insert([created!.device]);
        await audit(tx, ctx, request, {
          action: 'device.create',
          targetType: 'device',
          targetId: row.id,
          details: {
            tags: created!.device.tags,
            cohort: created!.device.cohort,
            firmwareVersion: created!.device.firmwareVersion,
          },
        });
        return tx.devices.get(row.id);
      });
      return reply.code(201).send({ device: deviceView(device!), secret: created!.secret });
    },
  );

  app.post<{ Body: unknown }>(
    '/v1/devices/import',
    {
      bodyLimit: 8 * 1024 * 1024,
      config: { access: 'operator', bodyFieldPrefix: 'rows' },
      schema: {
        tags: ['devices'],
        summary: `Bulk import (JSON array or text/csv, at most ${MAX_IMPORT_ROWS} rows). All or nothing.`,
        description:
          'One invalid row fails the whole import with 400 naming it (`rows[3].firmwareVersion`); an id that ' +
          'is already registered fails it with 409. CSV: header row `id,tags,cohort,firmwareVersion`, tags ' +
          'separated by `;`. Secrets are returned once, in row order.',
        body: {
          content: {
            'application/json': { schema: ImportJsonBody },
            'text/csv': { schema: Type.String({ minLength: 1 }) },
          },
        },
        response: {
          201: Type.Object({
            imported: Type.Integer(),
            devices: Type.Array(Type.Object({ id: Type.String(), secret: Type.String() })),
          }),
          ...errorResponses,
        },
      },
    },
    async (request, reply) => {
      let rows: unknown[];
      if (typeof request.body === 'string') {
        rows = csvRows(request.body);
        if (rows.length === 0)
          throw new ApiError('BW_ERR_API_VALIDATION', 'CSV has no device rows', { field: 'rows' });
        if (rows.length > MAX_IMPORT_ROWS) {
          throw new ApiError('BW_ERR_API_VALIDATION', `at most ${MAX_IMPORT_ROWS} rows per import`, {
            field: 'rows',
          });
        }
        rows.forEach((row, i) => {
          if (!validateRow(row)) {
            const { field, message } = describeAjvError(validateRow.errors![0]!, `rows[${i}]`);
            throw new ApiError('BW_ERR_API_VALIDATION', `${field} ${message} (CSV line ${i + 2})`, { field });
          }
        });
      } else {
        rows = request.body as unknown[]; // validated by the route schema
      }
      const typed = rows as DeviceInputT[];
      const seen = new Map<string, number>();
      typed.forEach((row, i) => {
        const first = seen.get(row.id);
        if (first !== undefined) {
          throw new ApiError('BW_ERR_API_VALIDATION', `rows[${i}].id ${row.id} repeats rows[${first}].id`, {
            field: `rows[${i}].id`,
          });
        }
        seen.set(row.id, i);
      });
      const created = await createDevices(typed);
      await storage.transaction(async (tx) => {
        const existing = await tx.devices.existing(typed.map((r) => r.id));
        if (existing.length > 0) {
          const i = Math.min(...existing.map((id) => seen.get(id)!));
          throw new ApiError(
            'BW_ERR_API_CONFLICT',
            `rows[${i}].id: device ${typed[i]!.id} is already registered`,
            {
              field: `rows[${i}].id`,
            },
          );
        }
        await tx.devices.insert(created.map((c) => c.device));
        await audit(tx, ctx, request, {
          action: 'device.import',
          targetType: 'device',
          targetId: null,
          details: { count: created.length, ids: typed.map((r) => r.id) },
        });
      });
      return reply.code(201).send({
        imported: created.length,
        devices: created.map((c) => ({ id: c.device.id, secret: c.secret })),
      });
    },
  );

  app.get<{ Querystring: Static<typeof ListDevicesQuery> }>(
    '/v1/devices',
    {
      config: { access: 'viewer' },
      schema: {
        tags: ['devices'],
        summary: 'List devices (filters are AND-combined), ordered by id, cursor-paginated.',
        querystring: ListDevicesQuery,
        response: {
          200: Type.Object({
            items: Type.Array(DeviceView),
            nextCursor: Type.Union([Type.String(), Type.Null()]),
            total: Type.Optional(Type.Integer({ description: 'With includeTotal: every match.' })),
          }),
          ...errorResponses,
        },
      },
    },
    async (request) => {
      const q = request.query;
      const filter: DeviceFilter = {};
      if (q.tag) filter.tags = q.tag;
      if (q.cohort !== undefined) filter.cohort = q.cohort;
      if (q.firmware !== undefined) filter.firmware = q.firmware;
      if (q.connectionState !== undefined) filter.connectionState = q.connectionState;
      if (q.q !== undefined) filter.idContains = q.q;
      if (q.lastDisconnectReason !== undefined) filter.lastDisconnectReason = q.lastDisconnectReason;
      const result = await storage.devices.list(filter, q.limit ?? 100, q.cursor ?? null);
      return {
        items: result.items.map(deviceView),
        nextCursor: result.nextCursor,
        ...(q.includeTotal ? { total: await storage.devices.count(filter) } : {}),
      };
    },
  );

  app.get<{ Params: Static<typeof DeviceIdParams> }>(
    '/v1/devices/:id/session',
    {
      config: { access: 'viewer' },
      schema: {
        tags: ['devices'],
        summary:
          "The broker's session of this device: connected, subscriptions, queued and in-flight messages (null: none held).",
        params: DeviceIdParams,
        response: {
          200: Type.Object({
            session: Type.Union([
              Type.Object({
                connected: Type.Boolean(),
                persistent: Type.Boolean(),
                subscriptions: Type.Array(Type.Object({ filter: Type.String(), qos: Type.Integer() })),
                queued: Type.Integer(),
                inflight: Type.Integer(),
              }),
              Type.Null(),
            ]),
            warnings: Type.Array(Type.String()),
          }),
          ...errorResponses,
        },
      },
    },
    async (request) => {
      const device = await storage.devices.get(request.params.id);
      if (!device) throw new ApiError('BW_ERR_API_NOT_FOUND', `device ${request.params.id}`);
      const fleet = ctx.fleet;
      if (fleet?.sessionSummary === undefined) {
        return { session: null, warnings: ['no broker attached: session state unknown'] };
      }
      return { session: fleet.sessionSummary(request.params.id), warnings: [] };
    },
  );

  app.get<{ Params: Static<typeof DeviceIdParams>; Querystring: Static<typeof DeviceEventsQuery> }>(
    '/v1/devices/:id/events',
    {
      config: { access: 'viewer' },
      schema: {
        tags: ['devices'],
        summary:
          "The device's event history, newest first: connects, disconnects and messages its session queue dropped (by reason). Bounded: the newest `control.deviceEventsPerDevice` events are kept.",
        params: DeviceIdParams,
        querystring: DeviceEventsQuery,
        response: { 200: page(DeviceEventView), ...errorResponses },
      },
    },
    async (request) => {
      const { id } = request.params;
      const q = request.query;
      if (!(await storage.devices.get(id))) throw new ApiError('BW_ERR_API_NOT_FOUND', `device ${id}`);
      const filter: DeviceEventFilter = q.kind === undefined ? {} : { kind: q.kind };
      const result = await storage.deviceEvents.list(id, filter, q.limit ?? 100, q.cursor ?? null);
      return { items: result.items.map(deviceEventView), nextCursor: result.nextCursor };
    },
  );

  app.post<{ Body: Static<typeof KickDevicesBody> }>(
    '/v1/devices/kick',
    {
      config: { access: 'operator' },
      schema: {
        tags: ['devices'],
        summary:
          'Disconnect these devices now (MQTT 5 DISCONNECT 0x98 Administrative action). They may reconnect: revoke to keep them out.',
        body: KickDevicesBody,
        response: {
          200: Type.Object({
            requested: Type.Integer(),
            disconnected: Type.Array(Type.String()),
            warnings: Type.Array(Type.String()),
          }),
          ...errorResponses,
        },
      },
    },
    async (request) => {
      const { ids } = request.body;
      const fleet = ctx.fleet;
      const disconnected =
        fleet === null
          ? []
          : ids.filter((id) =>
              fleet.disconnectClient(id, ReasonCode.AdministrativeAction, 'disconnected by an operator'),
            );
      await storage.transaction((tx) =>
        audit(tx, ctx, request, {
          action: 'device.kick',
          targetType: 'device',
          targetId: ids.length === 1 ? ids[0]! : null,
          details: { ids, disconnected },
        }),
      );
      return {
        requested: ids.length,
        disconnected,
        warnings: fleet === null ? ['no broker attached: nobody was disconnected'] : [],
      };
    },
  );

  app.post<{ Body: Static<typeof ResolveSelectorBody> }>(
    '/v1/selectors/resolve',
    {
      config: { access: 'viewer' },
      schema: {
        tags: ['devices'],
        summary: 'Which devices a selector matches (preview before an action).',
        body: ResolveSelectorBody,
        response: {
          200: Type.Object({ count: Type.Integer(), ids: Type.Array(Type.String()) }),
          ...errorResponses,
        },
      },
    },
    async (request) => {
      const ids = await storage.devices.resolve(request.body.selector);
      return { count: ids.length, ids };
    },
  );

  app.get<{ Params: Static<typeof DeviceIdParams> }>(
    '/v1/devices/:id',
    {
      config: { access: 'viewer' },
      schema: { tags: ['devices'], params: DeviceIdParams, response: { 200: DeviceView, ...errorResponses } },
    },
    async (request) => {
      const device = await storage.devices.get(request.params.id);
      if (!device) throw new ApiError('BW_ERR_API_NOT_FOUND', `device ${request.params.id}`);
      return deviceView(device);
    },
  );

  app.patch<{ Params: Static<typeof DeviceIdParams>; Body: Static<typeof PatchDeviceBody> }>(
    '/v1/devices/:id',
    {
      config: { access: 'operator' },
      schema: {
        tags: ['devices'],
        summary: 'Change tags (the full new list), cohort or firmware version.',
        params: DeviceIdParams,
        body: PatchDeviceBody,
        response: { 200: DeviceView, ...errorResponses },
      },
    },
    async (request) => {
      const { reason: _reason, ...patch } = request.body;
      const device = await storage.transaction(async (tx) => {
        const before = await tx.devices.get(request.params.id);
        if (!before) throw new ApiError('BW_ERR_API_NOT_FOUND', `device ${request.params.id}`);
        const after = await tx.devices.update(request.params.id, patch, clock.now());
        await audit(tx, ctx, request, {
          action: 'device.update',
          targetType: 'device',
          targetId: request.params.id,
          details: {
            before: { tags: before.tags, cohort: before.cohort, firmwareVersion: before.firmwareVersion },
            after: patch,
          },
        });
        return after!;
      });
      return deviceView(device);
    },
  );

  app.delete<{ Params: Static<typeof DeviceIdParams> }>(
    '/v1/devices/:id',
    {
      config: { access: 'operator' },
      schema: {
        tags: ['devices'],
        summary: 'Remove a device from the registry (reason via the x-breakwater-reason header).',
        params: DeviceIdParams,
        response: { 204: Type.Null(), ...errorResponses },
      },
    },
    async (request, reply) => {
      // Its tokens stay valid JWTs until they expire: an 'issued before now' revocation ends them.
      const revoked = await storage.transaction(async (tx) => {
        if (!(await tx.devices.delete(request.params.id))) {
          throw new ApiError('BW_ERR_API_NOT_FOUND', `device ${request.params.id}`);
        }
        await audit(tx, ctx, request, {
          action: 'device.delete',
          targetType: 'device',
          targetId: request.params.id,
        });
        await tx.configPushes.forget(request.params.id);
        return revokeDeletedDeviceTokens(tx, ctx, request, request.params.id);
      });
      await revoked.enforce();
      await clearFleetRetained(ctx, request.params.id);
      return reply.code(204).send();
    },
  );
}

/**
 * A deleted device's retained desired config and OTA job must not greet a device registered
 * later under the same id. Best effort: the registry change has committed; a broker hiccup here
 * is logged, and the next push or campaign overwrites the topics anyway.
 */
async function clearFleetRetained(ctx: RouteContext, id: string): Promise<void> {
  if (ctx.fleet === null) return;
  for (const topic of [`$fleet/${id}/config`, `$fleet/${id}/ota`]) {
    try {
      await ctx.fleet.publish({ topic, payload: '', qos: 1, retain: true });
    } catch (err) {
      ctx.logger?.warn({ err, topic }, 'could not clear the retained message of a deleted device');
    }
  }
}
