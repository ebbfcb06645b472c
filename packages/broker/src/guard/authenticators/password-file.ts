import { randomBytes } from 'node:crypto';
import { promises as fsp, type Stats } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { TimerHandle } from '../../clock.js';
import type { PasswordFileAuthConfig } from '../config.js';
import { GuardError } from '../errors.js';
import {
  type HashCost,
  hashPassword,
  hashPasswordScrypt,
  type PasswordFormat,
  verifyPassword,
} from '../password-hash.js';
import {
  type Authenticator,
  type AuthenticatorContext,
  AuthMethod,
  type AuthRequest,
  type AuthResult,
} from './types.js';

/** Parses `user:hash` lines; blank lines and `#` comments are skipped. Later lines win. */
export function parsePasswordFile(text: string): Map<string, string> {
  const users = new Map<string, string>();
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    users.set(line.slice(0, colon), line.slice(colon + 1));
  }
  return users;
}

function validUser(user: string): boolean {
  return user.length > 0 && user.length <= 256 && !/[:\s#]/.test(user) && !user.startsWith('#');
}

/**
 * Adds or replaces `user` in a password file with a fresh hash (the core of
 * `breakwater passwd [--format f] <file> <user>`): scrypt unless `format` says otherwise; `params`
 * are scrypt's cost. The file is rewritten atomically (temp file + rename) with mode 0600, so a
 * broker polling it never reads half a file.
 */
export async function upsertPasswordEntry(
  file: string,
  user: string,
  password: string | Buffer,
  params?: { ln: number; r: number; p: number },
  format: PasswordFormat = 'scrypt',
  cost: HashCost = {},
): Promise<void> {
  if (!validUser(user)) throw new GuardError('BW_ERR_PASSWORD_FILE', `invalid user name "${user}"`);
  if ((typeof password === 'string' ? password.length : password.length) === 0) {
    throw new GuardError('BW_ERR_PASSWORD_FILE', 'empty password');
  }
  let text = '';
  try {
    text = await fsp.readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new GuardError('BW_ERR_PASSWORD_FILE', `cannot read ${file}`, { cause: err });
    }
  }
  const hash =
    format === 'scrypt'
      ? await hashPasswordScrypt(password, params)
      : await hashPassword(password, format, cost);
  const entry = `${user}:${hash}`;
  const lines = text.split('\n').filter((l, i, all) => !(i === all.length - 1 && l === ''));
  let found = false;
  const out = lines.map((l) => {
    if (l.startsWith(`${user}:`)) {
      found = true;
      return entry;
    }
    return l;
  });
  if (!found) out.push(entry);
  const tmp = join(dirname(file), `.${basename(file)}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    await fsp.writeFile(tmp, `${out.join('\n')}\n`, { mode: 0o600 });
    await fsp.rename(tmp, file);
  } catch (err) {
    await fsp.rm(tmp, { force: true });
    throw new GuardError('BW_ERR_PASSWORD_FILE', `cannot write ${file}`, { cause: err });
  }
}

const MEMO_MAX = 10_000;

/**
 * Users and scrypt (or any supported) hashes from a file, reloaded when it changes (stat polling
 * on the injected clock: works for editors that replace the file, where fs.watch loses track).
 * An unreadable file at start makes every check an `error` (0x88, not a deny) until it can be
 * read; an unreadable file later keeps the last good content.
 *
 * Verifications are memoised under a keyed hash of (user, stored hash, password), so a device
 * retrying a wrong password every second costs one scrypt, and a changed hash invalidates by key.
 */
export class PasswordFileAuthenticator implements Authenticator {
  readonly method = AuthMethod.PasswordFile;
  readonly remote = false;
  readonly name: string;
  readonly #config: PasswordFileAuthConfig;
  readonly #ctx: AuthenticatorContext;
  #users: Map<string, string> | null = null;
  #stamp = '';
  #timer: TimerHandle | null = null;
  #reloading: Promise<void> | null = null;
  readonly #memo = new Map<string, boolean>();
  readonly #flights = new Map<string, Promise<boolean>>();

  constructor(name: string, config: PasswordFileAuthConfig, ctx: AuthenticatorContext) {
    this.name = name;
    this.#config = config;
    this.#ctx = ctx;
  }

  async start(): Promise<void> {
    await this.reload();
    this.#timer ??= this.#ctx.clock.setInterval(() => void this.reload(), this.#config.pollIntervalMs);
  }

  get userCount(): number {
    return this.#users?.size ?? 0;
  }

  /** Re-reads the file if its stat changed. Concurrent calls share one reload. */
  reload(): Promise<void> {
    this.#reloading ??= this.#reload().finally(() => {
      this.#reloading = null;
    });
    return this.#reloading;
  }

  async #reload(): Promise<void> {
    const path = this.#config.path;
    let st: Stats;
    try {
      st = await fsp.stat(path);
    } catch (err) {
      this.#unreadable(err);
      return;
    }
    const stamp = `${st.ino}:${st.size}:${st.mtimeMs}`;
    if (stamp === this.#stamp && this.#users) return;
    try {
      const text = await fsp.readFile(path, 'utf8');
      this.#users = parsePasswordFile(text);
      this.#stamp = stamp;
      this.#ctx.logger.info(
        { authenticator: this.name, path, users: this.#users.size },
        'password file loaded',
      );
    } catch (err) {
      this.#unreadable(err);
    }
  }

  #unreadable(err: unknown): void {
    const stamp = 'unreadable';
    if (this.#stamp === stamp) return;
    this.#stamp = stamp;
    this.#ctx.logger.error(
      { authenticator: this.name, path: this.#config.path, err, keeping: this.#users ? this.#users.size : 0 },
      this.#users ? 'password file unreadable; keeping the last good content' : 'password file unreadable',
    );
  }

  async authenticate(request: AuthRequest): Promise<AuthResult> {
    if (!this.#users) return { outcome: 'error', reason: 'password file unreadable' };
    const user = request.username;
    if (user === undefined || request.password === undefined) return { outcome: 'pass' };
    const stored = this.#users.get(user);
    if (stored === undefined) return { outcome: 'pass' };
    const key = this.#ctx.hasher.hash('pwfile', this.name, user, stored, request.password);
    let ok = this.#memo.get(key);
    if (ok === undefined) {
      let flight = this.#flights.get(key);
      if (!flight) {
        flight = verifyPassword(request.password, stored).finally(() => this.#flights.delete(key));
        this.#flights.set(key, flight);
      }
      try {
        ok = await flight;
      } catch (err) {
        this.#ctx.logger.error(
          { authenticator: this.name, user, err },
          'password file entry has an unusable hash',
        );
        return { outcome: 'error', reason: 'unusable password hash' };
      }
      if (this.#memo.size >= MEMO_MAX) this.#memo.delete(this.#memo.keys().next().value!);
      this.#memo.set(key, ok);
    }
    return ok
      ? { outcome: 'allow', identity: request.clientId }
      : { outcome: 'deny', reason: 'bad user name or password' };
  }

  async close(): Promise<void> {
    if (this.#timer) this.#ctx.clock.clearInterval(this.#timer);
    this.#timer = null;
    await this.#reloading;
  }
}
