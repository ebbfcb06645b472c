/**
 * Password hashes the broker verifies (password files, PostgreSQL rows) and writes (`breakwater
 * passwd --format`). Migrations bring what the old broker stored, so the formats are those of the
 * tools people migrate from; docs/password-hashes.md lists them with an example of each:
 *
 * - self-describing strings: PHC scrypt, PHC and passlib pbkdf2 (`$pbkdf2-sha256$…`), Django
 *   (`pbkdf2_sha256$iter$salt$hash`), bcrypt (`$2a$`/`$2b$`/`$2y$`), Mosquitto 2 `$7$`
 *   (PBKDF2-SHA512) and Mosquitto 1.x `$6$` (salted SHA-512);
 * - EMQX's column layout (`password_hash` + `salt` columns): sha256/sha512 digests salted as
 *   prefix or suffix, or PBKDF2 with the salt column as its salt; hex (EMQX) or base64 digests.
 *
 * Every comparison is constant-time (timingSafeEqual; bcryptjs compares in constant time too),
 * and every work factor read from a stored hash is bounded first: a row with `i=10^12` or `ln=40`
 * must not turn one CONNECT into minutes of CPU or gigabytes of scrypt memory. A hash the broker
 * cannot use throws BW_ERR_AUTH_HASH_FORMAT naming the problem: a configuration error, never a
 * silent deny.
 */
import { createHash, pbkdf2, randomBytes, scrypt, timingSafeEqual } from 'node:crypto';
import { promisify } from 'node:util';
import bcrypt from 'bcryptjs';
import { GuardError } from './errors.js';

const pbkdf2Async = promisify(pbkdf2);
const scryptAsync = promisify(scrypt) as (
  password: Buffer,
  salt: Buffer,
  keylen: number,
  options: { N: number; r: number; p: number; maxmem: number },
) => Promise<Buffer>;

export const columnHashAlgorithms = ['sha256', 'sha512', 'pbkdf2'] as const;
export const pbkdf2MacFunctions = ['sha1', 'sha256', 'sha512'] as const;
export type Pbkdf2MacFunction = (typeof pbkdf2MacFunctions)[number];

/**
 * How a `password_hash` column that is not self-describing was made, EMQX's
 * `password_hash_algorithm`: `sha256`/`sha512` over salt ++ password (prefix) or password ++ salt
 * (suffix) or the password alone (disable); `pbkdf2` with the salt column as its salt (EMQX
 * `mac_fun`, `iterations`, `dk_length`). EMQX stores hex; base64 is for other migrations.
 */
export interface ColumnHashOptions {
  algorithm: (typeof columnHashAlgorithms)[number];
  saltPosition: 'prefix' | 'suffix' | 'disable';
  /** Encoding of the stored digest (default hex, compared case-insensitively). */
  encoding?: 'hex' | 'base64';
  /** pbkdf2 only (defaults: sha256, 4096 iterations, the mac's output length). */
  macFun?: Pbkdf2MacFunction;
  iterations?: number;
  dkLength?: number;
  /** The row's salt column; null or missing = empty salt (EMQX). */
  salt?: string | null;
}
/** The former name (issue 3). */
export type SaltedDigestOptions = ColumnHashOptions;

// Upper bounds on work factors read from a stored hash (or configured for a column).
export const MAX_SCRYPT_LN = 20;
const MAX_SCRYPT_RP = 64;
/** ~2-4 s of one core for PBKDF2-SHA512; OWASP 2023 recommends 210,000 (SHA-512) to 600,000 (SHA-256). */
export const MAX_PBKDF2_ITERATIONS = 5_000_000;
/** PBKDF2 cost grows with the derived length too (one full run per output block). */
const MAX_DERIVED_BYTES = 256;
/** bcryptjs is pure JS: cost 16 is ~5 s per verification here; real deployments use 10-12. */
export const MAX_BCRYPT_COST = 16;

/** Default scrypt cost for new entries: N = 2^15, r = 8, p = 1 (32 MiB, ~50-100 ms). */
export const DEFAULT_SCRYPT = { ln: 15, r: 8, p: 1 } as const;

function formatError(detail: string): GuardError {
  return new GuardError('BW_ERR_AUTH_HASH_FORMAT', detail);
}

/**
 * PHC/passlib base64: standard alphabet without padding; passlib's "adapted base64" uses `.`
 * instead of `+`. Node's base64 decoder also accepts the url-safe alphabet and missing padding.
 */
function b64decode(s: string, what: string): Buffer {
  if (!/^[A-Za-z0-9+/.\-_]*={0,2}$/.test(s)) throw formatError(`${what} is not base64`);
  return Buffer.from(s.replaceAll('.', '+'), 'base64');
}

