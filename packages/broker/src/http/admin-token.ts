import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BreakwaterError } from '../errors.js';

export const ADMIN_TOKEN_FILE = 'admin.token';

/**
 * The broker admin API's bearer token (issue 3, break-glass): created by `breakwater up` on first
 * start as `<dataDir>/admin.token`, mode 0600 (only the broker's user may read it; the CLI on the
 * same host reads it from there). Created with `wx` so two processes starting at once cannot
 * overwrite each other's token. `created` tells the caller to print it (once).
 */
export function ensureAdminToken(dataDir: string): { token: string; path: string; created: boolean } {
  const path = join(dataDir, ADMIN_TOKEN_FILE);
  try {
    mkdirSync(dataDir, { recursive: true });
    const token = randomBytes(32).toString('base64url');
    writeFileSync(path, `${token}\n`, { mode: 0o600, flag: 'wx' });
    return { token, path, created: true };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
      throw new BreakwaterError('BW_ERR_ADMIN_TOKEN', `cannot create ${path}`, { cause: err });
    }
  }
  return { token: readAdminToken(path), path, created: false };
}

/** Reads a token file (first line, trimmed). Throws BW_ERR_ADMIN_TOKEN naming the file. */
export function readAdminToken(path: string): string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? String(err);
    throw new BreakwaterError('BW_ERR_ADMIN_TOKEN', `cannot read ${path} (${code})`, { cause: err });
  }
  const token = text.split('\n')[0]!.trim();
  if (token.length < 16) throw new BreakwaterError('BW_ERR_ADMIN_TOKEN', `${path} holds no token`);
  return token;
}
