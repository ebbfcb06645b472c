/**
 * Kill switch 3 from the command line: `breakwater campaign create|list|show|start|halt|resume|
 * rollback` (`/api/v1/campaigns`). `halt` is the OTA halt: when it returns, no further device is
 * notified.
 */
import { BreakwaterError } from '@breakwater/broker';
import { type Command, InvalidArgumentError, Option } from 'commander';
import {
  type ApiCommandContext,
  apiCommand,
  cell,
  type OutputFlags,
  pageOptions,
  parseDurationMs,
  parseJson,
  parseNonNegativeInt,
  parseRatio,
  readInput,
  renderFields,
  renderTable,
  requireSelector,
  runApi,
  type SelectorFlags,
  seg,
  selectorFrom,
  selectorOptions,
  writeJson,
  writePage,
} from './common.js';

const CAMPAIGN_STATES = ['draft', 'running', 'halted', 'completed', 'rolled-back'] as const;

interface CampaignView {
  id: string;
  name: string;
  state: string;
  artifact: { url: string; version: string; sha256: string; size: number | null };
  selector: Record<string, unknown>;
  waves: Array<{ percent: number; minDevices: number; soakMs: number; gate: Record<string, unknown> }>;
  gate: { maxFailureRatio: number; maxOfflineRatio: number; reportTimeoutMs: number };
  currentWave: number | null;
  targetCount: number;
  haltReason: string | null;
  haltedBy: string | null;
  haltedAt: string | null;
  rollbackOf: string | null;
  createdAt: string;
  createdBy: string;
  startedAt: string | null;
  completedAt: string | null;
  updatedAt: string;
}

interface WaveView {
  wave: number;
  percent: number;
  soakMs: number;
  devices: number;
  states: Record<string, number>;
  failureRatio: number;
}

interface CampaignDetail {
  campaign: CampaignView;
  waves: WaveView[];
  states: Record<string, number>;
}

interface HaltView {
  campaignId: string;
  name: string;
  previousState: string;
  state: string;
  cancelledNotifications: number;
  toldToStop: number;
  devicesReached: number;
}

/** `1,10,100` → cumulative percentages. */
function parseWaves(value: string): number[] {
  const parts = value.split(',').map((p) => p.trim());
  const percents = parts.map(Number);
  if (parts.some((p) => p === '') || percents.some((p) => !Number.isFinite(p) || p <= 0 || p > 100)) {
    throw new InvalidArgumentError('use cumulative percentages, e.g. 1,10,100 (each > 0 and <= 100).');
  }
  return percents;
}

const campaignColumns = [
  ['id', (c: CampaignView) => c.id],
  ['name', (c: CampaignView) => c.name],
  ['state', (c: CampaignView) => c.state],
  ['version', (c: CampaignView) => c.artifact.version],
  ['wave', (c: CampaignView) => (c.currentWave === null ? '-' : `${c.currentWave}/${c.waves.length}`)],
  ['targets', (c: CampaignView) => String(c.targetCount)],
  ['created', (c: CampaignView) => c.createdAt],
] as const;

function states(counts: Record<string, number>): string {
  const parts = Object.entries(counts)
    .filter(([, n]) => n > 0)
    .map(([s, n]) => `${s}=${n}`);
  return parts.length === 0 ? '-' : parts.join(' ');
}

function writeDetail(ctx: ApiCommandContext, d: CampaignDetail): void {
  const c = d.campaign;
  ctx.io.stdout.write(
    renderFields([
      ['id', c.id],
      ['name', c.name],
      ['state', c.state],
      ['artifact', `${c.artifact.version} ${c.artifact.url} sha256:${c.artifact.sha256}`],
      ['selector', JSON.stringify(c.selector)],
      ['targets', c.targetCount],
      ['wave', c.currentWave === null ? null : `${c.currentWave} of ${c.waves.length}`],
      [
        'gate',
        `failure <= ${c.gate.maxFailureRatio}, offline <= ${c.gate.maxOfflineRatio}, silent after ${c.gate.reportTimeoutMs} ms`,
      ],
      ['halted', c.haltedAt === null ? null : `${c.haltedAt} by ${cell(c.haltedBy)}: ${cell(c.haltReason)}`],
      ['rollback of', c.rollbackOf],
      ['devices', states(d.states)],
    ]),
  );
  if (d.waves.length > 0) {
    ctx.io.stdout.write(
      renderTable(d.waves, [
        ['wave', (w) => String(w.wave)],
        ['percent', (w) => String(w.percent)],
        ['devices', (w) => String(w.devices)],
        ['failure', (w) => w.failureRatio.toFixed(3)],
        ['jobs', (w) => states(w.states)],
      ]),
    );
  }
}

interface CreateFlags extends OutputFlags, SelectorFlags {
  file?: string;
  name?: string;
  artifactUrl?: string;
  artifactVersion?: string;
  sha256?: string;
  size?: number;
  waves?: number[];
  soak?: number;
  minDevices?: number;
  maxFailureRatio?: number;
  maxOfflineRatio?: number;
  reportTimeout?: number;
  reason?: string;
}

