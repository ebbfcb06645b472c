import { hostname, userInfo } from 'node:os';
import { resolve } from 'node:path';
import {
  BreakwaterError,
  GuardError,
  type PasswordFormat,
  parseBypassTtl,
  readAdminToken,
  upsertPasswordEntry,
} from '@breakwater/broker';

/**
 * `breakwater listener …` (break-glass, issue 3) talks to the running broker's admin API;
 * `breakwater passwd` edits a password file. Each returns an exit code: 0, or 1 after one line on
 * stderr with the BW_ERR_* code.
 */

export interface CommandIo {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  stdin: NodeJS.ReadableStream & { isTTY?: boolean; setRawMode?: (raw: boolean) => unknown };
  env: NodeJS.ProcessEnv;
}

export interface AdminFlags {
  url: string;
  tokenFile?: string;
}

export const DEFAULT_ADMIN_URL = 'http://127.0.0.1:8080';
export const DEFAULT_TOKEN_FILE = './data/admin.token';

/** `--token-file` if given, else `BREAKWATER_ADMIN_TOKEN`, else `./data/admin.token`. */
function adminToken(flags: AdminFlags, env: NodeJS.ProcessEnv): string {
  if (flags.tokenFile === undefined && env.BREAKWATER_ADMIN_TOKEN) return env.BREAKWATER_ADMIN_TOKEN.trim();
  return readAdminToken(resolve(flags.tokenFile ?? DEFAULT_TOKEN_FILE));
}

/** Who made the change, for the audit log: the local user and host. */
function actor(): string {
  let user = 'unknown';
  try {
    user = userInfo().username;
  } catch {
    // No passwd entry (some containers): keep "unknown".
  }
  return `${user}@${hostname()}`;
}

