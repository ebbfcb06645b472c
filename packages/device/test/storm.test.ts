import assert from 'node:assert/strict';
import { test } from 'node:test';
import { simulateStorm, stormTable } from '../scripts/reconnect-storm.js';
import { exponentialPolicy, fleetPolicy, naivePolicy } from '../src/policy.js';

test('storm script: naive = 59 attempts per device in the first minute, every device in the same second', () => {
  const r = simulateStorm(naivePolicy(), 100);
  assert.equal(r.firstMinute, 5900);
  assert.equal(r.peakPerSecond, 100);
});

test('storm script: paho-style doubling = 5 attempts per device in the first minute, still in lock-step', () => {
  const r = simulateStorm(exponentialPolicy(), 100);
  assert.equal(r.firstMinute, 500); // at 1, 3, 7, 15, 31 s
  assert.equal(r.firstTenMinutes, 1000);
  assert.equal(r.peakPerSecond, 100);
});

test('storm script: fleet = 1-2 attempts per device in the first minute, spread over seconds', () => {
  const r = simulateStorm(fleetPolicy(), 1000);
  assert.ok(r.firstMinute >= 1000 && r.firstMinute <= 2000, `${r.firstMinute}`);
  assert.ok(r.peakPerSecond < 200, `peak ${r.peakPerSecond}/s for 1000 devices`);
  assert.equal(stormTable(50).length, 3);
});
