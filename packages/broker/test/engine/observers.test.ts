import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { MessageTap } from '@breakwater/broker';
import { startBroker } from '@breakwater/testkit';
import mqtt from 'mqtt';

describe('MessageTap.matches', () => {
  const cases: Array<[string, string, boolean]> = [
    ['$fleet/+/config/reported', '$fleet/d1/config/reported', true],
    ['$fleet/+/config/reported', '$fleet/d1/config', false],
    ['$fleet/+/config/reported', '$fleet/d1/config/reported/x', false],
    ['$fleet/#', '$fleet', true],
    ['$fleet/#', '$fleet/a/b', true],
    ['#', '$fleet/a', false],
    ['+/x', '$fleet/x', false],
    ['devices/+/t', 'devices//t', true],
    ['devices/+/t', 'devices/a/b/t', false],
    ['a/b', 'a/b', true],
    ['a/b', 'a/bc', false],
    ['a/+', 'a', false],
    ['a/#', 'a', true],
  ];
  for (const [filter, topic, expected] of cases) {
    test(`${filter} ${expected ? 'matches' : 'does not match'} ${topic}`, () => {
      assert.equal(new MessageTap(filter, () => {}).matches(topic), expected);
    });
  }
  test('an invalid filter throws', () => {
    assert.throws(() => new MessageTap('a/#/b', () => {}));
  });
});

describe('Broker observers, taps and purgePublishedBy', () => {
  test('observers see connect and disconnect; a tap sees a device publish on $fleet', async (t) => {
    const tb = await startBroker();
    t.after(() => tb.close());
    const events: string[] = [];
    tb.broker.addObserver({
      clientConnected: (id, info) => events.push(`up ${id} ${info.listener}`),
      clientDisconnected: (id, reason) => events.push(`down ${id} ${reason}`),
    });
    const seen: Array<[string, string, string | null]> = [];
    const remove = tb.broker.tap('$fleet/+/config/reported', (topic, payload, by) =>
      seen.push([topic, payload.toString(), by]),
    );
    const c = mqtt.connect(tb.url, { clientId: 'dev-1', protocolVersion: 5, reconnectPeriod: 0 });
    await event(c, 'connect');
    await c.publishAsync('$fleet/dev-1/config/reported', '{"version":3}', { qos: 1 });
    await c.publishAsync('$fleet/dev-1/ota/status', 'x', { qos: 1 });
    assert.deepEqual(seen, [['$fleet/dev-1/config/reported', '{"version":3}', 'dev-1']]);
    remove();
    await c.publishAsync('$fleet/dev-1/config/reported', '{"version":4}', { qos: 1 });
    assert.equal(seen.length, 1, 'a removed tap sees nothing');
    await c.endAsync();
    await waitFor(() => events.length === 2);
    assert.equal(events[0], 'up dev-1 test');
    assert.match(events[1]!, /^down dev-1 /);
  });

  test('purgePublishedBy deletes retained messages of that publisher only and drops its will', async (t) => {
    const tb = await startBroker();
    t.after(() => tb.close());
    const bad = mqtt.connect(tb.url, {
      clientId: 'bad',
      protocolVersion: 5,
      reconnectPeriod: 0,
      will: { topic: 'devices/bad/will', payload: Buffer.from('gone'), qos: 1, retain: true },
    });
    const good = mqtt.connect(tb.url, { clientId: 'good', protocolVersion: 5, reconnectPeriod: 0 });
    await Promise.all([event(bad, 'connect'), event(good, 'connect')]);
    await bad.publishAsync('devices/bad/state', 'on', { qos: 1, retain: true });
    await bad.publishAsync('$fleet/bad/config/reported', '{}', { qos: 1, retain: true });
    await good.publishAsync('devices/good/state', 'on', { qos: 1, retain: true });
    const purged = await tb.broker.purgePublishedBy('bad');
    assert.deepEqual(purged, { retained: 2, wills: 1 });
    // Kick it the way revocation does: with the will gone, nothing is published.
    tb.broker.disconnectClient('bad', 0x87, 'revoked');
    await event(bad, 'close');
    const topics: string[] = [];
    const sub = mqtt.connect(tb.url, { clientId: 'reader', protocolVersion: 5, reconnectPeriod: 0 });
    await event(sub, 'connect');
    sub.on('message', (topic) => topics.push(topic));
    await sub.subscribeAsync(['devices/#', '$fleet/#'], { qos: 1 });
    await good.publishAsync('devices/good/marker', 'm', { qos: 1 });
    await waitFor(() => topics.includes('devices/good/marker'));
    assert.deepEqual(topics.sort(), ['devices/good/marker', 'devices/good/state']);
    await Promise.all([sub.endAsync(), good.endAsync()]);
  });
});

/** MqttClient's typed emitter does not fit events.once(): wait for one event by hand. */
function event(c: mqtt.MqttClient, name: 'connect' | 'close'): Promise<void> {
  return new Promise((resolve) => c.once(name, () => resolve()));
}

async function waitFor(cond: () => boolean, ms = 5000): Promise<void> {
  const until = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > until) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}
