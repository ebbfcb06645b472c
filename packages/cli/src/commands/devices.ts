/** `breakwater devices list|get|add|import|update|delete` (`/api/v1/devices`). */
import { extname } from 'node:path';
import { type Command, Option } from 'commander';
import {
  type ApiCommandContext,
  apiCommand,
  CONNECTION_STATES,
  type Column,
  cell,
  collect,
  type OutputFlags,
  pageOptions,
  parseJson,
  readInput,
  renderFields,
  renderTable,
  runApi,
  seg,
  writeJson,
  writePage,
} from './common.js';

export interface DeviceView {
  id: string;
  tags: string[];
  cohort: string | null;
  firmwareVersion: string | null;
  connectionState: string;
  lastSeen: string | null;
  lastDisconnectReason: string | null;
  createdAt: string;
  updatedAt: string;
}

const deviceColumns: readonly Column<DeviceView>[] = [
  ['id', (d) => d.id],
  ['state', (d) => d.connectionState],
  ['tags', (d) => cell(d.tags)],
  ['cohort', (d) => cell(d.cohort)],
  ['firmware', (d) => cell(d.firmwareVersion)],
  ['last seen', (d) => cell(d.lastSeen)],
];

function deviceFields(d: DeviceView): string {
  return renderFields([
    ['id', d.id],
    ['state', d.connectionState],
    ['tags', d.tags],
    ['cohort', d.cohort],
    ['firmware', d.firmwareVersion],
    ['last seen', d.lastSeen],
    ['last disconnect', d.lastDisconnectReason],
    ['created', d.createdAt],
    ['updated', d.updatedAt],
  ]);
}

const reasonOption = () => new Option('--reason <text>', 'why (written to the audit log)');

