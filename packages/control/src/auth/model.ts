/** API keys as stored: records, roles and the repository contract (SQL in storage/sql-repositories.ts). */

export const apiKeyRoles = ['admin', 'operator', 'viewer'] as const;
export type ApiKeyRole = (typeof apiKeyRoles)[number];

export interface ApiKeyRecord {
  id: string;
  name: string;
  role: ApiKeyRole;
  /** sha256 (hex) of the full key; the key itself is never stored. */
  keyHash: string;
  createdAt: number;
  /** Key id of the admin that created it; null for the bootstrap key. */
  createdBy: string | null;
  revokedAt: number | null;
  lastUsedAt: number | null;
}

export interface ApiKeyRepository {
  insert(key: ApiKeyRecord): Promise<void>;
  findByHash(keyHash: string): Promise<ApiKeyRecord | null>;
  get(id: string): Promise<ApiKeyRecord | null>;
  list(): Promise<ApiKeyRecord[]>;
  /** Returns false when the key does not exist or is already revoked. */
  revoke(id: string, at: number): Promise<boolean>;
  touch(id: string, at: number): Promise<void>;
  count(): Promise<number>;
}
