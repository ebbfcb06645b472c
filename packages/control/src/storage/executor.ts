/** The SQL dialects the repositories are written for (placeholders, upserts, advisory locks). */
export type StorageDialect = 'sqlite' | 'postgres';

/**
 * What the repositories need from a driver: run one statement. SQL is written once with `$1`
 * placeholders (PostgreSQL's); the SQLite driver rewrites them. Integers may come back as strings
 * from PostgreSQL (BIGINT), so repositories convert with Number().
 */
export interface SqlExecutor {
  readonly dialect: StorageDialect;
  query<R = Record<string, unknown>>(sql: string, params?: readonly unknown[]): Promise<R[]>;
  /** Returns the number of rows changed. */
  execute(sql: string, params?: readonly unknown[]): Promise<number>;
}

/** Unique-violation detection for both drivers (SQLite extended code, PostgreSQL SQLSTATE 23505). */
export function isUniqueViolation(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return code === '23505' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY' || code === 'SQLITE_CONSTRAINT_UNIQUE';
}