async function call(
  flags: AdminFlags,
  env: NodeJS.ProcessEnv,
  method: 'GET' | 'POST',
  path: string,
  body?: unknown,
): Promise<Record<string, unknown>> {
  const token = adminToken(flags, env);
  let url: URL;
  try {
    url = new URL(path, flags.url);
  } catch (err) {
    throw new BreakwaterError('BW_ERR_ADMIN_UNREACHABLE', `--url ${flags.url} is not a URL`, { cause: err });
  }
  let res: Response;
  try {
    res = await fetch(url, {
      method,
      headers: {
        authorization: `Bearer ${token}`,
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      signal: AbortSignal.timeout(10_000),
    });
  } catch (err) {
    const why = (err as { cause?: { code?: string } }).cause?.code ?? (err as Error).message;
    throw new BreakwaterError(
      'BW_ERR_ADMIN_UNREACHABLE',
      `${url.origin} (${why}); is the broker running? (--url)`,
      {
        cause: err,
      },
    );
  }
  const text = await res.text();
  let json: Record<string, unknown> = {};
  try {
    json = text ? (JSON.parse(text) as Record<string, unknown>) : {};
  } catch {
    // Not JSON: reported below with the status.
  }
  if (!res.ok) {
    const e = json.error as { code?: string; message?: string } | undefined;
    const detail = e?.message ? `${e.message}${e.code ? ` (${e.code})` : ''}` : `HTTP ${res.status}`;
    throw new BreakwaterError('BW_ERR_ADMIN_REQUEST', `${res.status}: ${detail}`);
  }
  return json;
}

function listenerPath(listener: string, action: string): string {
  return `/api/v1/listeners/${encodeURIComponent(listener)}/${action}`;
}

export async function bypassAuthn(
  listener: string,
  options: AdminFlags & { ttl: string; reason: string },
  io: CommandIo,
): Promise<number> {
  return run(io, async () => {
    if (parseBypassTtl(options.ttl) === undefined) {
      throw new BreakwaterError(
        'BW_ERR_ADMIN_REQUEST',
        `--ttl ${options.ttl}: use a duration such as 90s, 30m or 2h (at most 24h)`,
      );
    }
    if (options.reason.trim().length < 3) {
      throw new BreakwaterError('BW_ERR_ADMIN_REQUEST', '--reason: say why (it goes to the audit log)');
    }
    const res = await call(options, io.env, 'POST', listenerPath(listener, 'bypass-authn'), {
      ttl: options.ttl,
      reason: options.reason,
      actor: actor(),
    });
    const b = res.bypass as { until: string };
    io.stdout.write(
      `authentication bypassed on listener ${listener} until ${b.until}: clients are admitted without their backend, each confined to its own topics; ends by itself, or run \`breakwater listener restore-authn ${listener}\`\n`,
    );
  });
}

export async function restoreAuthn(listener: string, options: AdminFlags, io: CommandIo): Promise<number> {
  return run(io, async () => {
    const res = await call(options, io.env, 'POST', listenerPath(listener, 'restore-authn'), {
      actor: actor(),
    });
    io.stdout.write(
      res.restored
        ? `authentication restored on listener ${listener}\n`
        : `no bypass was active on listener ${listener}; authentication is on\n`,
    );
  });
}

export async function authnStatus(listener: string, options: AdminFlags, io: CommandIo): Promise<number> {
  return run(io, async () => {
    const res = await call(options, io.env, 'GET', listenerPath(listener, 'authn'));
    io.stdout.write(`${JSON.stringify(res, null, 2)}\n`);
  });
}

/**
 * `breakwater node drain` (issue 15): readiness goes false, the node stops accepting, and its
 * clients are evicted at `--rate` per second (MQTT 5: DISCONNECT 0x9C with a Server Reference).
 */
export async function nodeDrain(
  options: AdminFlags & { rate?: string; serverReference?: string },
  io: CommandIo,
): Promise<number> {
  return run(io, async () => {
    const body: Record<string, unknown> = { actor: actor() };
    if (options.rate !== undefined) {
      const rate = Number(options.rate);
      if (!Number.isInteger(rate) || rate < 1 || rate > 1_000_000) {
        throw new BreakwaterError(
          'BW_ERR_ADMIN_REQUEST',
          `--rate ${options.rate}: clients per second, 1 to 1000000`,
        );
      }
      body.ratePerSec = rate;
    }
    if (options.serverReference !== undefined) body.serverReference = options.serverReference;
    const res = await call(options, io.env, 'POST', '/api/v1/node/drain', body);
    io.stdout.write(
      `draining: readiness is false, no new connections; evicting ${String(res.remaining)} clients at ${String(res.ratePerSec)}/s (\`breakwater node status\` follows it)\n`,
    );
  });
}

export async function nodeStatus(options: AdminFlags, io: CommandIo): Promise<number> {
  return run(io, async () => {
    const res = await call(options, io.env, 'GET', '/api/v1/node/drain');
    io.stdout.write(`${JSON.stringify(res, null, 2)}\n`);
  });
}

export interface PasswdFlags {
  /** Hash format of the new entry (default scrypt). */
  format?: PasswordFormat;
  /** bcrypt cost, or PBKDF2 iterations (pbkdf2-*, mosquitto); the format's default otherwise. */
  cost?: number;
}

/**
 * `breakwater passwd [--format f] [--cost n] <file> <user>`: the password from stdin (piped) or a
 * hidden prompt. `--format mosquitto` writes `$7$` entries that Mosquitto 2 reads too.
 */
export async function passwd(
  file: string,
  user: string,
  io: CommandIo,
  flags: PasswdFlags = {},
): Promise<number> {
  return run(io, async () => {
    const password = io.stdin.isTTY ? await promptHidden(io, `password for ${user}: `) : await readStdin(io);
    if (password.length === 0) throw new GuardError('BW_ERR_PASSWORD_FILE', 'empty password');
    const format = flags.format ?? 'scrypt';
    const cost =
      flags.cost === undefined
        ? {}
        : format === 'bcrypt'
          ? { bcryptCost: flags.cost }
          : { iterations: flags.cost };
    if (flags.cost !== undefined && format === 'scrypt')
      throw new GuardError(
        'BW_ERR_PASSWORD_FILE',
        '--cost applies to bcrypt, pbkdf2-* and mosquitto, not scrypt',
      );
    await upsertPasswordEntry(resolve(file), user, password, undefined, format, cost);
    io.stdout.write(`${user} updated in ${resolve(file)} (${format})\n`);
  });
}

async function readStdin(io: CommandIo): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of io.stdin) chunks.push(Buffer.from(chunk as Buffer));
  // One trailing newline is the `echo secret |` artefact, not part of the password.
  return Buffer.concat(chunks)
    .toString('utf8')
    .replace(/\r?\n$/, '');
}

/** Reads a line from a TTY without echoing it. */
function promptHidden(io: CommandIo, question: string): Promise<string> {
  const stdin = io.stdin;
  io.stderr.write(question);
  stdin.setRawMode?.(true);
  stdin.resume();
  return new Promise((resolvePw, reject) => {
    let value = '';
    const done = (err?: Error) => {
      stdin.setRawMode?.(false);
      stdin.pause();
      stdin.off('data', onData);
      io.stderr.write('\n');
      if (err) reject(err);
      else resolvePw(value);
    };
    const onData = (data: Buffer | string) => {
      for (const ch of String(data)) {
        if (ch === '\r' || ch === '\n') return done();
        if (ch === '\u0003' || ch === '\u0004') {
          return done(new GuardError('BW_ERR_PASSWORD_FILE', 'cancelled'));
        }
        if (ch === '\u007f' || ch === '\b') value = value.slice(0, -1);
        else value += ch;
      }
    };
    stdin.on('data', onData);
  });
}

async function run(io: CommandIo, body: () => Promise<void>): Promise<number> {
  try {
    await body();
    return 0;
  } catch (err) {
    const code = err instanceof BreakwaterError ? ` [${err.code}]` : '';
    io.stderr.write(`breakwater: ${err instanceof Error ? err.message : String(err)}${code}\n`);
    return 1;
  }
}