function b64encode(b: Buffer): string {
  return b.toString('base64').replace(/=+$/, '');
}

/** Constant-time for equal lengths; the length of a stored hash is no secret. */
function equal(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && a.length > 0 && timingSafeEqual(a, b);
}

function parseParams(s: string): Map<string, number> {
  const m = new Map<string, number>();
  for (const kv of s.split(',')) {
    const [k, v] = kv.split('=');
    if (!k || v === undefined || !/^\d+$/.test(v)) throw formatError(`bad parameter ${kv}`);
    m.set(k, Number(v));
  }
  return m;
}

function checkIterations(scheme: string, iterations: number | undefined): number {
  if (iterations === undefined || !Number.isSafeInteger(iterations) || iterations < 1)
    throw formatError(`${scheme}: iteration count missing or not a positive integer`);
  if (iterations > MAX_PBKDF2_ITERATIONS)
    throw formatError(
      `${scheme}: ${iterations} iterations is above the limit of ${MAX_PBKDF2_ITERATIONS} (refused to bound the work of one login)`,
    );
  return iterations;
}

function checkDerivedLength(scheme: string, n: number): void {
  if (n < 16 || n > MAX_DERIVED_BYTES)
    throw formatError(`${scheme}: a ${n}-byte hash is outside 16..${MAX_DERIVED_BYTES} bytes`);
}

async function verifyScrypt(password: Buffer, parts: string[]): Promise<boolean> {
  // $scrypt$ln=15,r=8,p=1$<salt>$<hash>  (PHC string format; passlib writes the same)
  if (parts.length !== 5) throw formatError('scrypt: expected 4 fields');
  const p = parseParams(parts[2]!);
  const ln = p.get('ln');
  const r = p.get('r') ?? 8;
  const par = p.get('p') ?? 1;
  if (ln === undefined || ln < 1 || ln > MAX_SCRYPT_LN || r < 1 || par < 1 || r * par > MAX_SCRYPT_RP) {
    throw formatError(
      `scrypt: parameters ln=${ln},r=${r},p=${par} out of range (ln 1..${MAX_SCRYPT_LN}, r·p ≤ ${MAX_SCRYPT_RP})`,
    );
  }
  const salt = b64decode(parts[3]!, 'scrypt salt');
  const expected = b64decode(parts[4]!, 'scrypt hash');
  checkDerivedLength('scrypt', expected.length);
  const N = 2 ** ln;
  const actual = await scryptAsync(password, salt, expected.length, {
    N,
    r,
    p: par,
    maxmem: 256 * N * r + (1 << 20),
  });
  return equal(actual, expected);
}

const pbkdf2Digests: Record<string, Pbkdf2MacFunction> = {
  pbkdf2: 'sha1',
  'pbkdf2-sha256': 'sha256',
  'pbkdf2-sha512': 'sha512',
};

async function verifyPbkdf2(password: Buffer, parts: string[]): Promise<boolean> {
  // PHC:    $pbkdf2-sha256$i=100000,l=32$<salt>$<hash>
  // passlib $pbkdf2-sha256$29000$<ab64 salt>$<ab64 hash>
  if (parts.length !== 5) throw formatError('pbkdf2: expected 4 fields');
  const digest = pbkdf2Digests[parts[1]!]!;
  const params = parts[2]!;
  const iterations = checkIterations(
    `$${parts[1]}$`,
    /^\d+$/.test(params) ? Number(params) : parseParams(params).get('i'),
  );
  const salt = b64decode(parts[3]!, 'pbkdf2 salt');
  const expected = b64decode(parts[4]!, 'pbkdf2 hash');
  checkDerivedLength('pbkdf2', expected.length);
  const actual = await pbkdf2Async(password, salt, iterations, expected.length, digest);
  return equal(actual, expected);
}

/** Django's `pbkdf2_sha256$<iterations>$<salt>$<base64 hash>`: the salt is used as text. */
const djangoDigests: Record<string, Pbkdf2MacFunction> = {
  pbkdf2_sha1: 'sha1',
  pbkdf2_sha256: 'sha256',
  pbkdf2_sha512: 'sha512',
};
const DJANGO = /^(pbkdf2_sha1|pbkdf2_sha256|pbkdf2_sha512)\$/;

async function verifyDjango(password: Buffer, stored: string): Promise<boolean> {
  const parts = stored.split('$');
  if (parts.length !== 4) throw formatError(`${parts[0]}: expected 4 fields`);
  const iterations = checkIterations(parts[0]!, /^\d+$/.test(parts[1]!) ? Number(parts[1]) : undefined);
  const expected = b64decode(parts[3]!, `${parts[0]} hash`);
  checkDerivedLength(parts[0]!, expected.length);
  const actual = await pbkdf2Async(
    password,
    Buffer.from(parts[2]!, 'utf8'),
    iterations,
    expected.length,
    djangoDigests[parts[0]!]!,
  );
  return equal(actual, expected);
}

