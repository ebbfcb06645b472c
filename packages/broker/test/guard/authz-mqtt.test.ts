// Issue 13 item 1 over real sockets: MQTT.js clients (3.1.1 and 5) against a broker on port 0
// with the Guard's allow/deny rules. Denied SUBSCRIBE → 0x87 (v5) / 0x80 (v3.1.1) in SUBACK;
// denied PUBLISH → 0x87 in PUBACK/PUBREC (v5), v3.1.1 and QoS 0 acknowledged as normal but
// dropped (MQTT 3.1.1 §3.3.5); retained messages and wills on denied topics never reach anyone.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { Broker } from '../../src/broker.js';
import { Guard } from '../../src/guard/guard.js';
import { BrokerMetrics } from '../../src/metrics.js';
import { MemoryStorage } from '../../src/storage/memory.js';
import { Listeners } from '../../src/transports/listeners.js';
import { tempDir } from './helpers.js';

const guardConfig = {
  authenticators: { anonymous: { anon: {} } },
  authz: { reloadDebounceMs: 20 },
  listeners: {
    mqtt: {
      authn: ['anon'],
      authz: {
        default: 'deny',
        rules: [
          { permission: 'deny', action: 'publish', topic: 'open/%c/forbidden' },
          { permission: 'deny', action: 'subscribe', topic: 'open/+/secret' },
          { permission: 'allow', topic: 'open/#' },
          { permission: 'allow', action: 'subscribe', topic: 'lan/#', source: '127.0.0.0/8' },
          { permission: 'allow', action: 'subscribe', topic: 'wan/#', source: '10.0.0.0/8' },
          { permission: 'allow', action: 'subscribe', topic: 'users/%u/#', username: 'ali*' },
        ],
      },
    },
  },
};

interface Stack {
  broker: Broker;
  guard: Guard;
  metrics: BrokerMetrics;
  url: string;
  close(): Promise<void>;
}

async function startStack(): Promise<Stack> {
  const tmp = tempDir('authz-mqtt');
  const metrics = new BrokerMetrics({ defaultMetrics: false });
  const guard = new Guard(guardConfig, { dataDir: tmp.dir, metrics });
  await guard.start();
  const broker = new Broker({ storage: new MemoryStorage(), metrics, hooks: guard });
  await broker.start();
  const listeners = new Listeners(broker, [{ name: 'mqtt', type: 'tcp', host: '127.0.0.1', port: 0 }]);
  const [address] = await listeners.start();
  const close = async (): Promise<void> => {
    listeners.stopAccepting();
    await broker.close();
    await listeners.close({ graceMs: 100 });
    await guard.close();
    tmp.cleanup();
  };
  return { broker, guard, metrics, url: `mqtt://127.0.0.1:${address!.port}`, close };
}

const clients = new Set<MqttClient>();
let seq = 0;

async function connect(s: Stack, protocolVersion: 4 | 5, options: IClientOptions = {}): Promise<MqttClient> {
  const client = await mqtt.connectAsync(
    s.url,
    { protocolVersion, reconnectPeriod: 0, connectTimeout: 5000, clientId: `c${++seq}`, ...options },
    false,
  );
  clients.add(client);
  return client;
}

/** The SUBACK reason codes, whatever mqtt.js thinks of them. */
function subscribeCodes(c: MqttClient, filters: string[]): Promise<number[]> {
  return new Promise((resolve) => {
    c.subscribe(filters, { qos: 1 }, (_err, _granted, packet) => {
      resolve([...((packet as { granted?: number[] } | undefined)?.granted ?? [])]);
    });
  });
}

/** Messages a client receives, in order. */
function collect(c: MqttClient): string[] {
  const seen: string[] = [];
  c.on('message', (topic, payload) => seen.push(`${topic}=${payload.toString()}`));
  return seen;
}

/** Until `seen` holds `entry` (the marker published after the messages that must not arrive). */
async function waitFor(seen: string[], entry: string, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!seen.includes(entry)) {
    if (Date.now() > end) assert.fail(`no ${entry} within ${ms} ms; got ${JSON.stringify(seen)}`);
    await sleep(5);
  }
}

async function metric(s: Stack, name: string): Promise<string> {
  return s.metrics.registry.getSingleMetricAsString(name);
}

