/**
 * `breakwater export prometheus-rules|grafana-dashboard [--config file] [--out file]`: the
 * built-in alert rules (with the config's `alerts.rules` overrides) as a Prometheus rules file or
 * a Grafana dashboard, for teams that alert from their own Prometheus stack.
 */
import { writeFileSync } from 'node:fs';
import { BreakwaterError, loadConfigFile } from '@breakwater/broker';
import { grafanaDashboard, prometheusRulesYaml, resolveRules } from '@breakwater/control';
import { Argument, type Command } from 'commander';

export const exportTargets = ['prometheus-rules', 'grafana-dashboard'] as const;
export type ExportTarget = (typeof exportTargets)[number];

export interface ExportFlags {
  config?: string;
  out?: string;
  runbookBaseUrl?: string;
}

export interface ExportIo {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
}

/** The exported document as text (YAML for the rules, JSON for the dashboard). */
export function renderExport(
  target: ExportTarget,
  flags: Pick<ExportFlags, 'config' | 'runbookBaseUrl'>,
): string {
  const config = flags.config === undefined ? undefined : loadConfigFile(flags.config);
  const rules = resolveRules(config?.alerts.rules);
  const options = flags.runbookBaseUrl === undefined ? {} : { runbookBaseUrl: flags.runbookBaseUrl };
  return target === 'prometheus-rules'
    ? prometheusRulesYaml(rules, options)
    : `${JSON.stringify(grafanaDashboard(rules, options), null, 2)}\n`;
}

export async function exportCommand(target: ExportTarget, flags: ExportFlags, io: ExportIo): Promise<number> {
  try {
    const text = renderExport(target, flags);
    if (flags.out === undefined) {
      io.stdout.write(text);
    } else {
      writeFileSync(flags.out, text);
      io.stderr.write(`breakwater: wrote ${target} to ${flags.out}\n`);
    }
    return 0;
  } catch (err) {
    const code = err instanceof BreakwaterError ? ` [${err.code}]` : '';
    io.stderr.write(`breakwater: ${err instanceof Error ? err.message : String(err)}${code}\n`);
    return 1;
  }
}

/** Adds `breakwater export <what>` to the program; `done` receives the exit code. */
export function registerExportCommand(program: Command, io: ExportIo, done: (code: number) => void): void {
  program
    .command('export')
    .description('write the built-in alert rules as a Prometheus rules file or a Grafana dashboard')
    .addArgument(new Argument('<what>', 'prometheus-rules | grafana-dashboard').choices(exportTargets))
    .option('--config <file>', 'YAML configuration file: its alerts.rules overrides apply')
    .option('--out <file>', 'write to this file instead of stdout')
    .option('--runbook-base-url <url>', 'link runbooks under this URL (default: runbooks/<slug>.md)')
    .action(async (what: ExportTarget, flags: ExportFlags) => {
      done(await exportCommand(what, flags, io));
    });
}
