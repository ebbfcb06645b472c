/**
 * What a feature asks of storage: the repositories it uses, and a transaction over them.
 *
 * Each feature names its own subset (`Transactional<{ campaigns: CampaignRepository; … }>`), so
 * it depends on interfaces it owns rather than on the aggregate in storage/types.ts. That
 * aggregate imports every feature's repository interface; a feature importing it back would be
 * an import cycle (issue 12). `ControlStorage` satisfies every such subset.
 */
export type Transactional<R> = R & {
  /**
   * Runs `fn` in one transaction: all of its writes commit, or none. Use only the repositories
   * passed to `fn` inside it (the SQLite driver serialises access, so calling the outer ones
   * from inside would wait for the transaction to end).
   */
  transaction<T>(fn: (repos: R) => Promise<T>): Promise<T>;
};