for (const v of [4, 5] as const) {
  const denied = v === 5 ? 0x87 : 0x80;

  describe(`authorization rules, MQTT.js protocolVersion ${v}`, () => {
    let s: Stack;
    before(async () => {
      s = await startStack();
    });
    after(async () => {
      await Promise.all([...clients].map((c) => c.endAsync(true).catch(() => {})));
      clients.clear();
      await s.close();
    });

    test(`denied SUBSCRIBE gets 0x${denied.toString(16)} per filter; allowed ones are granted`, async () => {
      const c = await connect(s, v);
      // open/# overlaps the deny rule open/+/secret; closed/x matches no rule (default deny).
      const codes = await subscribeCodes(c, ['open/a/temp', 'open/#', 'closed/x', 'open/a/secret']);
      assert.deepEqual(codes, [1, denied, denied, denied]);
      assert.match(await metric(s, 'breakwater_authz_denied_total'), /action="subscribe"} [3-9]/);
    });

    test('conditions see the real connection: source address and username from CONNECT', async () => {
      const alice = await connect(s, v, { username: 'alice' });
      assert.deepEqual(await subscribeCodes(alice, ['lan/x', 'wan/x', 'users/alice/#', 'users/bob/#']), [
        1,
        denied,
        1,
        denied,
      ]);
      const bob = await connect(s, v, { username: 'bob' });
      assert.deepEqual(await subscribeCodes(bob, ['users/bob/#']), [denied], 'username must match ali*');
    });

    test('denied PUBLISH: QoS 0, 1 and 2 are not routed; v5 gets 0x87 in PUBACK/PUBREC, v3.1.1 a normal ack', async () => {
      const sub = await connect(s, v);
      assert.deepEqual(await subscribeCodes(sub, ['open/+/forbidden', 'open/+/ok']), [1, 1]);
      const seen = collect(sub);
      const pub = await connect(s, v, { clientId: `pub${v}` });
      const topic = `open/pub${v}/forbidden`;
      pub.publish(topic, 'q0', { qos: 0 });
      for (const qos of [1, 2] as const) {
        const outcome = await pub.publishAsync(topic, `q${qos}`, { qos }).then(
          () => 'acked',
          (err: { code?: number }) => `refused 0x${err.code?.toString(16)}`,
        );
        assert.equal(outcome, v === 5 ? 'refused 0x87' : 'acked', `QoS ${qos}`);
      }
      await pub.publishAsync(`open/pub${v}/ok`, 'marker', { qos: 1 });
      await waitFor(seen, `open/pub${v}/ok=marker`);
      assert.deepEqual(seen, [`open/pub${v}/ok=marker`], 'nothing published to the denied topic arrived');
      assert.ok(pub.connected, 'a denied publish does not cost the connection');
      assert.match(await metric(s, 'breakwater_authz_denied_total'), /action="publish"} [3-9]/);
    });

    test('retained messages on a denied topic are never delivered on subscribe', async () => {
      // The server may retain anything (config push); the rules decide who reads it.
      await s.broker.publish({ topic: `open/r${v}/secret`, payload: Buffer.from('s'), qos: 1, retain: true });
      await s.broker.publish({ topic: `open/r${v}/temp`, payload: Buffer.from('t'), qos: 1, retain: true });
      const sub = await connect(s, v);
      const seen = collect(sub);
      assert.deepEqual(await subscribeCodes(sub, [`open/r${v}/+`]), [denied], 'covers the secret: refused');
      assert.deepEqual(await subscribeCodes(sub, [`open/r${v}/temp`]), [1]);
      await waitFor(seen, `open/r${v}/temp=t`);
      assert.deepEqual(await subscribeCodes(sub, [`open/r${v}/secret`]), [denied]);
      assert.deepEqual(seen, [`open/r${v}/temp=t`]);
    });

    test('a will to a denied topic is not published; an allowed one is', async () => {
      const watcher = await connect(s, v);
      assert.deepEqual(await subscribeCodes(watcher, ['open/+/forbidden', 'open/+/ok']), [1, 1]);
      const seen = collect(watcher);
      const bad = await connect(s, v, {
        clientId: `w${v}bad`,
        will: { topic: `open/w${v}bad/forbidden`, payload: Buffer.from('gone'), qos: 1, retain: false },
      });
      bad.stream.destroy();
      while (s.broker.connectedClientIds().includes(`w${v}bad`)) await sleep(5);
      const good = await connect(s, v, {
        clientId: `w${v}good`,
        will: { topic: `open/w${v}good/ok`, payload: Buffer.from('gone'), qos: 1, retain: false },
      });
      good.stream.destroy();
      await waitFor(seen, `open/w${v}good/ok=gone`);
      assert.deepEqual(seen, [`open/w${v}good/ok=gone`]);
    });

    test('a rule change applies to connected clients at once', async () => {
      const pub = await connect(s, v, { clientId: `live${v}` });
      await pub.publishAsync(`open/live${v}/x`, '1', { qos: 1 });
      s.guard.replaceAuthzRules(
        [{ permission: 'deny', action: 'publish', topic: `open/live${v}/#` }],
        'test',
      );
      const sub = await connect(s, v);
      assert.deepEqual(await subscribeCodes(sub, [`open/live${v}/x`]), [1]);
      const seen = collect(sub);
      const second = await pub.publishAsync(`open/live${v}/x`, '2', { qos: 1 }).then(
        () => 'acked',
        (err: { code?: number }) => `refused 0x${err.code?.toString(16)}`,
      );
      assert.equal(second, v === 5 ? 'refused 0x87' : 'acked');
      s.guard.replaceAuthzRules([], 'test');
      await pub.publishAsync(`open/live${v}/x`, '3', { qos: 1 });
      await waitFor(seen, `open/live${v}/x=3`);
      assert.deepEqual(seen, [`open/live${v}/x=3`]);
    });

    test('a rule change removes existing subscriptions it denies', async () => {
      const sub = await connect(s, v);
      // (open/s/# would overlap the listener's deny of open/+/secret.)
      assert.deepEqual(await subscribeCodes(sub, [`open/s${v}/+/x`, `open/m${v}/ok`]), [1, 1]);
      const seen = collect(sub);
      const pub = await connect(s, v);
      await pub.publishAsync(`open/s${v}/a/x`, 'before', { qos: 1 });
      await waitFor(seen, `open/s${v}/a/x=before`);
      s.guard.replaceAuthzRules([{ permission: 'deny', action: 'subscribe', topic: `open/s${v}/#` }], 'test');
      await pub.publishAsync(`open/s${v}/b/x`, 'after', { qos: 1 });
      await pub.publishAsync(`open/m${v}/ok`, 'marker', { qos: 1 });
      await waitFor(seen, `open/m${v}/ok=marker`);
      s.guard.replaceAuthzRules([], 'test');
      assert.deepEqual(seen, [`open/s${v}/a/x=before`, `open/m${v}/ok=marker`]);
    });
  });
}
