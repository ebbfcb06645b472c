/** `breakwater tokens mint|keys|rotate` (`/api/v1/tokens`). */
import type { Command } from 'commander';
import {
  type ApiCommandContext,
  apiCommand,
  cell,
  type OutputFlags,
  parseDurationSec,
  renderTable,
  runApi,
  writeJson,
} from './common.js';

interface TokenView {
  token: string;
  tokenId: string;
  kid: string;
  issuedAt: string;
  expiresAt: string;
}

interface SigningKeyView {
  kid: string;
  createdAt: string;
  retiredAt: string | null;
  inJwksUntil: string | null;
}

export function registerTokenCommands(program: Command, ctx: ApiCommandContext): void {
  const tokens = program.command('tokens').description('the token issuer: device JWTs and signing keys');
  const out = ctx.io.stdout;

  apiCommand(
    tokens
      .command('mint <device>')
      .description('sign a token for <device> (sub = device id = MQTT client id); prints the JWT')
      .requiredOption(
        '--ttl <duration>',
        'lifetime, e.g. 15m, 1h (a bare number is seconds)',
        parseDurationSec,
      )
      .option('--reason <text>', 'why (written to the audit log)'),
  ).action((device: string, flags: OutputFlags & { ttl: number; reason?: string }) =>
    runApi(ctx, flags, async (api) => {
      const t = await api.post<TokenView>('/api/v1/tokens', {
        body: {
          deviceId: device,
          ttl: flags.ttl,
          ...(flags.reason !== undefined ? { reason: flags.reason } : {}),
        },
      });
      if (flags.json) return writeJson(ctx, t);
      // The JWT alone on the last line, so `| tail -1` gives a usable MQTT password.
      out.write(`token ${t.tokenId} for ${device} (kid ${t.kid}), expires ${t.expiresAt}:\n${t.token}\n`);
    }),
  );

  apiCommand(
    tokens.command('keys').description('signing keys: the active one and retired ones still in the JWKS'),
  ).action((flags: OutputFlags) =>
    runApi(ctx, flags, async (api) => {
      const res = await api.get<{ items: SigningKeyView[] }>('/api/v1/tokens/keys');
      if (flags.json) return writeJson(ctx, res);
      out.write(
        renderTable(res.items, [
          ['kid', (k) => k.kid],
          ['status', (k) => (k.retiredAt === null ? 'active' : 'retired')],
          ['created', (k) => k.createdAt],
          ['retired', (k) => cell(k.retiredAt)],
          ['in jwks until', (k) => (k.retiredAt === null ? '-' : cell(k.inJwksUntil))],
        ]),
      );
    }),
  );

  apiCommand(
    tokens
      .command('rotate')
      .description('new signing key; the old one stays in the JWKS until its last token expires')
      .option('--reason <text>', 'why (written to the audit log)'),
  ).action((flags: OutputFlags & { reason?: string }) =>
    runApi(ctx, flags, async (api) => {
      const res = await api.post<{ kid: string; retired: string[] }>('/api/v1/tokens/keys/rotate', {
        body: flags.reason !== undefined ? { reason: flags.reason } : {},
      });
      if (flags.json) return writeJson(ctx, res);
      out.write(`active signing key: ${res.kid}\n`);
      if (res.retired.length > 0)
        out.write(`retired (in the JWKS until their tokens expire): ${res.retired.join(', ')}\n`);
    }),
  );
}
