/** Signing keys as stored: the record and the repository contract (SQL in storage/sql-repositories.ts). */

export interface SigningKeyRecord {
  kid: string;
  alg: string;
  /** Public JWK (JSON). */
  publicJwk: string;
  /** Private key, encrypted with the data dir's key-encryption key (tokens/key-encryption.ts). */
  privateKey: string;
  createdAt: number;
  /** When rotation replaced it; null for the active key. */
  retiredAt: number | null;
  /** Latest `exp` (ms) of a token it signed: it stays in the JWKS until then. */
  lastExpiry: number;
}

export interface SigningKeyRepository {
  insert(key: SigningKeyRecord): Promise<void>;
  list(): Promise<SigningKeyRecord[]>;
  retire(kid: string, at: number): Promise<void>;
  /** last_expiry = max(last_expiry, exp). */
  extendExpiry(kid: string, exp: number): Promise<void>;
}
