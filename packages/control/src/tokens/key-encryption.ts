/**
 * Signing keys are stored encrypted (AES-256-GCM) with a key-encryption key (KEK) kept outside
 * the database: `<dataDir>/signing-keys.kek` (32 random bytes, base64, mode 0600), created at
 * first start. A copy of the database alone (a backup, a read-only SQL injection, a shared
 * PostgreSQL) then does not yield the private keys. Several control-plane processes sharing one
 * PostgreSQL must share the KEK: pass it as `keyEncryptionKey` (e.g. from a secret store).
 *
 * The kid is the GCM additional data: a ciphertext moved to another row fails to decrypt.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ApiError } from '../errors.js';

export const KEK_FILE = 'signing-keys.kek';

/** Reads `<dataDir>/signing-keys.kek`, creating it (mode 0600) if it does not exist. */
export function loadOrCreateKek(dataDir: string): Buffer {
  const file = join(dataDir, KEK_FILE);
  try {
    return parseKek(readFileSync(file, 'utf8'), file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const kek = randomBytes(32);
  // 'wx': never overwrite a KEK another process just created (that would orphan its keys).
  writeFileSync(file, `${kek.toString('base64')}\n`, { mode: 0o600, flag: 'wx' });
  chmodSync(file, 0o600); // the umask may have masked the mode on creation
  return kek;
}

function parseKek(text: string, source: string): Buffer {
  const kek = Buffer.from(text.trim(), 'base64');
  if (kek.length !== 32) {
    throw new ApiError('BW_ERR_SIGNING_KEY', `${source} must hold 32 bytes, base64-encoded`);
  }
  return kek;
}

export function encryptPrivateKey(kek: Buffer, kid: string, plaintext: string): string {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', kek, iv);
  cipher.setAAD(Buffer.from(kid, 'utf8'));
  const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
  return ['v1', iv, cipher.getAuthTag(), body]
    .map((p) => (typeof p === 'string' ? p : p.toString('base64url')))
    .join('.');
}

export function decryptPrivateKey(kek: Buffer, kid: string, stored: string): string {
  const [version, iv, tag, body] = stored.split('.');
  if (version !== 'v1' || !iv || !tag || body === undefined) {
    throw new ApiError('BW_ERR_SIGNING_KEY', `signing key ${kid}: unknown storage format`);
  }
  try {
    const decipher = createDecipheriv('aes-256-gcm', kek, Buffer.from(iv, 'base64url'));
    decipher.setAAD(Buffer.from(kid, 'utf8'));
    decipher.setAuthTag(Buffer.from(tag, 'base64url'));
    return Buffer.concat([decipher.update(Buffer.from(body, 'base64url')), decipher.final()]).toString(
      'utf8',
    );
  } catch (err) {
    throw new ApiError(
      'BW_ERR_SIGNING_KEY',
      `signing key ${kid}: cannot decrypt (wrong key-encryption key?)`,
      {
        cause: err,
      },
    );
  }
}