/** The create body from `--file` (the API's JSON body as is) or from the flags. */
async function createBody(flags: CreateFlags, ctx: ApiCommandContext): Promise<unknown> {
  if (flags.file !== undefined) {
    if (selectorFrom(flags) !== null || flags.name !== undefined || flags.artifactUrl !== undefined) {
      throw new BreakwaterError(
        'BW_ERR_API_VALIDATION',
        '--file holds the whole campaign: give no other campaign flags',
      );
    }
    return parseJson(await readInput(flags.file, ctx.io), flags.file === '-' ? 'stdin' : flags.file);
  }
  const missing = (
    [
      ['--name', flags.name],
      ['--artifact-url', flags.artifactUrl],
      ['--artifact-version', flags.artifactVersion],
      ['--sha256', flags.sha256],
      ['--waves', flags.waves],
    ] as const
  )
    .filter(([, v]) => v === undefined)
    .map(([k]) => k);
  if (missing.length > 0) {
    throw new BreakwaterError(
      'BW_ERR_API_VALIDATION',
      `missing ${missing.join(', ')} (or give --file campaign.json)`,
    );
  }
  const gate = {
    ...(flags.maxFailureRatio !== undefined ? { maxFailureRatio: flags.maxFailureRatio } : {}),
    ...(flags.maxOfflineRatio !== undefined ? { maxOfflineRatio: flags.maxOfflineRatio } : {}),
    ...(flags.reportTimeout !== undefined ? { reportTimeoutMs: flags.reportTimeout } : {}),
  };
  return {
    name: flags.name,
    artifact: {
      url: flags.artifactUrl,
      version: flags.artifactVersion,
      sha256: flags.sha256,
      ...(flags.size !== undefined ? { size: flags.size } : {}),
    },
    selector: requireSelector(flags),
    waves: flags.waves!.map((percent) => ({
      percent,
      ...(flags.soak !== undefined ? { soakMs: flags.soak } : {}),
      ...(flags.minDevices !== undefined ? { minDevices: flags.minDevices } : {}),
    })),
    ...(Object.keys(gate).length > 0 ? { gate } : {}),
    ...(flags.reason !== undefined ? { reason: flags.reason } : {}),
  };
}

