import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { OutboundTopicAliases } from '../../src/outbound-aliases.js';

/** What the broker does per PUBLISH: look up, and assign a new mapping once it is sent. */
function send(t: OutboundTopicAliases, topic: string): number {
  const a = t.lookup(topic);
  if (a < 0) t.assign(topic, -a);
  return a;
}

describe('OutboundTopicAliases', () => {
  test('new topics get 1, 2, … up to the maximum; a known topic returns its alias', () => {
    const t = new OutboundTopicAliases(3, 1);
    assert.deepEqual(
      ['a', 'b', 'c'].map((x) => send(t, x)),
      [-1, -2, -3],
    );
    assert.deepEqual(
      ['b', 'a', 'c'].map((x) => send(t, x)),
      [2, 1, 3],
    );
    assert.equal(t.size, 3);
  });

  test('a topic shorter than the minimum length is never aliased', () => {
    const t = new OutboundTopicAliases(3, 5);
    assert.equal(send(t, 'abcd'), 0);
    assert.equal(send(t, 'abcde'), -1);
    assert.equal(t.size, 1);
  });

  test('full: the least recently used mapping is replaced, a topic in use survives', () => {
    const t = new OutboundTopicAliases(3, 1);
    for (const x of ['a', 'b', 'c']) send(t, x);
    send(t, 'a'); // a is in use
    send(t, 'c'); // so is c
    assert.equal(send(t, 'd'), -2, 'b was not used since it was sent: its alias goes to d');
    assert.equal(send(t, 'a'), 1);
    assert.equal(send(t, 'd'), 2);
    assert.equal(send(t, 'b') < 0, true, 'b is sent with its topic again');
    assert.equal(t.size, 3);
    // Never more than the maximum, whatever the churn; every value stays within 1..max.
    for (let i = 0; i < 1000; i++) {
      const a = Math.abs(send(t, `t${i % 7}`));
      assert.ok(a >= 1 && a <= 3);
    }
    assert.equal(t.size, 3);
  });

  test('a lookup that is not followed by assign (packet not sent) changes no mapping', () => {
    const t = new OutboundTopicAliases(1, 1);
    send(t, 'a');
    assert.equal(t.lookup('b'), -1); // would take alias 1 from a…
    assert.equal(t.lookup('a'), 1, '…but a keeps it until b is actually sent');
  });
});
