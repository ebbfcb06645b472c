import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type MatchVisitor, type SharedGroup, SubscriptionTree } from '../../src/topics/subscription-tree.js';
import { naiveMatches, randomFilter, randomTopic, seededRandom } from './reference.js';

/** Collects visits as sorted strings, so tests compare sets. */
class Collector<T> implements MatchVisitor<T> {
  readonly subscribers: string[] = [];
  readonly groups: SharedGroup<T>[] = [];
  subscriber(key: string, value: T): void {
    this.subscribers.push(`${key}=${String(value)}`);
  }
  sharedGroup(group: SharedGroup<T>): void {
    this.groups.push(group);
  }
}

function matchKeys<T>(tree: SubscriptionTree<T>, topic: string): string[] {
  const c = new Collector<T>();
  tree.match(topic, c);
  return c.subscribers.sort();
}

describe('SubscriptionTree', () => {
  test('exact filters match only their own topic', () => {
    const tree = new SubscriptionTree<number>();
    assert.equal(tree.add('c1', 'a/b', 1), true);
    assert.equal(tree.add('c2', 'a/b', 2), true);
    assert.equal(tree.add('c3', 'a/c', 3), true);
    assert.deepEqual(matchKeys(tree, 'a/b'), ['c1=1', 'c2=2']);
    assert.deepEqual(matchKeys(tree, 'a/b/c'), []);
    assert.deepEqual(matchKeys(tree, 'a'), []);
    assert.equal(tree.size, 3);
  });

  test('adding the same key and filter again replaces the value', () => {
    const tree = new SubscriptionTree<number>();
    assert.equal(tree.add('c1', 'a/+', 1), true);
    assert.equal(tree.add('c1', 'a/+', 2), false);
    assert.equal(tree.add('c1', 'a/b', 3), true);
    assert.equal(tree.add('c1', 'a/b', 4), false);
    assert.equal(tree.size, 2);
    assert.deepEqual(matchKeys(tree, 'a/b'), ['c1=2', 'c1=4']);
  });

  test('[MQTT-4.7.1-2] # matches any number of levels including the parent', () => {
    const tree = new SubscriptionTree<string>();
    tree.add('c', 'sport/tennis/player1/#', 'x');
    for (const t of [
      'sport/tennis/player1',
      'sport/tennis/player1/ranking',
      'sport/tennis/player1/score/wimbledon',
    ]) {
      assert.deepEqual(matchKeys(tree, t), ['c=x'], t);
    }
    assert.deepEqual(matchKeys(tree, 'sport/tennis/player2'), []);
    const root = new SubscriptionTree<string>();
    root.add('c', 'sport/#', 'x');
    assert.deepEqual(matchKeys(root, 'sport'), ['c=x']);
    assert.deepEqual(matchKeys(root, 'sports'), []);
  });

  test('[MQTT-4.7.1-3] + matches exactly one level, including an empty one', () => {
    const tree = new SubscriptionTree<string>();
    tree.add('c', 'sport/tennis/+', 'x');
    assert.deepEqual(matchKeys(tree, 'sport/tennis/player1'), ['c=x']);
    assert.deepEqual(matchKeys(tree, 'sport/tennis/player1/ranking'), []);
    assert.deepEqual(matchKeys(tree, 'sport/tennis/'), ['c=x']);
    assert.deepEqual(matchKeys(tree, 'sport/tennis'), []);
    const t2 = new SubscriptionTree<string>();
    t2.add('c', '+/+', 'x');
    t2.add('d', '/+', 'y');
    assert.deepEqual(matchKeys(t2, '/finance'), ['c=x', 'd=y']);
    assert.deepEqual(matchKeys(t2, 'finance'), []);
  });

  test('[MQTT-4.7.2-1] topics starting with $ are not matched by a leading wildcard', () => {
    const tree = new SubscriptionTree<string>();
    tree.add('all', '#', 'x');
    tree.add('plus', '+/monitor/Clients', 'x');
    tree.add('sys', '$SYS/#', 'x');
    tree.add('sysplus', '$SYS/monitor/+', 'x');
    assert.deepEqual(matchKeys(tree, '$SYS/monitor/Clients'), ['sys=x', 'sysplus=x']);
    assert.deepEqual(matchKeys(tree, 'a/monitor/Clients'), ['all=x', 'plus=x']);
  });

  test('remove returns whether a subscription existed and updates size', () => {
    const tree = new SubscriptionTree<number>();
    tree.add('c1', 'a/#', 1);
    tree.add('c2', 'a/#', 2);
    assert.equal(tree.remove('c3', 'a/#'), false);
    assert.equal(tree.remove('c1', 'a/+'), false);
    assert.equal(tree.remove('c1', 'a/#'), true);
    assert.equal(tree.remove('c1', 'a/#'), false);
    assert.equal(tree.size, 1);
    assert.deepEqual(matchKeys(tree, 'a/b'), ['c2=2']);
  });

  test('shared groups are visited once per matching (group, filter) with all members', () => {
    const tree = new SubscriptionTree<number>();
    assert.equal(tree.add('c1', 'jobs/+', 1, 'workers'), true);
    assert.equal(tree.add('c2', 'jobs/+', 2, 'workers'), true);
    assert.equal(tree.add('c2', 'jobs/+', 5, 'workers'), false);
    tree.add('c3', 'jobs/+', 3, 'other');
    tree.add('c1', 'jobs/+', 4); // a non-shared subscription on the same filter is separate
    assert.equal(tree.size, 4);
    const c = new Collector<number>();
    tree.match('jobs/1', c);
    assert.deepEqual(c.subscribers, ['c1=4']);
    const byName = new Map(c.groups.map((g) => [g.group, g]));
    assert.deepEqual([...byName.keys()].sort(), ['other', 'workers']);
    assert.equal(byName.get('workers')?.filter, 'jobs/+');
    assert.deepEqual(byName.get('workers')?.members, [
      { key: 'c1', value: 1 },
      { key: 'c2', value: 5 },
    ]);
    assert.equal(tree.remove('c1', 'jobs/+', 'workers'), true);
    assert.equal(tree.remove('c1', 'jobs/+', 'workers'), false);
    assert.equal(tree.remove('c2', 'jobs/+', 'other'), false);
    const c2 = new Collector<number>();
    tree.match('jobs/1', c2);
    assert.deepEqual(c2.groups.find((g) => g.group === 'workers')?.members, [{ key: 'c2', value: 5 }]);
  });

  test('the round-robin cursor survives a member leaving', () => {
    const tree = new SubscriptionTree<number>();
    for (const k of ['a', 'b', 'c']) tree.add(k, 'x', 0, 'g');
    const c = new Collector<number>();
    tree.match('x', c);
    const group = c.groups[0] as SharedGroup<number>;
    group.cursor = 2; // next is 'c'
    tree.remove('a', 'x', 'g');
    assert.equal(group.members[group.cursor]?.key, 'c');
    tree.remove('c', 'x', 'g');
    assert.ok(group.cursor < group.members.length);
  });

  test('subscribe/unsubscribe churn leaves no nodes behind', () => {
    const tree = new SubscriptionTree<number>();
    const rnd = seededRandom(7);
    const subs: [string, string, string | null][] = [];
    for (let i = 0; i < 2000; i++) {
      const share = rnd() < 0.2 ? `g${Math.floor(rnd() * 3)}` : null;
      const entry: [string, string, string | null] = [`c${i % 50}`, randomFilter(rnd), share];
      if (tree.add(entry[0], entry[1], i, entry[2])) subs.push(entry);
    }
    assert.equal(tree.size, subs.length);
    assert.ok(tree.nodeCount > 0);
    for (const [key, filter, share] of subs) assert.equal(tree.remove(key, filter, share), true);
    assert.equal(tree.size, 0);
    assert.equal(tree.nodeCount, 0);
    assert.deepEqual(matchKeys(tree, 'a/b'), []);
  });

  test('randomized: match() agrees with a naive matcher over thousands of topics', () => {
    const rnd = seededRandom(42);
    let compared = 0;
    for (let round = 0; round < 20; round++) {
      // The value is the filter itself, so each visit says which filter matched.
      const tree = new SubscriptionTree<string>();
      const live = new Map<string, [string, string]>();
      for (let i = 0; i < 300; i++) {
        const key = `c${Math.floor(rnd() * 40)}`;
        const filter = randomFilter(rnd);
        tree.add(key, filter, filter);
        live.set(`${key}\u0001${filter}`, [key, filter]);
        // Some churn, so the comparison also covers trees that had nodes pruned.
        if (rnd() < 0.3) {
          const ids = [...live.keys()];
          const id = ids[Math.floor(rnd() * ids.length)] as string;
          const [k, f] = live.get(id) as [string, string];
          assert.equal(tree.remove(k, f), true);
          live.delete(id);
        }
      }
      assert.equal(tree.size, live.size);
      for (let t = 0; t < 250; t++) {
        const topic = randomTopic(rnd);
        const expected = [...live.values()]
          .filter(([, f]) => naiveMatches(f, topic))
          .map(([k, f]) => `${k}=${f}`)
          .sort();
        assert.deepEqual(matchKeys(tree, topic), expected, `topic ${topic}`);
        if (expected.length > 0) compared++;
      }
    }
    // Guard against a generator so sparse that the comparison is vacuous.
    assert.ok(compared > 1000, `only ${compared} topics had a match`);
  });
});
