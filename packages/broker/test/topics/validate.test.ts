import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { isValidTopicName, parseTopicFilter } from '../../src/topics/validate.js';

function okFilter(raw: string, filter: string, shareGroup: string | null = null): void {
  assert.deepEqual(parseTopicFilter(raw), { ok: true, filter, shareGroup }, raw);
}

function badFilter(raw: string, reasonPart: string): void {
  const parsed = parseTopicFilter(raw);
  assert.equal(parsed.ok, false, `${raw} should be rejected`);
  if (!parsed.ok) assert.match(parsed.reason, new RegExp(reasonPart), raw);
}

describe('topic names', () => {
  test('[MQTT-4.7.3-1] a topic name is at least one character', () => {
    assert.equal(isValidTopicName(''), false);
    assert.equal(isValidTopicName('a'), true);
    assert.equal(isValidTopicName('/'), true);
  });

  test('[MQTT-3.3.2-2] a topic name must not contain wildcard characters', () => {
    assert.equal(isValidTopicName('a/+/c'), false);
    assert.equal(isValidTopicName('a/#'), false);
    assert.equal(isValidTopicName('a+b'), false);
    assert.equal(isValidTopicName('sport/tennis/player1'), true);
    assert.equal(isValidTopicName('$SYS/broker/uptime'), true);
  });

  test('[MQTT-1.5.4-2] a topic name must not contain U+0000', () => {
    assert.equal(isValidTopicName('a\u0000b'), false);
  });

  test('[MQTT-1.5.4-1] a topic name is at most 65535 UTF-8 bytes', () => {
    assert.equal(isValidTopicName('a'.repeat(65535)), true);
    assert.equal(isValidTopicName('a'.repeat(65536)), false);
    // 'é' is two UTF-8 bytes: fewer than 65535 characters can still be too long.
    assert.equal(isValidTopicName('é'.repeat(32767)), true);
    assert.equal(isValidTopicName('é'.repeat(32768)), false);
  });
});

describe('topic filters', () => {
  test('[MQTT-4.7.1-2] # must occupy a whole level and be last', () => {
    okFilter('#', '#');
    okFilter('sport/#', 'sport/#');
    okFilter('+/#', '+/#');
    badFilter('sport/tennis#', 'entire topic level');
    badFilter('sport/#/ranking', 'last character');
    badFilter('#/', 'last character');
    badFilter('##', 'last character');
    badFilter('a/b#', 'entire topic level');
  });

  test('[MQTT-4.7.1-3] + must occupy a whole level', () => {
    okFilter('+', '+');
    okFilter('+/tennis/#', '+/tennis/#');
    okFilter('sport/+/player1', 'sport/+/player1');
    okFilter('/+', '/+');
    okFilter('+/', '+/');
    badFilter('sport+', 'entire topic level');
    badFilter('sport/+x', 'entire topic level');
    badFilter('++', 'entire topic level');
  });

  test('[MQTT-4.7.3-1] a topic filter is at least one character', () => {
    badFilter('', 'empty');
  });

  test('[MQTT-1.5.4-2] a topic filter must not contain U+0000', () => {
    badFilter('a/\u0000', 'U\\+0000');
  });

  test('[MQTT-4.8.2-1] a share name is non-empty and has no wildcards', () => {
    okFilter('$share/g1/a/+/c', 'a/+/c', 'g1');
    okFilter('$share/g/#', '#', 'g');
    badFilter('$share//a', 'share name is empty');
    badFilter('$share/g+/a', 'share name');
    badFilter('$share/#/a', 'share name');
  });

  test('[MQTT-4.8.2-2] a share name is followed by / and a topic filter', () => {
    badFilter('$share/g', 'no topic filter');
    badFilter('$share/g/', 'empty topic filter');
    badFilter('$share/', 'share name is empty');
    badFilter('$share/g/a#', 'entire topic level');
  });

  test('filters that only look like shared ones are plain filters', () => {
    okFilter('$share', '$share');
    okFilter('$shared/x', '$shared/x');
    okFilter('$SYS/#', '$SYS/#');
  });
});
