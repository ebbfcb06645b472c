/**
 * The subscription index: which (client, filter) subscriptions match a published topic.
 *
 * Layout (why): most filters in a fleet are exact topics (`devices/42/cmd`), so filters without
 * wildcards live in one Map keyed by the whole filter and a PUBLISH finds them with a single lookup
 * of the topic string — no split, no allocation. Only filters with `+`/`#` go into a trie of levels;
 * the trie walk is skipped entirely while no wildcard filter exists. The walk reads the topic by
 * '/' indices (no split into an array); the one allocation it cannot avoid is the level substring
 * used as a Map key, made only where a node has literal children.
 *
 * Subscribers of one filter are kept in parallel arrays (keys/values) with an index Map for O(1)
 * swap-remove, so visiting them is a plain indexed loop. Empty trie nodes are pruned on remove, so
 * subscribe/unsubscribe churn leaves nothing behind.
 *
 * A client with overlapping subscriptions (`a/+` and `a/#`) is visited once per matching filter;
 * deduplication (MQTT 5.0 §4.7.2 allows either) is the caller's choice.
 */

const DOLLAR = 0x24; // '$'

export interface SharedGroup<T> {
  readonly group: string;
  readonly filter: string;
  readonly members: { key: string; value: T }[];
  /** Round-robin position, owned by the caller that picks a member. */
  cursor: number;
}

export interface MatchVisitor<T> {
  subscriber(key: string, value: T): void;
  sharedGroup(group: SharedGroup<T>): void;
}

class SharedGroupImpl<T> implements SharedGroup<T> {
  readonly group: string;
  readonly filter: string;
  readonly members: { key: string; value: T }[] = [];
  cursor = 0;

  constructor(group: string, filter: string) {
    this.group = group;
    this.filter = filter;
  }

  indexOf(key: string): number {
    const m = this.members;
    for (let i = 0; i < m.length; i++) if (m[i]?.key === key) return i;
    return -1;
  }
}

/** Everything subscribed to one filter string. */
class FilterEntry<T> {
  readonly keys: string[] = [];
  readonly values: T[] = [];
  readonly index = new Map<string, number>();
  /** Shared groups on this filter; null until the first one (most filters never have one). */
  groups: Map<string, SharedGroupImpl<T>> | null = null;
  /** Same groups as an array, for an allocation-free visit loop. */
  groupList: SharedGroupImpl<T>[] = [];

  isEmpty(): boolean {
    return this.keys.length === 0 && this.groupList.length === 0;
  }
}

class TrieNode<T> {
  children: Map<string, TrieNode<T>> | null = null;
  plus: TrieNode<T> | null = null;
  hash: TrieNode<T> | null = null;
  entry: FilterEntry<T> | null = null;

  isEmpty(): boolean {
    return (
      this.entry === null &&
      this.plus === null &&
      this.hash === null &&
      (this.children === null || this.children.size === 0)
    );
  }
}

function hasWildcard(filter: string): boolean {
  return filter.includes('+') || filter.includes('#');
}

function visitEntry<T>(entry: FilterEntry<T>, visitor: MatchVisitor<T>): void {
  const keys = entry.keys;
  const values = entry.values;
  for (let i = 0; i < keys.length; i++) visitor.subscriber(keys[i] as string, values[i] as T);
  const groups = entry.groupList;
  for (let i = 0; i < groups.length; i++) visitor.sharedGroup(groups[i] as SharedGroupImpl<T>);
}

/**
 * Visits every wildcard filter under `node` that matches the topic levels starting at `start`.
 * `start > topic.length` means every level is consumed. `root` is true only at the first level,
 * where [MQTT-4.7.2-1] keeps `+` and `#` away from topics starting with '$'.
 */
function walk<T>(
  node: TrieNode<T>,
  topic: string,
  start: number,
  root: boolean,
  visitor: MatchVisitor<T>,
): void {
  if (start > topic.length) {
    if (node.entry !== null) visitEntry(node.entry, visitor);
    // [MQTT-4.7.1-2] '#' also matches the parent level: `sport/#` matches `sport`.
    if (node.hash?.entry) visitEntry(node.hash.entry, visitor);
    return;
  }
  const wildcardOk = !root || topic.charCodeAt(0) !== DOLLAR;
  if (wildcardOk && node.hash?.entry) visitEntry(node.hash.entry, visitor);
  let end = topic.indexOf('/', start);
  if (end === -1) end = topic.length;
  if (wildcardOk && node.plus !== null) walk(node.plus, topic, end + 1, false, visitor);
  const children = node.children;
  if (children !== null && children.size > 0) {
    const child = children.get(topic.slice(start, end));
    if (child !== undefined) walk(child, topic, end + 1, false, visitor);
  }
}

export class SubscriptionTree<T> {
  /** Filters without wildcards, keyed by the whole filter. */
  readonly #exact = new Map<string, FilterEntry<T>>();
  readonly #root = new TrieNode<T>();
  /** Number of distinct wildcard filters in the trie; 0 lets match() skip the walk. */
  #wildcardFilters = 0;
  #size = 0;

  /** Number of (key, filter, group) subscriptions. */
  get size(): number {
    return this.#size;
  }