async function verifyMosquitto7(password: Buffer, parts: string[]): Promise<boolean> {
  // mosquitto_passwd: $7$<iterations>$<base64 salt>$<base64 hash>, PBKDF2-HMAC-SHA512 over the
  // decoded salt, 64-byte hash (mosquitto password_mosq.c, pw__hash_sha512_pbkdf2).
  if (parts.length !== 5) throw formatError('$7$: expected 4 fields');
  const iterations = checkIterations('$7$', /^\d+$/.test(parts[2]!) ? Number(parts[2]) : undefined);
  const salt = b64decode(parts[3]!, '$7$ salt');
  const expected = b64decode(parts[4]!, '$7$ hash');
  checkDerivedLength('$7$', expected.length);
  const actual = await pbkdf2Async(password, salt, iterations, expected.length, 'sha512');
  return equal(actual, expected);
}

function verifyMosquitto6(password: Buffer, parts: string[]): boolean {
  // Older mosquitto_passwd: $6$<base64 salt>$<base64 sha512(password || salt)>.
  if (parts.length !== 4) throw formatError('$6$: expected 3 fields');
  const salt = b64decode(parts[2]!, '$6$ salt');
  const expected = b64decode(parts[3]!, '$6$ hash');
  return equal(createHash('sha512').update(password).update(salt).digest(), expected);
}

async function verifyBcrypt(password: Buffer, stored: string, parts: string[]): Promise<boolean> {
  const cost = /^\d\d$/.test(parts[2] ?? '') ? Number(parts[2]) : Number.NaN;
  if (parts.length !== 4 || parts[3]!.length !== 53)
    throw formatError('bcrypt: expected $2b$<cost>$<53 characters of salt and hash>');
  if (!(cost >= 4 && cost <= MAX_BCRYPT_COST))
    throw formatError(`bcrypt: cost ${parts[2]} is outside 4..${MAX_BCRYPT_COST}`);
  // bcrypt uses the first 72 bytes of the password, as every bcrypt implementation does.
  return bcrypt.compare(password.toString('utf8'), stored);
}

const DIGEST_BYTES: Record<Pbkdf2MacFunction | 'sha256' | 'sha512', number> = {
  sha1: 20,
  sha256: 32,
  sha512: 64,
};

function decodeColumn(stored: string, encoding: 'hex' | 'base64'): Buffer {
  if (encoding === 'hex') {
    if (!/^(?:[0-9a-fA-F]{2})+$/.test(stored)) throw formatError('password_hash is not a hex digest');
    return Buffer.from(stored, 'hex');
  }
  return b64decode(stored, 'password_hash');
}

/** EMQX's column layout (emqx_passwd:check_pass): the digest in password_hash, the salt beside it. */
async function verifyColumn(password: Buffer, stored: string, o: ColumnHashOptions): Promise<boolean> {
  const expected = decodeColumn(stored, o.encoding ?? 'hex');
  const salt = Buffer.from(o.salt ?? '', 'utf8');
  if (o.algorithm === 'pbkdf2') {
    const mac = o.macFun ?? 'sha256';
    const iterations = checkIterations('pbkdf2 column', o.iterations ?? 4096);
    const length = o.dkLength ?? DIGEST_BYTES[mac];
    checkDerivedLength('pbkdf2 column', length);
    if (expected.length !== length)
      throw formatError(`password_hash holds ${expected.length} bytes; pbkdf2 ${mac} dkLength is ${length}`);
    // EMQX passes the salt column's text as PBKDF2's salt, as is (not decoded).
    return equal(await pbkdf2Async(password, salt, iterations, length, mac), expected);
  }
  const want = DIGEST_BYTES[o.algorithm];
  if (expected.length !== want)
    throw formatError(`password_hash holds ${expected.length} bytes; a ${o.algorithm} digest has ${want}`);
  const h = createHash(o.algorithm);
  // EMQX: prefix = hash(salt ++ password), suffix = hash(password ++ salt), disable = hash(password).
  if (o.saltPosition === 'prefix') h.update(salt).update(password);
  else if (o.saltPosition === 'suffix') h.update(password).update(salt);
  else h.update(password);
  return equal(h.digest(), expected);
}

/**
 * Verifies `password` against a stored hash. Self-describing formats (`$…`, Django's
 * `pbkdf2_…$`) are recognised by their prefix; anything else is a digest in EMQX's column layout
 * described by `column` (the authenticator's `hash` config plus the row's salt).
 */
