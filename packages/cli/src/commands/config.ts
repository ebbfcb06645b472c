/**
 * Kill switch 2 from the command line: `breakwater config push|get|drift` (desired config per
 * device or selector, delivered retained on `$fleet/{id}/config`; drift = desired vs reported).
 */
import { BreakwaterError } from '@breakwater/broker';
import { type Command, Option } from 'commander';
import {
  type ApiCommandContext,
  apiCommand,
  CONNECTION_STATES,
  cell,
  collect,
  type OutputFlags,
  pageOptions,
  parseJson,
  readInput,
  renderFields,
  requireSelector,
  runApi,
  type SelectorFlags,
  seg,
  selectorFrom,
  selectorOptions,
  writeJson,
  writePage,
  writeWarnings,
} from './common.js';

const DRIFT_STATUSES = ['in-sync', 'pending', 'never-reported', 'differs', 'no-desired'] as const;

interface PushResult {
  action: string;
  version: number | null;
  matchedDevices: number;
  published: number;
  online: number;
  warnings: string[];
}

interface DeviceConfigView {
  deviceId: string;
  status: string;
  inSync: boolean;
  desired: { version: number; config: Record<string, unknown>; pushedAt: string } | null;
  reported: { version: string | null; config: Record<string, unknown>; reportedAt: string } | null;
}

interface DriftItem {
  deviceId: string;
  connectionState: string;
  desiredVersion: number | null;
  reportedVersion: string | null;
  inSync: boolean;
  status: string;
  pushedAt: string | null;
  reportedAt: string | null;
}

interface DriftView {
  summary: {
    matched: number;
    inSync: number;
    pending: number;
    neverReported: number;
    differs: number;
    noDesired: number;
  };
  items: DriftItem[];
  nextCursor: string | null;
}

/** The config document from `--file` (or `-` for stdin) or `--set`; it must be a JSON object. */
async function configDocument(
  flags: { file?: string; set?: string },
  ctx: ApiCommandContext,
): Promise<unknown> {
  if ((flags.file === undefined) === (flags.set === undefined)) {
    throw new BreakwaterError(
      'BW_ERR_API_VALIDATION',
      'give the config with exactly one of --file <path> or --set <json>',
    );
  }
  const [text, where] =
    flags.file !== undefined
      ? [await readInput(flags.file, ctx.io), flags.file === '-' ? 'stdin' : flags.file]
      : [flags.set!, '--set'];
  const doc = parseJson(text, where);
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) {
    throw new BreakwaterError('BW_ERR_API_VALIDATION', `${where}: the config must be a JSON object`);
  }
  return doc;
}

export function registerConfigCommands(program: Command, ctx: ApiCommandContext): void {
  const config = program.command('config').description('desired device config: push, read, drift');
  const out = ctx.io.stdout;

  selectorOptions(
    apiCommand(
      config
        .command('push [device]')
        .description(
          'kill switch 2: set the desired config of <device> or of the devices a selector matches; delivered retained, so it applies on the next (re)connect',
        )
        .option('--file <path>', 'JSON object to push (- reads stdin)')
        .option('--set <json>', 'JSON object to push, inline')
        .option('--merge', 'JSON Merge Patch (RFC 7396) onto each device’s current desired config')
        .option('--reason <text>', 'why (written to the audit log)'),
    ),
  ).action(
    (
      device: string | undefined,
      flags: OutputFlags & SelectorFlags & { file?: string; set?: string; merge?: boolean; reason?: string },
    ) =>
      runApi(ctx, flags, async (api) => {
        const doc = await configDocument(flags, ctx);
        const common = {
          config: doc,
          ...(flags.merge ? { merge: true } : {}),
          ...(flags.reason !== undefined ? { reason: flags.reason } : {}),
        };
        let res: PushResult;
        if (device !== undefined) {
          if (selectorFrom(flags) !== null) {
            throw new BreakwaterError(
              'BW_ERR_API_VALIDATION',
              'name either <device> or selector flags, not both',
            );
          }
          res = await api.request<PushResult>('PUT', `/api/v1/devices/${seg(device)}/config`, {
            body: common,
          });
        } else {
          res = await api.post<PushResult>('/api/v1/config/push', {
            body: { selector: requireSelector(flags, '<device>'), ...common },
          });
        }
        if (flags.json) return writeJson(ctx, res);
        out.write(
          res.version === null
            ? 'no device matched: nothing pushed\n'
            : `config version ${res.version} pushed to ${res.matchedDevices} devices (${res.published} published, ${res.online} online now)\n`,
        );
        writeWarnings(ctx, res.warnings);
      }),
  );

  apiCommand(config.command('get <device>').description('desired and reported config of one device')).action(
    (device: string, flags: OutputFlags) =>
      runApi(ctx, flags, async (api) => {
        const c = await api.get<DeviceConfigView>(`/api/v1/devices/${seg(device)}/config`);
        if (flags.json) return writeJson(ctx, c);
        out.write(
          renderFields([
            ['device', c.deviceId],
            ['status', c.status],
            ['desired', c.desired ? `version ${c.desired.version}, pushed ${c.desired.pushedAt}` : null],
            [
              'reported',
              c.reported ? `version ${cell(c.reported.version)}, at ${c.reported.reportedAt}` : null,
            ],
          ]),
        );
        if (c.desired) out.write(`desired config:\n${JSON.stringify(c.desired.config, null, 2)}\n`);
        if (c.reported) out.write(`reported config:\n${JSON.stringify(c.reported.config, null, 2)}\n`);
      }),
  );

  pageOptions(
    apiCommand(
      config
        .command('drift')
        .description(
          'desired vs reported config version, per device, with a summary (filters are AND-combined)',
        )
        .option('--id <id>', 'this device (repeat)', collect)
        .option('--tag <tag>', 'has every one of these tags (repeat)', collect)
        .option('--cohort <cohort>', 'in this cohort')
        .option('--firmware <version>', 'on this firmware version')
        .addOption(new Option('--state <state>', 'connection state').choices(CONNECTION_STATES))
        .addOption(
          new Option('--status <status>', 'only devices with this drift status').choices(DRIFT_STATUSES),
        ),
    ),
  ).action(
    (
      flags: OutputFlags & Omit<SelectorFlags, 'all'> & { status?: string; limit?: number; cursor?: string },
    ) =>
      runApi(ctx, flags, async (api) => {
        const drift = await api.get<DriftView>('/api/v1/config/drift', {
          query: {
            id: flags.id,
            tag: flags.tag,
            cohort: flags.cohort,
            firmware: flags.firmware,
            connectionState: flags.state,
            status: flags.status,
            limit: flags.limit,
            cursor: flags.cursor,
          },
        });
        if (flags.json) return writeJson(ctx, drift);
        const s = drift.summary;
        out.write(
          `${s.matched} devices: ${s.inSync} in sync, ${s.pending} pending, ${s.neverReported} never reported, ` +
            `${s.differs} differ, ${s.noDesired} without desired config\n`,
        );
        writePage(
          ctx,
          drift,
          [
            ['device', (d) => d.deviceId],
            ['status', (d) => d.status],
            ['state', (d) => d.connectionState],
            ['desired', (d) => cell(d.desiredVersion)],
            ['reported', (d) => cell(d.reportedVersion)],
            ['pushed', (d) => cell(d.pushedAt)],
            ['reported at', (d) => cell(d.reportedAt)],
          ],
          'no devices match',
        );
      }),
  );
}
