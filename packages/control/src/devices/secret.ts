/**
 * Device secrets: `bws_` + 256 random bits, shown once at creation, stored as a PHC scrypt
 * string (`$scrypt$ln=…,r=…,p=…$salt$hash`, the format the guard's password verifier and
 * passlib read).
 *
 * Cost: ln=10 (N=1024, 1 MiB, ~1-2 ms) instead of the ln=15 used for human passwords. A slow
 * KDF protects guessable passwords; these secrets are 256-bit random, so no work factor changes
 * whether a stolen hash can be brute-forced (it cannot), while ln=15 would make a 10,000-row
 * bulk import take minutes. scrypt rather than sha256 keeps one hash format across credentials.
 */
import { randomBytes, scrypt, timingSafeEqual } from 'node:crypto';

const LN = 10;
const R = 8;
const P = 1;
const KEYLEN = 32;
// Bounds for hashes read back from storage, so a tampered row cannot make verification costly.
const MAX_LN = 16;

function scryptAsync(secret: string, salt: Buffer, ln: number, r: number, p: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    scrypt(secret, salt, KEYLEN, { N: 2 ** ln, r, p, maxmem: 256 * 2 ** ln * r + 1024 * 1024 }, (err, key) =>
      err ? reject(err) : resolve(key),
    );
  });
}

export function generateDeviceSecret(): string {
  return `bws_${randomBytes(32).toString('base64url')}`;
}

export async function hashDeviceSecret(secret: string): Promise<string> {
  const salt = randomBytes(16);
  const hash = await scryptAsync(secret, salt, LN, R, P);
  const b64 = (b: Buffer) => b.toString('base64').replace(/=+$/, '');
  return `$scrypt$ln=${LN},r=${R},p=${P}$${b64(salt)}$${b64(hash)}`;
}

export async function verifyDeviceSecret(secret: string, phc: string): Promise<boolean> {
  const m = /^\$scrypt\$ln=(\d+),r=(\d+),p=(\d+)\$([A-Za-z0-9+/]+)\$([A-Za-z0-9+/]+)$/.exec(phc);
  if (!m) return false;
  const ln = Number(m[1]);
  const r = Number(m[2]);
  const p = Number(m[3]);
  if (ln > MAX_LN || r > 32 || p > 4) return false;
  const expected = Buffer.from(m[5]!, 'base64');
  const actual = await scryptAsync(secret, Buffer.from(m[4]!, 'base64'), ln, r, p);
  return expected.length === actual.length && timingSafeEqual(expected, actual);
}

/**
 * A hash of a secret nobody has, verified when the device id is unknown, so "no such device"
 * and "wrong secret" take the same time and an attacker cannot enumerate ids by timing.
 */
export function dummySecretHash(): Promise<string> {
  dummy ??= hashDeviceSecret(randomBytes(32).toString('base64url'));
  return dummy;
}
let dummy: Promise<string> | undefined;