export async function verifyPassword(
  password: Buffer,
  stored: string,
  column: ColumnHashOptions = { algorithm: 'sha256', saltPosition: 'disable' },
): Promise<boolean> {
  if (stored.startsWith('$')) {
    const parts = stored.split('$');
    const id = parts[1] ?? '';
    if (id === 'scrypt') return verifyScrypt(password, parts);
    if (id in pbkdf2Digests) return verifyPbkdf2(password, parts);
    if (id === '7') return verifyMosquitto7(password, parts);
    if (id === '6') return verifyMosquitto6(password, parts);
    if (id === '2a' || id === '2b' || id === '2y') return verifyBcrypt(password, stored, parts);
    throw formatError(`unknown scheme $${id}$`);
  }
  if (DJANGO.test(stored)) return verifyDjango(password, stored);
  if (stored.length === 0) throw formatError('empty password_hash');
  return verifyColumn(password, stored, column);
}

// ---- writing hashes (`breakwater passwd --format`) ----

export const passwordFormats = ['scrypt', 'bcrypt', 'pbkdf2-sha256', 'pbkdf2-sha512', 'mosquitto'] as const;
export type PasswordFormat = (typeof passwordFormats)[number];

/** Work factors of new hashes: scrypt ln, bcrypt cost, PBKDF2 iterations. */
export interface HashCost {
  scrypt?: { ln: number; r: number; p: number };
  bcryptCost?: number;
  iterations?: number;
}

/** Defaults for new entries: OWASP 2023 for PBKDF2; bcrypt 10 (bcryptjs ~70-100 ms). */
export const DEFAULT_HASH_COST = {
  bcryptCost: 10,
  iterations: { 'pbkdf2-sha256': 600_000, 'pbkdf2-sha512': 210_000, mosquitto: 210_000 },
} as const;

/** A new PHC scrypt hash (`$scrypt$ln=15,r=8,p=1$<salt>$<hash>`), for password files. */
export async function hashPasswordScrypt(
  password: Buffer | string,
  params: { ln: number; r: number; p: number } = DEFAULT_SCRYPT,
): Promise<string> {
  const pw = typeof password === 'string' ? Buffer.from(password, 'utf8') : password;
  const salt = randomBytes(16);
  const N = 2 ** params.ln;
  const hash = await scryptAsync(pw, salt, 32, {
    N,
    r: params.r,
    p: params.p,
    maxmem: 256 * N * params.r + (1 << 20),
  });
  return `$scrypt$ln=${params.ln},r=${params.r},p=${params.p}$${b64encode(salt)}$${b64encode(hash)}`;
}

/**
 * A new hash in `format`: scrypt (PHC), bcrypt (`$2b$`), passlib pbkdf2 (`$pbkdf2-sha256$…`, read
 * by passlib and by this broker), or Mosquitto `$7$` (read by mosquitto 2 as well). Costs are
 * checked against the same bounds verification applies, so a written hash is always usable.
 */
export async function hashPassword(
  password: Buffer | string,
  format: PasswordFormat,
  cost: HashCost = {},
): Promise<string> {
  const pw = typeof password === 'string' ? Buffer.from(password, 'utf8') : password;
  switch (format) {
    case 'scrypt':
      return hashPasswordScrypt(pw, cost.scrypt);
    case 'bcrypt': {
      const rounds = cost.bcryptCost ?? DEFAULT_HASH_COST.bcryptCost;
      if (!(Number.isInteger(rounds) && rounds >= 4 && rounds <= MAX_BCRYPT_COST))
        throw formatError(`bcrypt: cost ${rounds} is outside 4..${MAX_BCRYPT_COST}`);
      if (pw.length > 72)
        throw formatError('bcrypt: passwords longer than 72 bytes are truncated; use scrypt');
      return bcrypt.hash(pw.toString('utf8'), rounds);
    }
    case 'pbkdf2-sha256':
    case 'pbkdf2-sha512':
    case 'mosquitto': {
      const iterations = checkIterations(format, cost.iterations ?? DEFAULT_HASH_COST.iterations[format]);
      const digest = format === 'pbkdf2-sha256' ? 'sha256' : 'sha512';
      const length = DIGEST_BYTES[digest];
      // Mosquitto writes 12-byte salts in standard base64 with padding; passlib 16 bytes, ab64.
      const salt = randomBytes(format === 'mosquitto' ? 12 : 16);
      const hash = await pbkdf2Async(pw, salt, iterations, length, digest);
      if (format === 'mosquitto')
        return `$7$${iterations}$${salt.toString('base64')}$${hash.toString('base64')}`;
      const ab64 = (b: Buffer) => b64encode(b).replaceAll('+', '.');
      return `$${format}$${iterations}$${ab64(salt)}$${ab64(hash)}`;
    }
  }
}