  /** Trie nodes below the root plus exact filters; for leak tests. @internal */
  get nodeCount(): number {
    let n = this.#exact.size;
    const stack: TrieNode<T>[] = [this.#root];
    while (stack.length > 0) {
      const node = stack.pop() as TrieNode<T>;
      if (node.plus) stack.push(node.plus);
      if (node.hash) stack.push(node.hash);
      if (node.children) for (const c of node.children.values()) stack.push(c);
      if (node !== this.#root) n++;
    }
    return n;
  }

  /**
   * Adds or replaces `key`'s subscription to `filter` (a validated filter without the `$share/`
   * prefix). Returns true if it is new, false if it replaced that key's subscription on the same
   * filter and group.
   */
  add(key: string, filter: string, value: T, shareGroup: string | null = null): boolean {
    let entry: FilterEntry<T>;
    if (hasWildcard(filter)) {
      const node = this.#nodeFor(filter);
      if (node.entry === null) {
        node.entry = new FilterEntry<T>();
        this.#wildcardFilters++;
      }
      entry = node.entry;
    } else {
      let e = this.#exact.get(filter);
      if (e === undefined) {
        e = new FilterEntry<T>();
        this.#exact.set(filter, e);
      }
      entry = e;
    }
    const added =
      shareGroup === null ? addPlain(entry, key, value) : addShared(entry, filter, shareGroup, key, value);
    if (added) this.#size++;
    return added;
  }

  /** Removes `key`'s subscription; returns false if there was none. Prunes emptied nodes. */
  remove(key: string, filter: string, shareGroup: string | null = null): boolean {
    if (!hasWildcard(filter)) {
      const entry = this.#exact.get(filter);
      if (entry === undefined) return false;
      const removed = shareGroup === null ? removePlain(entry, key) : removeShared(entry, shareGroup, key);
      if (!removed) return false;
      if (entry.isEmpty()) this.#exact.delete(filter);
      this.#size--;
      return true;
    }
    // Find the node, remembering the path so emptied nodes can be unlinked bottom-up.
    const path: TrieNode<T>[] = [];
    const levels = filter.split('/');
    let node: TrieNode<T> | null = this.#root;
    for (const level of levels) {
      path.push(node);
      if (level === '+') node = node.plus;
      else if (level === '#') node = node.hash;
      else node = node.children?.get(level) ?? null;
      if (node === null) return false;
    }
    const entry = node.entry;
    if (entry === null) return false;
    const removed = shareGroup === null ? removePlain(entry, key) : removeShared(entry, shareGroup, key);
    if (!removed) return false;
    this.#size--;
    if (entry.isEmpty()) {
      node.entry = null;
      this.#wildcardFilters--;
    }
    for (let i = levels.length - 1; i >= 0 && node.isEmpty(); i--) {
      const parent = path[i] as TrieNode<T>;
      const level = levels[i] as string;
      if (level === '+') parent.plus = null;
      else if (level === '#') parent.hash = null;
      else {
        parent.children?.delete(level);
        if (parent.children?.size === 0) parent.children = null;
      }
      node = parent;
    }
    return true;
  }

  /** Visits every subscription whose filter matches `topic` (a valid topic name). */
  match(topic: string, visitor: MatchVisitor<T>): void {
    const exact = this.#exact.get(topic);
    if (exact !== undefined) visitEntry(exact, visitor);
    if (this.#wildcardFilters > 0) walk(this.#root, topic, 0, true, visitor);
  }

  #nodeFor(filter: string): TrieNode<T> {
    let node = this.#root;
    let start = 0;
    while (start <= filter.length) {
      let end = filter.indexOf('/', start);
      if (end === -1) end = filter.length;
      const level = filter.slice(start, end);
      if (level === '+') {
        node.plus ??= new TrieNode<T>();
        node = node.plus;
      } else if (level === '#') {
        node.hash ??= new TrieNode<T>();
        node = node.hash;
      } else {
        node.children ??= new Map();
        let child = node.children.get(level);
        if (child === undefined) {
          child = new TrieNode<T>();
          node.children.set(level, child);
        }
        node = child;
      }
      start = end + 1;
    }
    return node;
  }
}

function addPlain<T>(entry: FilterEntry<T>, key: string, value: T): boolean {
  const i = entry.index.get(key);
  if (i !== undefined) {
    entry.values[i] = value;
    return false;
  }
  entry.index.set(key, entry.keys.length);
  entry.keys.push(key);
  entry.values.push(value);
  return true;
}

function removePlain<T>(entry: FilterEntry<T>, key: string): boolean {
  const i = entry.index.get(key);
  if (i === undefined) return false;
  // Swap-remove: move the last subscriber into the hole.
  const last = entry.keys.length - 1;
  if (i !== last) {
    const lastKey = entry.keys[last] as string;
    entry.keys[i] = lastKey;
    entry.values[i] = entry.values[last] as T;
    entry.index.set(lastKey, i);
  }
  entry.keys.pop();
  entry.values.pop();
  entry.index.delete(key);
  return true;
}

function addShared<T>(
  entry: FilterEntry<T>,
  filter: string,
  groupName: string,
  key: string,
  value: T,
): boolean {
  entry.groups ??= new Map();
  let group = entry.groups.get(groupName);
  if (group === undefined) {
    group = new SharedGroupImpl<T>(groupName, filter);
    entry.groups.set(groupName, group);
    entry.groupList.push(group);
  }
  const i = group.indexOf(key);
  if (i !== -1) {
    (group.members[i] as { key: string; value: T }).value = value;
    return false;
  }
  group.members.push({ key, value });
  return true;
}

function removeShared<T>(entry: FilterEntry<T>, groupName: string, key: string): boolean {
  const group = entry.groups?.get(groupName);
  if (group === undefined) return false;
  const i = group.indexOf(key);
  if (i === -1) return false;
  group.members.splice(i, 1);
  // Keep the round-robin position pointing at the member that would have been next.
  if (group.cursor > i) group.cursor--;
  if (group.members.length === 0) {
    entry.groups?.delete(groupName);
    entry.groupList.splice(entry.groupList.indexOf(group), 1);
    if (entry.groups?.size === 0) entry.groups = null;
  } else if (group.cursor >= group.members.length) {
    group.cursor = 0;
  }
  return true;
}
