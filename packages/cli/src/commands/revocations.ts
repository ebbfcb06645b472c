/**
 * Kill switch 1 from the command line: `breakwater revoke …` and `breakwater revocations
 * list|show|lift` (`/api/v1/revocations`).
 */
import { BreakwaterError } from '@breakwater/broker';
import { type Command, Option } from 'commander';
import {
  type ApiCommandContext,
  apiCommand,
  cell,
  type OutputFlags,
  pageOptions,
  renderFields,
  runApi,
  type Selector,
  type SelectorFlags,
  seg,
  selectorFrom,
  selectorOptions,
  writeJson,
  writePage,
  writeWarnings,
} from './common.js';

const KINDS = ['device', 'selector', 'token', 'all'] as const;

interface RevocationView {
  id: string;
  kind: (typeof KINDS)[number];
  active: boolean;
  deviceId: string | null;
  selector: Selector | null;
  tokenId: string | null;
  issuedBefore: string | null;
  deviceCount: number;
  reason: string | null;
  createdAt: string;
  createdBy: { id: string; name: string };
  revertedAt: string | null;
  revertedBy: { id: string; name: string } | null;
}

interface Reach {
  matchedDevices: number;
  disconnected: number;
  purgedRetained: number;
  purgedWills: number;
  warnings: string[];
}

/** What a revocation targets, in words. */
function target(r: RevocationView): string {
  const base =
    r.kind === 'device'
      ? `device ${r.deviceId}`
      : r.kind === 'selector'
        ? `selector ${JSON.stringify(r.selector)}`
        : r.kind === 'token'
          ? `token ${r.tokenId}`
          : 'every client';
  return r.issuedBefore === null ? base : `${base}, tokens issued before ${r.issuedBefore}`;
}

export function registerRevocationCommands(program: Command, ctx: ApiCommandContext): void {
  const out = ctx.io.stdout;

  selectorOptions(
    apiCommand(
      program
        .command('revoke [device]')
        .description(
          'kill switch 1: revoke a device, the devices a selector matches, one token (--token-id), or tokens issued before a time; live sessions are disconnected, reconnects refused',
        )
        .option('--token-id <jti>', 'revoke this one token')
        .option(
          '--issued-before <time>',
          'ISO 8601 time or "now": revoke tokens issued before it (of the device / selector devices, or alone: of every client)',
        )
        .requiredOption('--reason <text>', 'why (written to the audit log)'),
    ),
  ).action(
    (
      device: string | undefined,
      flags: OutputFlags & SelectorFlags & { tokenId?: string; issuedBefore?: string; reason: string },
    ) =>
      runApi(ctx, flags, async (api) => {
        const selector = selectorFrom(flags);
        const targets = [device !== undefined, selector !== null, flags.tokenId !== undefined].filter(
          Boolean,
        ).length;
        if (targets > 1 || (targets === 0 && flags.issuedBefore === undefined)) {
          throw new BreakwaterError(
            'BW_ERR_API_VALIDATION',
            'name exactly one target: <device>, selector flags (--id, --tag, --cohort, --firmware, --state, --all) or --token-id; or --issued-before alone',
          );
        }
        const body = {
          ...(device !== undefined ? { deviceId: device } : {}),
          ...(selector !== null ? { selector } : {}),
          ...(flags.tokenId !== undefined ? { tokenId: flags.tokenId } : {}),
          ...(flags.issuedBefore !== undefined ? { issuedBefore: flags.issuedBefore } : {}),
          reason: flags.reason,
        };
        const res = await api.post<Reach & { revocation: RevocationView }>('/api/v1/revocations', { body });
        if (flags.json) return writeJson(ctx, res);
        out.write(
          `revoked ${target(res.revocation)} (revocation ${res.revocation.id}): ${res.matchedDevices} matched, ` +
            `${res.disconnected} live sessions disconnected, ${res.purgedRetained} retained and ${res.purgedWills} will messages purged\n`,
        );
        writeWarnings(ctx, res.warnings);
        out.write(`undo: breakwater revocations lift ${res.revocation.id} --reason …\n`);
      }),
  );

  const revocations = program.command('revocations').description('revocations in force or lifted');

  pageOptions(
    apiCommand(
      revocations
        .command('list')
        .description('revocations, newest first')
        .option('--active', 'only those in force')
        .option('--lifted', 'only those lifted')
        .addOption(new Option('--kind <kind>', 'only this kind').choices(KINDS))
        .option('--device <id>', 'only those naming this device')
        .option('--token-id <jti>', 'only those naming this token'),
    ),
  ).action(
    (
      flags: OutputFlags & {
        active?: boolean;
        lifted?: boolean;
        kind?: string;
        device?: string;
        tokenId?: string;
        limit?: number;
        cursor?: string;
      },
    ) =>
      runApi(ctx, flags, async (api) => {
        if (flags.active && flags.lifted) {
          throw new BreakwaterError('BW_ERR_API_VALIDATION', '--active and --lifted exclude each other');
        }
        const page = await api.get<{ items: RevocationView[]; nextCursor: string | null }>(
          '/api/v1/revocations',
          {
            query: {
              active: flags.active ? true : flags.lifted ? false : undefined,
              kind: flags.kind,
              deviceId: flags.device,
              tokenId: flags.tokenId,
              limit: flags.limit,
              cursor: flags.cursor,
            },
          },
        );
        if (flags.json) return writeJson(ctx, page);
        writePage(
          ctx,
          page,
          [
            ['id', (r) => r.id],
            ['status', (r) => (r.active ? 'active' : 'lifted')],
            ['kind', (r) => r.kind],
            ['target', (r) => target(r)],
            ['devices', (r) => String(r.deviceCount)],
            ['created', (r) => r.createdAt],
            ['by', (r) => r.createdBy.name],
            ['reason', (r) => cell(r.reason)],
          ],
          'no revocations',
        );
      }),
  );

  apiCommand(revocations.command('show <id>').description('one revocation and every device it names')).action(
    (id: string, flags: OutputFlags) =>
      runApi(ctx, flags, async (api) => {
        const res = await api.get<{ revocation: RevocationView; deviceIds: string[] }>(
          `/api/v1/revocations/${seg(id)}`,
        );
        if (flags.json) return writeJson(ctx, res);
        const r = res.revocation;
        out.write(
          renderFields([
            ['id', r.id],
            ['status', r.active ? 'active' : 'lifted'],
            ['target', target(r)],
            ['devices', res.deviceIds],
            ['reason', r.reason],
            ['created', `${r.createdAt} by ${r.createdBy.name}`],
            ['lifted', r.revertedAt === null ? null : `${r.revertedAt} by ${r.revertedBy?.name ?? '?'}`],
          ]),
        );
      }),
  );

  apiCommand(
    revocations
      .command('lift <id>')
      .description(
        'undo a revocation: its devices and tokens may connect again (unless another revocation covers them)',
      )
      .requiredOption('--reason <text>', 'why (written to the audit log)'),
  ).action((id: string, flags: OutputFlags & { reason: string }) =>
    runApi(ctx, flags, async (api) => {
      const res = await api.request<{
        revocation: RevocationView;
        released: number;
        stillRevoked: number;
        warnings: string[];
      }>('DELETE', `/api/v1/revocations/${seg(id)}`, { reason: flags.reason });
      if (flags.json) return writeJson(ctx, res);
      out.write(
        `lifted revocation ${res.revocation.id} (${target(res.revocation)}): ${res.released} released, ` +
          `${res.stillRevoked} still revoked by another revocation\n`,
      );
      writeWarnings(ctx, res.warnings);
    }),
  );
}
