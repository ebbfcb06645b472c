/**
 * What every control-plane command shares: the connection flags, `--json`, selector flags,
 * duration parsing, table output, and the one-line error report with exit code 1.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { BreakwaterError } from '@breakwater/broker';
import { type Command, InvalidArgumentError } from 'commander';
import type { CommandIo } from '../admin-commands.js';
import {
  ApiClient,
  type ApiFlags,
  ApiRequestError,
  DEFAULT_API_KEY_FILE,
  DEFAULT_API_URL,
} from './api-client.js';

/** How a command group reaches the outside world; `main()` builds one per run. */
export interface ApiCommandContext {
  io: CommandIo;
  /** Records the exit code `main()` returns (commander actions cannot return one). */
  setExitCode(code: number): void;
}

export interface OutputFlags extends ApiFlags {
  json?: boolean;
}

/** Adds `--url`, `--api-key`, `--api-key-file` and `--json` to a leaf command. */
export function apiCommand(cmd: Command): Command {
  return cmd
    .option('--url <url>', `control-plane base URL (default: $BREAKWATER_URL, else ${DEFAULT_API_URL})`)
    .option('--api-key <key>', 'API key (default: $BREAKWATER_API_KEY)')
    .option('--api-key-file <file>', `file holding the API key (default: ${DEFAULT_API_KEY_FILE})`)
    .option('--json', 'print the API response as JSON (for scripts)');
}

/**
 * Runs a command body with a client built from its flags; any error becomes one line on stderr
 * and exit code 1.
 */
export async function runApi(
  ctx: ApiCommandContext,
  flags: ApiFlags,
  body: (client: ApiClient) => Promise<void>,
): Promise<void> {
  try {
    await body(ApiClient.fromFlags(flags, ctx.io.env));
    ctx.setExitCode(0);
  } catch (err) {
    ctx.io.stderr.write(`breakwater: ${describeError(err)}\n`);
    ctx.setExitCode(1);
  }
}

/** `<message> (HTTP 400, field tags[0]) [BW_ERR_API_VALIDATION]`: one line, code last. */
export function describeError(err: unknown): string {
  if (err instanceof ApiRequestError) {
    const field = err.field === undefined ? '' : `, field ${err.field}`;
    return `${oneLine(err.message)} (HTTP ${err.status}${field}) [${err.code}]`;
  }
  if (err instanceof BreakwaterError) return `${oneLine(err.message)} [${err.code}]`;
  return oneLine(err instanceof Error ? err.message : String(err));
}

function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, ' ');
}

export function writeJson(ctx: ApiCommandContext, value: unknown): void {
  ctx.io.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** Repeatable option values; each value may also be a comma-separated list. */
export function collect(value: string, previous: string[] | undefined): string[] {
  const parts = value
    .split(',')
    .map((v) => v.trim())
    .filter((v) => v !== '');
  return [...(previous ?? []), ...parts];
}

export interface SelectorFlags {
  id?: string[];
  tag?: string[];
  cohort?: string;
  firmware?: string;
  state?: string;
  all?: boolean;
}

export const CONNECTION_STATES = ['online', 'offline', 'unknown'] as const;

/** Adds the selector flags (`--id`, `--tag` repeatable, `--cohort`, `--firmware`, `--state`, `--all`). */
export function selectorOptions(cmd: Command, what = 'devices'): Command {
  return cmd
    .option('--id <id>', `${what} with this id (repeat or comma-separate)`, collect)
    .option('--tag <tag>', `${what} with every one of these tags (repeat)`, collect)
    .option('--cohort <cohort>', `${what} in this cohort`)
    .option('--firmware <version>', `${what} on this firmware version`)
    .option(
      '--state <state>',
      `${what} in this connection state (${CONNECTION_STATES.join(', ')})`,
      connectionState,
    )
    .option('--all', `every device (needed when no other selector flag is given)`);
}

function connectionState(value: string): string {
  if (!(CONNECTION_STATES as readonly string[]).includes(value)) {
    throw new InvalidArgumentError(`must be one of ${CONNECTION_STATES.join(', ')}.`);
  }
  return value;
}

export interface Selector {
  ids?: string[];
  tags?: string[];
  cohort?: string;
  firmware?: string;
  connectionState?: string;
  all?: true;
}

/** The API selector the flags describe; null when no selector flag was given. */
export function selectorFrom(flags: SelectorFlags): Selector | null {
  const s: Selector = {};
  if (flags.id?.length) s.ids = [...new Set(flags.id)];
  if (flags.tag?.length) s.tags = [...new Set(flags.tag)];
  if (flags.cohort !== undefined) s.cohort = flags.cohort;
  if (flags.firmware !== undefined) s.firmware = flags.firmware;
  if (flags.state !== undefined) s.connectionState = flags.state;
  if (flags.all) s.all = true;
  return Object.keys(s).length === 0 ? null : s;
}

/** Like selectorFrom, but a missing selector is a usage error naming the flags. */
export function requireSelector(flags: SelectorFlags, positional?: string): Selector {
  const s = selectorFrom(flags);
  if (s === null) {
    throw new BreakwaterError(
      'BW_ERR_API_VALIDATION',
      `name the target: ${positional ? `${positional}, or ` : ''}--id, --tag, --cohort, --firmware, --state, or --all`,
    );
  }
  return s;
}

const UNITS_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** `500ms`, `90s`, `10m`, `2h`, `1d`; a bare number is seconds. Returns milliseconds. */
export function parseDurationMs(value: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(value.trim());
  if (!m)
    throw new InvalidArgumentError('use a duration such as 90s, 10m, 2h or 1d (a bare number is seconds).');
  return Math.round(Number(m[1]) * UNITS_MS[m[2] ?? 's']!);
}

export function parseDurationSec(value: string): number {
  const ms = parseDurationMs(value);
  if (ms < 1000 || ms % 1000 !== 0)
    throw new InvalidArgumentError('must be a whole number of seconds, at least 1s.');
  return ms / 1000;
}

export function parseNonNegativeInt(value: string): number {
  if (!/^\d+$/.test(value)) throw new InvalidArgumentError('must be a non-negative integer.');
  return Number(value);
}

export function parseRatio(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n < 0 || n > 1) {
    throw new InvalidArgumentError('must be a number between 0 and 1 (e.g. 0.05).');
  }
  return n;
}

