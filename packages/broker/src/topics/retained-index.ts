/**
 * Retained messages indexed by topic, matched against a subscription's filter.
 *
 * A Map gives get/set/delete by exact topic; a trie of topic levels beside it lets a filter reach
 * only the topics it can match: a filter without wildcards is one Map lookup, `a/+/c` walks the
 * children of `a` only, and `#` visits a subtree. Emptied trie nodes are pruned on delete.
 */

const DOLLAR = 0x24; // '$'

class RetainedNode<R> {
  children: Map<string, RetainedNode<R>> | null = null;
  /** The full topic, set while this node holds a retained message. */
  topic: string | null = null;
  value: R | undefined = undefined;

  isEmpty(): boolean {
    return this.topic === null && (this.children === null || this.children.size === 0);
  }
}

/** Visits `node` and every node below it holding a value; `root` applies [MQTT-4.7.2-1]. */
function visitSubtree<R>(
  node: RetainedNode<R>,
  root: boolean,
  visit: (topic: string, value: R) => void,
): void {
  if (node.topic !== null) visit(node.topic, node.value as R);
  if (node.children === null) return;
  for (const [level, child] of node.children) {
    if (root && level.charCodeAt(0) === DOLLAR) continue;
    visitSubtree(child, false, visit);
  }
}

/**
 * Visits every retained topic under `node` matching the filter levels starting at `start`
 * (`start > filter.length`: the filter is consumed).
 */
function walk<R>(
  node: RetainedNode<R>,
  filter: string,
  start: number,
  root: boolean,
  visit: (topic: string, value: R) => void,
): void {
  if (start > filter.length) {
    if (node.topic !== null) visit(node.topic, node.value as R);
    return;
  }
  let end = filter.indexOf('/', start);
  if (end === -1) end = filter.length;
  const first = filter.charCodeAt(start);
  if (first === 0x23 /* '#' */ && end === start + 1) {
    // [MQTT-4.7.1-2] '#' matches the parent level and every level below it; but [MQTT-4.7.2-1]
    // a leading '#' does not match topics starting with '$'. The parent (this node) is the topic
    // without its last '/'-level, so for a non-root node it is a match in its own right.
    if (!root && node.topic !== null) visit(node.topic, node.value as R);
    if (node.children === null) return;
    for (const [level, child] of node.children) {
      if (root && level.charCodeAt(0) === DOLLAR) continue;
      visitSubtree(child, false, visit);
    }
    return;
  }
  if (node.children === null) return;
  if (first === 0x2b /* '+' */ && end === start + 1) {
    for (const [level, child] of node.children) {
      if (root && level.charCodeAt(0) === DOLLAR) continue;
      walk(child, filter, end + 1, false, visit);
    }
    return;
  }
  const child = node.children.get(filter.slice(start, end));
  if (child !== undefined) walk(child, filter, end + 1, false, visit);
}

export class RetainedIndex<R> {
  readonly #byTopic = new Map<string, RetainedNode<R>>();
  readonly #root = new RetainedNode<R>();

  get size(): number {
    return this.#byTopic.size;
  }

  /** Trie nodes below the root; for leak tests. @internal */
  get nodeCount(): number {
    let n = 0;
    const stack: RetainedNode<R>[] = [this.#root];
    while (stack.length > 0) {
      const node = stack.pop() as RetainedNode<R>;
      if (node.children) for (const c of node.children.values()) stack.push(c);
      if (node !== this.#root) n++;
    }
    return n;
  }

  /** Every retained message, `$` topics included (purges, exports); not for the publish path. */
  entries(): IterableIterator<[string, R]> {
    return this.#entries();
  }

  *#entries(): IterableIterator<[string, R]> {
    for (const [topic, node] of this.#byTopic) yield [topic, node.value as R];
  }

  set(topic: string, value: R): void {
    const existing = this.#byTopic.get(topic);
    if (existing !== undefined) {
      existing.value = value;
      return;
    }
    let node = this.#root;
    let start = 0;
    while (start <= topic.length) {
      let end = topic.indexOf('/', start);
      if (end === -1) end = topic.length;
      const level = topic.slice(start, end);
      node.children ??= new Map();
      let child = node.children.get(level);
      if (child === undefined) {
        child = new RetainedNode<R>();
        node.children.set(level, child);
      }
      node = child;
      start = end + 1;
    }
    node.topic = topic;
    node.value = value;
    this.#byTopic.set(topic, node);
  }

  get(topic: string): R | undefined {
    return this.#byTopic.get(topic)?.value;
  }

  delete(topic: string): boolean {
    const node = this.#byTopic.get(topic);
    if (node === undefined) return false;
    this.#byTopic.delete(topic);
    node.topic = null;
    node.value = undefined;
    // Unlink emptied nodes bottom-up along the topic's path.
    const levels = topic.split('/');
    const path: RetainedNode<R>[] = [this.#root];
    for (let i = 0; i < levels.length - 1; i++) {
      path.push((path[i] as RetainedNode<R>).children?.get(levels[i] as string) as RetainedNode<R>);
    }
    let current = node;
    for (let i = levels.length - 1; i >= 0 && current.isEmpty(); i--) {
      const parent = path[i] as RetainedNode<R>;
      parent.children?.delete(levels[i] as string);
      if (parent.children?.size === 0) parent.children = null;
      current = parent;
    }
    return true;
  }

  /** Visits every retained message whose topic matches `filter` (a valid, non-shared filter). */
  match(filter: string, visit: (topic: string, value: R) => void): void {
    if (!filter.includes('+') && !filter.includes('#')) {
      const node = this.#byTopic.get(filter);
      if (node !== undefined) visit(filter, node.value as R);
      return;
    }
    walk(this.#root, filter, 0, true, visit);
  }
}
