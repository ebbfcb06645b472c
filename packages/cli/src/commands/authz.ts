/**
 * `breakwater authz check|rules|set` (issue 13): which rule decides a publish or subscribe, the
 * live rules, and replacing them from a file in the rules-file syntax (`/api/v1/authz`).
 */
import {
  type AuthzRule,
  BreakwaterError,
  formatRule,
  parseRulesText,
  RulesTextError,
} from '@breakwater/broker';
import { type Command, InvalidArgumentError } from 'commander';
import {
  type ApiCommandContext,
  apiCommand,
  type OutputFlags,
  readInput,
  runApi,
  writeJson,
} from './common.js';

interface CheckView {
  allowed: boolean;
  verdict: 'allow' | 'deny';
  listener: string;
  decidedBy: 'rule' | 'default' | 'superuser';
  index: number | null;
  rule: { text: string; origin: string } | null;
}

interface RulesView {
  file: string;
  rules: Array<AuthzRule & { line: number }>;
  configRules: AuthzRule[];
  error: { line: number | null; message: string; at: number } | null;
}

interface CheckFlags extends OutputFlags {
  clientId: string;
  username?: string;
  certCn?: string;
  listener?: string;
  source?: string;
  superuser?: boolean;
  topic: string;
  action: 'publish' | 'subscribe';
}

function parseAction(value: string): 'publish' | 'subscribe' {
  if (value !== 'publish' && value !== 'subscribe')
    throw new InvalidArgumentError('must be publish or subscribe.');
  return value;
}

/** The explanation in words: the verdict, then the rule (index, where it is written, its text). */
export function describeCheck(c: CheckView): string {
  const lines = [`verdict: ${c.verdict}`, `listener: ${c.listener}`];
  if (c.decidedBy === 'rule' && c.rule !== null) {
    lines.push(`rule: #${c.index} (${c.rule.origin})`, `  ${c.rule.text}`);
  } else if (c.decidedBy === 'superuser') {
    lines.push('rule: none (superuser bypass: the rules are not checked for superusers)');
  } else {
    lines.push(`rule: none matched (the default verdict of listener ${c.listener} applies)`);
  }
  return `${lines.join('\n')}\n`;
}

export function registerAuthzCommands(program: Command, ctx: ApiCommandContext): void {
  const authz = program
    .command('authz')
    .description('authorization rules: explain a decision, show or replace the live rules');
  const out = ctx.io.stdout;

  apiCommand(
    authz
      .command('check')
      .description('which rule decides this publish or subscribe, and the verdict (exit code 0 either way)')
      .requiredOption('--client-id <id>', 'MQTT client id')
      .option('--username <name>', 'MQTT username')
      .option('--cert-cn <cn>', 'client certificate common name (mTLS)')
      .option('--listener <name>', 'listener (default: the only configured one, else *)')
      .option('--source <address>', 'client IP address')
      .option('--superuser', 'the client authenticated as a superuser')
      .requiredOption('--topic <topic>', 'topic (publish) or filter (subscribe)')
      .requiredOption('--action <action>', 'publish or subscribe', parseAction),
  ).action((flags: CheckFlags) =>
    runApi(ctx, flags, async (api) => {
      const body: Record<string, unknown> = {
        clientId: flags.clientId,
        action: flags.action,
        topic: flags.topic,
      };
      for (const k of ['username', 'certCn', 'listener', 'source'] as const)
        if (flags[k] !== undefined) body[k] = flags[k];
      if (flags.superuser) body.superuser = true;
      const res = await api.post<CheckView>('/api/v1/authz/check', { body });
      if (flags.json) return writeJson(ctx, res);
      out.write(describeCheck(res));
    }),
  );

  apiCommand(
    authz.command('rules').description('the live rules (rules file / API), then the config file rules'),
  ).action((flags: OutputFlags) =>
    runApi(ctx, flags, async (api) => {
      const res = await api.get<RulesView>('/api/v1/authz/rules');
      if (flags.json) return writeJson(ctx, res);
      out.write(`# live rules: ${res.file}\n`);
      res.rules.forEach((r, i) => {
        out.write(`#${i}  line ${r.line}: ${formatRule(r)}\n`);
      });
      if (res.configRules.length > 0) out.write('# then guard.authz.rules (config file):\n');
      res.configRules.forEach((r, i) => {
        out.write(`#${res.rules.length + i}  ${formatRule(r)}\n`);
      });
      out.write("# then each listener's guard.listeners.<name>.authz.rules, then its default verdict\n");
      if (res.error !== null) {
        const where = res.error.line === null ? '' : ` (line ${res.error.line})`;
        out.write(`warning: the rules file on disk is not in force${where}: ${res.error.message}\n`);
      }
    }),
  );

  apiCommand(
    authz
      .command('set')
      .description('replace the live rules with those of --file (rules-file syntax; - for stdin)')
      .requiredOption(
        '--file <path>',
        'rules, one a line: allow|deny publish|subscribe|all <topic> [key=value …]',
      )
      .option('--reason <text>', 'why (written to the audit log)'),
  ).action((flags: OutputFlags & { file: string; reason?: string }) =>
    runApi(ctx, flags, async (api) => {
      const text = await readInput(flags.file, ctx.io);
      let rules: AuthzRule[];
      try {
        rules = parseRulesText(text).map((p) => p.rule);
      } catch (err) {
        if (err instanceof RulesTextError)
          throw new BreakwaterError('BW_ERR_AUTHZ_RULE', `${flags.file} line ${err.line}: ${err.detail}`, {
            cause: err,
          });
        throw err;
      }
      const res = await api.request<RulesView>('PUT', '/api/v1/authz/rules', {
        body: { rules, ...(flags.reason !== undefined ? { reason: flags.reason } : {}) },
      });
      if (flags.json) return writeJson(ctx, res);
      out.write(`${res.rules.length} live rule(s) in force, written to ${res.file}\n`);
    }),
  );
}
