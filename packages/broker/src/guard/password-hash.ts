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

/** How a bare hex digest (EMQX-style `password_hash` + `salt` columns) was salted. */
export interface SaltedDigestOptions {
  algorithm: 'sha256' | 'sha512';
  saltPosition: 'prefix' | 'suffix' | 'disable';
  salt?: string | null;
}

// Upper bounds on work factors read from a stored hash: a row with `ln=40` or `i=10^12` must not
// turn one CONNECT into minutes of CPU (or gigabytes of scrypt memory).
const MAX_SCRYPT_LN = 20;
const MAX_SCRYPT_RP = 64;
const MAX_PBKDF2_ITERATIONS = 5_000_000;
const MAX_BCRYPT_COST = 16;

/** Default scrypt cost for new entries: N = 2^15, r = 8, p = 1 (32 MiB, ~50-100 ms). */
export const DEFAULT_SCRYPT = { ln: 15, r: 8, p: 1 } as const;

/**
 * PHC/passlib base64: standard alphabet without padding; passlib's "adapted base64" uses `.`
 * instead of `+`. Node's base64 decoder also accepts the url-safe alphabet and missing padding.
 */
function b64decode(s: string): Buffer {
  if (!/^[A-Za-z0-9+/.\-_]*={0,2}$/.test(s)) throw new GuardError('BW_ERR_AUTH_HASH_FORMAT', 'bad base64');
  return Buffer.from(s.replaceAll('.', '+'), 'base64');
}

function b64encode(b: Buffer): string {
  return b.toString('base64').replace(/=+$/, '');
}

function equal(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && a.length > 0 && timingSafeEqual(a, b);
}

function parseParams(s: string): Map<string, number> {
  const m = new Map<string, number>();
  for (const kv of s.split(',')) {
    const [k, v] = kv.split('=');
    if (!k || v === undefined || !/^\d+$/.test(v))
      throw new GuardError('BW_ERR_AUTH_HASH_FORMAT', `bad parameter ${kv}`);
    m.set(k, Number(v));
  }
  return m;
}

async function verifyScrypt(password: Buffer, parts: string[]): Promise<boolean> {
  // $scrypt$ln=15,r=8,p=1$<salt>$<hash>  (PHC string format; passlib writes the same)
  if (parts.length !== 5) throw new GuardError('BW_ERR_AUTH_HASH_FORMAT', 'scrypt: expected 4 fields');
  const p = parseParams(parts[2]!);
  const ln = p.get('ln');
  const r = p.get('r') ?? 8;
  const par = p.get('p') ?? 1;
  if (ln === undefined || ln < 1 || ln > MAX_SCRYPT_LN || r < 1 || par < 1 || r * par > MAX_SCRYPT_RP) {
    throw new GuardError('BW_ERR_AUTH_HASH_FORMAT', 'scrypt: parameters out of range');
  }
  const salt = b64decode(parts[3]!);
  const expected = b64decode(parts[4]!);
  if (expected.length < 16) throw new GuardError('BW_ERR_AUTH_HASH_FORMAT', 'scrypt: hash too short');
  const N = 2 ** ln;
  const actual = await scryptAsync(password, salt, expected.length, {
    N,
    r,
    p: par,
    maxmem: 256 * N * r + (1 << 20),
  });
  return equal(actual, expected);
}

const pbkdf2Digests: Record<string, string> = {
  pbkdf2: 'sha1',
  'pbkdf2-sha256': 'sha256',
  'pbkdf2-sha512': 'sha512',
};

async function verifyPbkdf2(password: Buffer, parts: string[]): Promise<boolean> {
  // PHC:    $pbkdf2-sha256$i=100000,l=32$<salt>$<hash>
  // passlib $pbkdf2-sha256$29000$<ab64 salt>$<ab64 hash>
  if (parts.length !== 5) throw new GuardError('BW_ERR_AUTH_HASH_FORMAT', 'pbkdf2: expected 4 fields');
  const digest = pbkdf2Digests[parts[1]!]!;
  const params = parts[2]!;
  const iterations = /^\d+$/.test(params) ? Number(params) : parseParams(params).get('i');
  if (!iterations || iterations > MAX_PBKDF2_ITERATIONS) {
    throw new GuardError('BW_ERR_AUTH_HASH_FORMAT', 'pbkdf2: iterations out of range');
  }
  const salt = b64decode(parts[3]!);
  const expected = b64decode(parts[4]!);
  const actual = await pbkdf2Async(password, salt, iterations, expected.length, digest);
  return equal(actual, expected);
}