/** A file's text, or stdin for `-`. */
export async function readInput(file: string, io: CommandIo): Promise<string> {
  if (file !== '-') {
    try {
      return readFileSync(resolve(file), 'utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? String(err);
      throw new BreakwaterError('BW_ERR_API_VALIDATION', `cannot read ${resolve(file)} (${code})`, {
        cause: err,
      });
    }
  }
  const chunks: Buffer[] = [];
  for await (const chunk of io.stdin) chunks.push(Buffer.from(chunk as Buffer));
  return Buffer.concat(chunks).toString('utf8');
}

/** Parses JSON given on the command line or in a file, naming where it came from. */
export function parseJson(text: string, where: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new BreakwaterError(
      'BW_ERR_API_VALIDATION',
      `${where} is not valid JSON: ${(err as Error).message}`,
      {
        cause: err,
      },
    );
  }
}

export type Column<T> = readonly [header: string, cell: (row: T) => string];

/** A plain-text table: upper-case headers, columns padded to their widest cell. */
export function renderTable<T>(rows: readonly T[], columns: readonly Column<T>[]): string {
  const cells = rows.map((row) => columns.map(([, cell]) => cell(row)));
  const headers = columns.map(([h]) => h.toUpperCase());
  const widths = headers.map((h, i) => Math.max(h.length, ...cells.map((r) => r[i]!.length)));
  const line = (values: string[]) =>
    values
      .map((v, i) => (i === values.length - 1 ? v : v.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return `${[line(headers), ...cells.map(line)].join('\n')}\n`;
}

/** `-` for null/undefined/empty, comma-joined lists. */
export function cell(value: unknown): string {
  if (value === null || value === undefined || value === '') return '-';
  if (Array.isArray(value)) return value.length === 0 ? '-' : value.join(',');
  return String(value);
}

/** A list page: the table, or a note when empty, and how to get the next page. */
export function writePage<T>(
  ctx: ApiCommandContext,
  page: { items: readonly T[]; nextCursor: string | null },
  columns: readonly Column<T>[],
  empty: string,
): void {
  ctx.io.stdout.write(page.items.length === 0 ? `${empty}\n` : renderTable(page.items, columns));
  if (page.nextCursor) ctx.io.stdout.write(`more: --cursor ${page.nextCursor}\n`);
}

/** `key: value` lines, keys aligned. */
export function renderFields(fields: ReadonlyArray<readonly [string, unknown]>): string {
  const width = Math.max(...fields.map(([k]) => k.length));
  return `${fields.map(([k, v]) => `${`${k}:`.padEnd(width + 1)} ${cell(v)}`).join('\n')}\n`;
}

/** Warnings from the API (e.g. "no broker attached"), one per line. */
export function writeWarnings(ctx: ApiCommandContext, warnings: readonly string[] | undefined): void {
  for (const w of warnings ?? []) ctx.io.stdout.write(`warning: ${w}\n`);
}

/** `--limit` and `--cursor` for list commands. */
export function pageOptions(cmd: Command): Command {
  return cmd
    .option('--limit <n>', 'page size (1-1000, default 100)', parseNonNegativeInt)
    .option('--cursor <cursor>', 'next page (printed after a full page)');
}

/** Path segment for an id (ids are validated by the API; this only keeps the URL well-formed). */
export function seg(id: string): string {
  return encodeURIComponent(id);
}