export function registerDeviceCommands(program: Command, ctx: ApiCommandContext): void {
  const devices = program.command('devices').description('the device registry (control-plane API)');
  const out = ctx.io.stdout;

  pageOptions(
    apiCommand(
      devices
        .command('list')
        .description('list devices, ordered by id (filters are AND-combined)')
        .option('--tag <tag>', 'has every one of these tags (repeat)', collect)
        .option('--cohort <cohort>', 'in this cohort')
        .option('--firmware <version>', 'on this firmware version')
        .addOption(new Option('--state <state>', 'connection state').choices(CONNECTION_STATES)),
    ),
  ).action(
    (
      flags: OutputFlags & {
        tag?: string[];
        cohort?: string;
        firmware?: string;
        state?: string;
        limit?: number;
        cursor?: string;
      },
    ) =>
      runApi(ctx, flags, async (api) => {
        const page = await api.get<{ items: DeviceView[]; nextCursor: string | null }>('/api/v1/devices', {
          query: {
            tag: flags.tag,
            cohort: flags.cohort,
            firmware: flags.firmware,
            connectionState: flags.state,
            limit: flags.limit,
            cursor: flags.cursor,
          },
        });
        if (flags.json) writeJson(ctx, page);
        else writePage(ctx, page, deviceColumns, 'no devices');
      }),
  );

  apiCommand(devices.command('get <id>').description('one device')).action((id: string, flags: OutputFlags) =>
    runApi(ctx, flags, async (api) => {
      const device = await api.get<DeviceView>(`/api/v1/devices/${seg(id)}`);
      if (flags.json) writeJson(ctx, device);
      else out.write(deviceFields(device));
    }),
  );

  apiCommand(
    devices
      .command('add <id>')
      .description('register a device; prints its secret, shown only this once')
      .option('--tag <tag>', 'tag (repeat)', collect)
      .option('--cohort <cohort>', 'cohort, e.g. canary')
      .option('--firmware <version>', 'firmware version it runs')
      .addOption(reasonOption()),
  ).action(
    (
      id: string,
      flags: OutputFlags & { tag?: string[]; cohort?: string; firmware?: string; reason?: string },
    ) =>
      runApi(ctx, flags, async (api) => {
        const res = await api.post<{ device: DeviceView; secret: string }>('/api/v1/devices', {
          body: {
            id,
            ...(flags.tag ? { tags: flags.tag } : {}),
            ...(flags.cohort !== undefined ? { cohort: flags.cohort } : {}),
            ...(flags.firmware !== undefined ? { firmwareVersion: flags.firmware } : {}),
            ...(flags.reason !== undefined ? { reason: flags.reason } : {}),
          },
        });
        if (flags.json) return writeJson(ctx, res);
        out.write(`device ${res.device.id} registered\n`);
        out.write(`secret (shown only now; the device exchanges it for tokens): ${res.secret}\n`);
      }),
  );

  apiCommand(
    devices
      .command('import <file>')
      .description(
        'bulk import from CSV (header id,tags,cohort,firmwareVersion; tags ;-separated) or a JSON array; all or nothing; - reads stdin',
      )
      .addOption(
        new Option('--format <format>', 'input format (default: from the file extension, else JSON)').choices(
          ['csv', 'json'],
        ),
      ),
  ).action((file: string, flags: OutputFlags & { format?: 'csv' | 'json' }) =>
    runApi(ctx, flags, async (api) => {
      const text = await readInput(file, ctx.io);
      const format = flags.format ?? (extname(file).toLowerCase() === '.csv' ? 'csv' : 'json');
      const res = await api.post<{ imported: number; devices: Array<{ id: string; secret: string }> }>(
        '/api/v1/devices/import',
        format === 'csv'
          ? { body: text, contentType: 'text/csv' }
          : { body: parseJson(text, file === '-' ? 'stdin' : file) },
      );
      if (flags.json) return writeJson(ctx, res);
      out.write(`imported ${res.imported} devices; secrets (shown only now):\n`);
      out.write(
        renderTable(res.devices, [
          ['id', (d) => d.id],
          ['secret', (d) => d.secret],
        ]),
      );
    }),
  );

  apiCommand(
    devices
      .command('update <id>')
      .description('change tags (the full new list), cohort or firmware version')
      .option('--tag <tag>', 'the new tag list (repeat)', collect)
      .option('--no-tags', 'remove every tag')
      .option('--cohort <cohort>', 'new cohort')
      .option('--no-cohort', 'clear the cohort')
      .option('--firmware <version>', 'new firmware version')
      .option('--no-firmware', 'clear the firmware version')
      .addOption(reasonOption()),
  ).action(
    (
      id: string,
      flags: OutputFlags & {
        tag?: string[];
        tags?: boolean;
        cohort?: string | false;
        firmware?: string | false;
        reason?: string;
      },
    ) =>
      runApi(ctx, flags, async (api) => {
        const body: Record<string, unknown> = {};
        if (flags.tag) body.tags = flags.tag;
        else if (flags.tags === false) body.tags = [];
        if (flags.cohort !== undefined) body.cohort = flags.cohort === false ? null : flags.cohort;
        if (flags.firmware !== undefined)
          body.firmwareVersion = flags.firmware === false ? null : flags.firmware;
        if (flags.reason !== undefined) body.reason = flags.reason;
        const device = await api.request<DeviceView>('PATCH', `/api/v1/devices/${seg(id)}`, { body });
        if (flags.json) writeJson(ctx, device);
        else out.write(deviceFields(device));
      }),
  );

  apiCommand(
    devices.command('delete <id>').description('remove a device from the registry').addOption(reasonOption()),
  ).action((id: string, flags: OutputFlags & { reason?: string }) =>
    runApi(ctx, flags, async (api) => {
      await api.request('DELETE', `/api/v1/devices/${seg(id)}`, {
        ...(flags.reason !== undefined ? { reason: flags.reason } : {}),
      });
      if (flags.json) writeJson(ctx, { deleted: id });
      else out.write(`device ${id} deleted\n`);
    }),
  );
}