export function registerCampaignCommands(program: Command, ctx: ApiCommandContext): void {
  const campaign = program
    .command('campaign')
    .description('OTA campaigns: waves, health gates, halt, rollback');
  const out = ctx.io.stdout;
  const reasonOption = () => new Option('--reason <text>', 'why (written to the audit log)');
  const reasonBody = (reason: string | undefined) => ({ body: reason === undefined ? {} : { reason } });

  selectorOptions(
    apiCommand(
      campaign
        .command('create')
        .description(
          'create a campaign (draft) for the devices a selector matches; start it with `campaign start`',
        )
        .option('--file <path>', 'the whole campaign as the API’s JSON body (- reads stdin)')
        .option('--name <name>', 'campaign name')
        .option('--artifact-url <url>', 'http(s) URL of the firmware artifact')
        .option('--artifact-version <version>', 'firmware version the artifact installs')
        .option('--sha256 <hex>', 'SHA-256 of the artifact (64 hex digits)')
        .option('--size <bytes>', 'artifact size in bytes', parseNonNegativeInt)
        .option('--waves <percents>', 'cumulative percentages, e.g. 1,10,100', parseWaves)
        .option('--soak <duration>', 'healthy time after each wave, e.g. 10m', parseDurationMs)
        .option('--min-devices <n>', 'cumulative minimum device count per wave', parseNonNegativeInt)
        .option('--max-failure-ratio <r>', 'gate: halt above this failed share (0-1)', parseRatio)
        .option(
          '--max-offline-ratio <r>',
          'gate: halt above this share offline after updating (0-1)',
          parseRatio,
        )
        .option(
          '--report-timeout <duration>',
          'gate: a notified device silent this long counts as failed',
          parseDurationMs,
        )
        .addOption(reasonOption()),
    ),
    'target devices',
  ).action((flags: CreateFlags) =>
    runApi(ctx, flags, async (api) => {
      const res = await api.post<{ campaign: CampaignView }>('/api/v1/campaigns', {
        body: await createBody(flags, ctx),
      });
      if (flags.json) return writeJson(ctx, res);
      const c = res.campaign;
      out.write(
        `campaign ${c.id} (${c.name}) created as ${c.state}: ${c.targetCount} target devices, ${c.waves.length} waves\n` +
          `start it: breakwater campaign start ${c.id}\n`,
      );
    }),
  );

  pageOptions(
    apiCommand(
      campaign
        .command('list')
        .description('campaigns, newest first')
        .addOption(new Option('--state <state>', 'only campaigns in this state').choices(CAMPAIGN_STATES)),
    ),
  ).action((flags: OutputFlags & { state?: string; limit?: number; cursor?: string }) =>
    runApi(ctx, flags, async (api) => {
      const page = await api.get<{ items: CampaignView[]; nextCursor: string | null }>('/api/v1/campaigns', {
        query: { state: flags.state, limit: flags.limit, cursor: flags.cursor },
      });
      if (flags.json) return writeJson(ctx, page);
      writePage(ctx, page, campaignColumns, 'no campaigns');
    }),
  );

  apiCommand(
    campaign.command('show <id>').description('one campaign with device counts per wave and job state'),
  ).action((id: string, flags: OutputFlags) =>
    runApi(ctx, flags, async (api) => {
      const d = await api.get<CampaignDetail>(`/api/v1/campaigns/${seg(id)}`);
      if (flags.json) writeJson(ctx, d);
      else writeDetail(ctx, d);
    }),
  );

  apiCommand(
    campaign
      .command('start <id>')
      .description('start a draft campaign: wave 1 is notified')
      .addOption(reasonOption()),
  ).action((id: string, flags: OutputFlags & { reason?: string }) =>
    runApi(ctx, flags, async (api) => {
      const d = await api.post<CampaignDetail>(
        `/api/v1/campaigns/${seg(id)}/start`,
        reasonBody(flags.reason),
      );
      if (flags.json) return writeJson(ctx, d);
      out.write(`campaign ${id} started\n`);
      writeDetail(ctx, d);
    }),
  );

  apiCommand(
    campaign
      .command('halt [id]')
      .description(
        'OTA halt: no further device is notified, queued notifications are cancelled, devices mid-update are told to stop',
      )
      .option('--all', 'every running campaign, in one call (the ota-halt kill switch; needs --reason)')
      .addOption(reasonOption()),
  ).action((id: string | undefined, flags: OutputFlags & { all?: boolean; reason?: string }) =>
    runApi(ctx, flags, async (api) => {
      if ((id === undefined) === !flags.all) {
        throw new BreakwaterError(
          'BW_ERR_API_VALIDATION',
          'name one campaign <id>, or --all for every running one',
        );
      }
      if (id === undefined) {
        if (flags.reason === undefined) {
          throw new BreakwaterError(
            'BW_ERR_API_VALIDATION',
            '--all needs --reason (the kill switch is audited)',
          );
        }
        const res = await api.post<{
          campaigns: HaltView[];
          cancelledNotifications: number;
          toldToStop: number;
          devicesReached: number;
        }>('/api/v1/killswitch/ota-halt', { body: { reason: flags.reason } });
        if (flags.json) return writeJson(ctx, res);
        out.write(
          `OTA halt: ${res.campaigns.length} campaign(s) halted, ${res.cancelledNotifications} queued notifications cancelled, ` +
            `${res.toldToStop} devices told to stop, ${res.devicesReached} reached\n`,
        );
        if (res.campaigns.length > 0) {
          out.write(
            renderTable(res.campaigns, [
              ['id', (h) => h.campaignId],
              ['name', (h) => h.name],
              ['was', (h) => h.previousState],
              ['state', (h) => h.state],
            ]),
          );
        }
        return;
      }
      const res = await api.post<{ halt: HaltView; campaign: CampaignView }>(
        `/api/v1/campaigns/${seg(id)}/halt`,
        reasonBody(flags.reason),
      );
      if (flags.json) return writeJson(ctx, res);
      const h = res.halt;
      out.write(
        `campaign ${id} halted (was ${h.previousState}): ${h.cancelledNotifications} queued notifications cancelled, ` +
          `${h.toldToStop} devices told to stop, ${h.devicesReached} reached\n`,
      );
    }),
  );

  apiCommand(
    campaign
      .command('resume <id>')
      .description('resume a halted campaign where it stopped')
      .addOption(reasonOption()),
  ).action((id: string, flags: OutputFlags & { reason?: string }) =>
    runApi(ctx, flags, async (api) => {
      const res = await api.post<{ campaign: CampaignView; notified: number }>(
        `/api/v1/campaigns/${seg(id)}/resume`,
        reasonBody(flags.reason),
      );
      if (flags.json) return writeJson(ctx, res);
      out.write(`campaign ${id} is ${res.campaign.state}; ${res.notified} devices notified\n`);
    }),
  );

  apiCommand(
    campaign
      .command('rollback <id>')
      .description(
        'campaign(s) back to the previous version for the devices that updated (halted or completed campaigns)',
      )
      .option('--no-start', 'create the rollback campaigns as drafts')
      .addOption(reasonOption()),
  ).action((id: string, flags: OutputFlags & { reason?: string; start: boolean }) =>
    runApi(ctx, flags, async (api) => {
      const res = await api.post<{ campaigns: CampaignView[]; skippedUnknownVersion: string[] }>(
        `/api/v1/campaigns/${seg(id)}/rollback`,
        {
          body: {
            ...(flags.reason !== undefined ? { reason: flags.reason } : {}),
            ...(flags.start === false ? { start: false } : {}),
          },
        },
      );
      if (flags.json) return writeJson(ctx, res);
      out.write(`campaign ${id} rolled back by ${res.campaigns.length} campaign(s):\n`);
      if (res.campaigns.length > 0) out.write(renderTable(res.campaigns, campaignColumns));
      if (res.skippedUnknownVersion.length > 0) {
        out.write(`not rolled back (previous version unknown): ${res.skippedUnknownVersion.join(', ')}\n`);
      }
    }),
  );
}
