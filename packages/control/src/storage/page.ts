/** One page of a repository listing (keyset pagination: stable while rows are added). */
export interface Page<T> {
  items: T[];
  /** Opaque; pass back as `cursor` for the next page. null on the last page. */
  nextCursor: string | null;
}