async function verifyMosquitto7(password: Buffer, parts: string[]): Promise<boolean> {
  // mosquitto_passwd: $7$<iterations>$<base64 salt>$<base64 hash>, PBKDF2-HMAC-SHA512 over the
  // decoded salt, 64-byte hash (mosquitto password_mosq.c, pw__hash_sha512_pbkdf2).
  if (parts.length !== 5) throw new GuardError('BW_ERR_AUTH_HASH_FORMAT', '$7$: expected 4 fields');
  const iterations = Number(parts[2]);
  if (!Number.isInteger(iterations) || iterations < 1 || iterations > MAX_PBKDF2_ITERATIONS) {
    throw new GuardError('BW_ERR_AUTH_HASH_FORMAT', '$7$: iterations out of range');
  }
  const salt = b64decode(parts[3]!);
  const expected = b64decode(parts[4]!);
  const actual = await pbkdf2Async(password, salt, iterations, expected.length, 'sha512');
  return equal(actual, expected);
}

function verifyMosquitto6(password: Buffer, parts: string[]): boolean {
  // Older mosquitto_passwd: $6$<base64 salt>$<base64 sha512(password || salt)>.
  if (parts.length !== 4) throw new GuardError('BW_ERR_AUTH_HASH_FORMAT', '$6$: expected 3 fields');
  const salt = b64decode(parts[2]!);
  const expected = b64decode(parts[3]!);
  return equal(createHash('sha512').update(password).update(salt).digest(), expected);
}

function verifySaltedDigest(password: Buffer, hex: string, o: SaltedDigestOptions): boolean {
  const expected = Buffer.from(hex, 'hex');
  const algorithm = expected.length === 64 ? 'sha512' : expected.length === 32 ? 'sha256' : null;
  if (!algorithm) throw new GuardError('BW_ERR_AUTH_HASH_FORMAT', 'hex digest of unexpected length');
  if (algorithm !== o.algorithm)
    throw new GuardError('BW_ERR_AUTH_HASH_FORMAT', `digest is not ${o.algorithm}`);
  const h = createHash(algorithm);
  const salt = o.saltPosition === 'disable' ? '' : (o.salt ?? '');
  // EMQX: prefix = hash(salt ++ password), suffix = hash(password ++ salt); hex compared case-insensitively.
  if (o.saltPosition === 'prefix') h.update(salt, 'utf8').update(password);
  else h.update(password).update(salt, 'utf8');
  return equal(h.digest(), expected);
}

/**
 * Verifies `password` against a stored hash in any supported format: PHC scrypt, PHC/passlib
 * pbkdf2 (sha1/sha256/sha512), bcrypt ($2a$/$2b$/$2y$), Mosquitto `$7$` and `$6$`, and bare hex
 * sha256/sha512 digests salted EMQX-style. Throws GuardError BW_ERR_AUTH_HASH_FORMAT for anything
 * else — an unreadable hash is a configuration problem, never a silent deny.
 */
export async function verifyPassword(
  password: Buffer,
  stored: string,
  salted: SaltedDigestOptions = { algorithm: 'sha256', saltPosition: 'disable' },
): Promise<boolean> {
  if (stored.startsWith('$')) {
    const parts = stored.split('$');
    const id = parts[1] ?? '';
    if (id === 'scrypt') return verifyScrypt(password, parts);
    if (id in pbkdf2Digests) return verifyPbkdf2(password, parts);
    if (id === '7') return verifyMosquitto7(password, parts);
    if (id === '6') return verifyMosquitto6(password, parts);
    if (id === '2a' || id === '2b' || id === '2y') {
      const cost = Number(parts[2]);
      if (parts.length !== 4 || !(cost >= 4 && cost <= MAX_BCRYPT_COST)) {
        throw new GuardError('BW_ERR_AUTH_HASH_FORMAT', 'bcrypt: malformed or cost out of range');
      }
      return bcrypt.compare(password.toString('utf8'), stored);
    }
    throw new GuardError('BW_ERR_AUTH_HASH_FORMAT', `unknown scheme $${id}$`);
  }
  if (/^[0-9a-fA-F]+$/.test(stored)) return verifySaltedDigest(password, stored, salted);
  throw new GuardError('BW_ERR_AUTH_HASH_FORMAT', 'unrecognised hash');
}

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
