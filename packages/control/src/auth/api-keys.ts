/**
 * API keys: `bwk_` + 256 random bits (base64url). Only sha256(key) is stored: the key has full
 * entropy, so a fast hash is enough (no dictionary to slow down), and lookup is one indexed read
 * per request. The `bwk_` prefix makes leaked keys greppable by secret scanners.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { ApiKeyRole } from './model.js';

export function generateApiKey(): { id: string; key: string; keyHash: string } {
  const key = `bwk_${randomBytes(32).toString('base64url')}`;
  return { id: `key_${randomBytes(8).toString('hex')}`, key, keyHash: hashApiKey(key) };
}

export function hashApiKey(key: string): string {
  return createHash('sha256').update(key, 'utf8').digest('hex');
}

const rank = { viewer: 0, operator: 1, admin: 2 } as const satisfies Record<ApiKeyRole, number>;

/**
 * Roles are ordered: viewer reads; operator also changes devices and mints tokens (and, next,
 * runs the kill switches: an on-call operator must not need an admin at 3 a.m.); admin also
 * manages API keys and signing keys.
 */
export function roleAllows(role: ApiKeyRole, required: ApiKeyRole): boolean {
  return rank[role] >= rank[required];
}
