import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { RetainedIndex } from '../../src/topics/retained-index.js';
import { naiveMatches, randomFilter, randomTopic, seededRandom } from './reference.js';

function matched<R>(index: RetainedIndex<R>, filter: string): string[] {
  const out: string[] = [];
  index.match(filter, (topic, value) => out.push(`${topic}=${String(value)}`));
  return out.sort();
}

describe('RetainedIndex', () => {
  test('set, get, replace and delete by topic', () => {
    const idx = new RetainedIndex<number>();
    idx.set('a/b', 1);
    idx.set('a/b', 2);
    idx.set('a', 3);
    assert.equal(idx.size, 2);
    assert.equal(idx.get('a/b'), 2);
    assert.equal(idx.get('a/c'), undefined);
    assert.equal(idx.delete('a/b'), true);
    assert.equal(idx.delete('a/b'), false);
    assert.equal(idx.get('a'), 3);
    assert.equal(idx.size, 1);
  });

  test('a filter without wildcards matches its own topic only', () => {
    const idx = new RetainedIndex<number>();
    idx.set('a/b', 1);
    idx.set('a/b/c', 2);
    assert.deepEqual(matched(idx, 'a/b'), ['a/b=1']);
    assert.deepEqual(matched(idx, 'a'), []);
  });

  test('[MQTT-4.7.1-3] + matches exactly one level', () => {
    const idx = new RetainedIndex<number>();
    idx.set('a/x/c', 1);
    idx.set('a/y/c', 2);
    idx.set('a/y/d', 3);
    idx.set('a//c', 4);
    idx.set('a/x/c/d', 5);
    assert.deepEqual(matched(idx, 'a/+/c'), ['a//c=4', 'a/x/c=1', 'a/y/c=2']);
  });

  test('[MQTT-4.7.1-2] # matches the parent and every level below', () => {
    const idx = new RetainedIndex<number>();
    idx.set('sport', 1);
    idx.set('sport/tennis', 2);
    idx.set('sport/tennis/player1', 3);
    idx.set('sports', 4);
    assert.deepEqual(matched(idx, 'sport/#'), ['sport/tennis/player1=3', 'sport/tennis=2', 'sport=1']);
    assert.deepEqual(matched(idx, '#'), ['sport/tennis/player1=3', 'sport/tennis=2', 'sport=1', 'sports=4']);
  });

  test('[MQTT-4.7.2-1] a leading wildcard does not match $ topics', () => {
    const idx = new RetainedIndex<number>();
    idx.set('$SYS/uptime', 1);
    idx.set('$SYS', 2);
    idx.set('x/uptime', 3);
    assert.deepEqual(matched(idx, '#'), ['x/uptime=3']);
    assert.deepEqual(matched(idx, '+/uptime'), ['x/uptime=3']);
    assert.deepEqual(matched(idx, '$SYS/#'), ['$SYS/uptime=1', '$SYS=2']);
    assert.deepEqual(matched(idx, '$SYS/+'), ['$SYS/uptime=1']);
  });

  test('deleting every topic prunes the trie', () => {
    const idx = new RetainedIndex<number>();
    const rnd = seededRandom(3);
    const topics = new Set<string>();
    for (let i = 0; i < 1000; i++) {
      const t = randomTopic(rnd);
      idx.set(t, i);
      topics.add(t);
    }
    assert.equal(idx.size, topics.size);
    for (const t of topics) assert.equal(idx.delete(t), true);
    assert.equal(idx.size, 0);
    assert.equal(idx.nodeCount, 0);
  });

  test('randomized: match() agrees with a naive matcher', () => {
    const rnd = seededRandom(99);
    let nonEmpty = 0;
    for (let round = 0; round < 20; round++) {
      const idx = new RetainedIndex<string>();
      const live = new Set<string>();
      for (let i = 0; i < 200; i++) {
        const t = randomTopic(rnd);
        idx.set(t, t);
        live.add(t);
        if (rnd() < 0.2) {
          const victim = [...live][Math.floor(rnd() * live.size)] as string;
          idx.delete(victim);
          live.delete(victim);
        }
      }
      for (let f = 0; f < 200; f++) {
        const filter = randomFilter(rnd);
        const expected = [...live]
          .filter((t) => naiveMatches(filter, t))
          .map((t) => `${t}=${t}`)
          .sort();
        assert.deepEqual(matched(idx, filter), expected, `filter ${filter}`);
        if (expected.length > 0) nonEmpty++;
      }
    }
    assert.ok(nonEmpty > 1000, `only ${nonEmpty} filters had a match`);
  });
});
