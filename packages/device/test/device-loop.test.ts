/**
 * The reconnect loop with a scripted MQTT.js stand-in and a manual clock: the exact schedule,
 * the auth breaker, server hints and redirects, without sockets and without waiting.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  createDevice,
  type Device,
  type DeviceOptions,
  fleetPolicy,
  mulberry32,
  type ReconnectingEvent,
} from '../src/index.js';
import { fakeFactory, flush } from './helpers/fake-mqtt.js';
import { ManualScheduler } from './helpers/manual-scheduler.js';

const SEED = 2026;

function setup(extra: Partial<DeviceOptions> = {}) {
  const scheduler = new ManualScheduler();
  const fake = fakeFactory();
  const device = createDevice({
    servers: ['mqtt://a.example:1883', 'mqtt://b.example:1883'],
    deviceId: 'dev-1',
    credentials: { token: 'jwt-1' },
    scheduler,
    random: mulberry32(SEED),
    clientFactory: fake.factory,
    ...extra,
  });
  const reconnecting: ReconnectingEvent[] = [];
  device.on('reconnecting', (e) => reconnecting.push(e));
  return { scheduler, fake, device, reconnecting };
}

/** The delays the fleet policy gives for attempts 1..n with the test seed (computed independently). */
function expectedDelays(n: number): number[] {
  const r = mulberry32(SEED);
  const p = fleetPolicy();
  return Array.from({ length: n }, (_, i) => p.nextDelayMs({ attempt: i + 1 }, r));
}

async function failNetwork(fake: ReturnType<typeof fakeFactory>): Promise<void> {
  fake.last().networkError();
  await flush();
}

describe('device reconnect loop', () => {
  test('connects at once with the fleet defaults (keepalive 60 s, connect timeout 10 s, persistent session, v5, TCP keepalive)', async () => {
    const { fake, device } = setup();
    device.start();
    await flush();
    assert.equal(fake.clients.length, 1);
    const o = fake.last().options;
    assert.equal(o.clientId, 'dev-1');
    assert.equal(o.keepalive, 60);
    assert.equal(o.connectTimeout, 10_000);
    assert.equal(o.clean, false);
    assert.equal(o.protocolVersion, 5);
    assert.equal(o.reconnectPeriod, 0, 'MQTT.js auto-reconnect must be off');
    assert.equal(o.properties?.sessionExpiryInterval, 86_400);
    assert.equal(o.username, 'dev-1');
    assert.equal(o.password, 'jwt-1');
    assert.deepEqual(fake.last().keepAlive, { enable: true, ms: 30_000 });
    assert.equal(device.state, 'connecting');
    fake.last().accept();
    assert.equal(device.state, 'connected');
    assert.deepEqual(fake.last().subscriptions, ['$fleet/dev-1/config', '$fleet/dev-1/commands/#']);
    await device.stop();
  });

  test('consecutive failures follow the fleet schedule exactly; counters add up', async () => {
    const { scheduler, fake, device, reconnecting } = setup();
    device.start();
    await flush();
    const expected = expectedDelays(6);
    for (let i = 0; i < 6; i++) {
      await failNetwork(fake);
      assert.equal(device.state, 'backoff');
      assert.equal(reconnecting[i]!.delayMs, expected[i]);
      assert.equal(reconnecting[i]!.attempt, i + 1);
      assert.equal(reconnecting[i]!.cause, 'network');
      assert.equal(fake.clients.length, i + 1, 'no new client before the delay is over');
      scheduler.advance(expected[i]! - 1);
      await flush();
      assert.equal(fake.clients.length, i + 1, 'not even 1 ms early');
      scheduler.advance(1);
      await flush();
      assert.equal(fake.clients.length, i + 2);
    }
    const sum = expected.reduce((s, d) => s + d, 0);
    assert.deepEqual(
      { ...device.counters },
      {
        attempts: 7,
        failures: 6,
        authFailures: 0,
        connects: 0,
        disconnects: 0,
        backoffMs: sum,
        authBlockedMs: 0,
      },
    );
    // Stage bounds, as the design states them.
    assert.ok(expected[0]! >= 5_000 && expected[0]! <= 15_000);
    assert.ok(expected[1]! >= 30_000 && expected[1]! <= 120_000);
    for (const d of expected.slice(2)) assert.ok(d >= 300_000 && d <= 600_000);
    await device.stop();
  });

  test('the previous client is ended and its stream destroyed before the next one is created', async () => {
    const { scheduler, fake, device } = setup();
    device.start();
    await flush();
    for (let i = 0; i < 5; i++) {
      fake.last().accept();
      fake.last().emit('close'); // connection lost
      await flush();
      scheduler.fireNext();
      await flush();
    }
    assert.equal(fake.clients.length, 6);
    for (const c of fake.clients.slice(0, -1)) {
      assert.ok(c.ended && c.destroyed, 'every replaced client is ended (force) and destroyed');
    }
    await device.stop();
    assert.ok(fake.last().destroyed);
    assert.equal(scheduler.pending, 0, 'stop leaves no timer behind');
  });

  test('a successful connect resets the schedule: the next loss starts at attempt 1 again', async () => {
    const { scheduler, fake, device, reconnecting } = setup();
    device.start();
    await flush();
    await failNetwork(fake);
    scheduler.fireNext();
    await flush();
    await failNetwork(fake);
    scheduler.fireNext();
    await flush();
    assert.equal(reconnecting.at(-1)!.attempt, 2);
    fake.last().accept();
    fake.last().emit('close');
    await flush();
    const e = reconnecting.at(-1)!;
    assert.equal(e.attempt, 1);
    assert.equal(e.cause, 'disconnected');
    assert.ok(e.delayMs >= 5_000 && e.delayMs <= 15_000);
    await device.stop();
  });

  test('server retry-after-ms on a CONNACK refusal is a lower bound', async () => {
    const { scheduler, fake, device, reconnecting } = setup();
    device.start();
    await flush();
    fake.last().refuse(0x89, { userProperties: { 'retry-after-ms': '47000' } });
    await flush();
    assert.equal(reconnecting[0]!.delayMs, 47_000);
    assert.equal(reconnecting[0]!.serverHintMs, 47_000);
    assert.equal(reconnecting[0]!.cause, 'refused');
    assert.equal(reconnecting[0]!.reasonCode, 0x89);
    scheduler.fireNext();
    await flush();
    // A hint below the stage changes nothing.
    fake.last().refuse(0x9f, { userProperties: { 'retry-after-ms': '10' } });
    await flush();
    assert.equal(reconnecting[1]!.delayMs, expectedDelays(2)[1]);
    await device.stop();
  });

  test('server retry-after-ms on a DISCONNECT is a lower bound too', async () => {
    const { fake, device, reconnecting } = setup();
    device.start();
    await flush();
    fake.last().accept();
    const disconnected: unknown[] = [];
    device.on('disconnected', (e) => disconnected.push(e));
    fake.last().serverDisconnect(0x8b, { userProperties: { 'retry-after-ms': '90000' } });
    await flush();
    assert.equal(disconnected.length, 1);
    assert.equal(reconnecting[0]!.delayMs, 90_000);
    assert.ok(fake.last().destroyed, 'the socket is closed right after the DISCONNECT');
    await device.stop();
  });

  test('servers are tried in rotation after failures', async () => {
    const { scheduler, fake, device } = setup();
    device.start();
    await flush();
    for (let i = 0; i < 3; i++) {
      await failNetwork(fake);
      scheduler.fireNext();
      await flush();
    }
    assert.deepEqual(
      fake.clients.map((c) => c.url),
      ['mqtt://a.example:1883', 'mqtt://b.example:1883', 'mqtt://a.example:1883', 'mqtt://b.example:1883'],
    );
    await device.stop();
  });

  test('MQTT 5 redirect: CONNACK 0x9C with a Server Reference sends the next attempt there, once', async () => {
    const { scheduler, fake, device, reconnecting } = setup();
    device.start();
    await flush();
    fake.last().refuse(0x9c, { serverReference: 'c.example:2883' });
    await flush();
    assert.equal(reconnecting[0]!.cause, 'redirect');
    assert.equal(reconnecting[0]!.redirectedTo, 'mqtt://c.example:2883');
    scheduler.fireNext();
    await flush();
    assert.equal(fake.last().url, 'mqtt://c.example:2883');
    await failNetwork(fake);
    scheduler.fireNext();
    await flush();
    assert.equal(fake.last().url, 'mqtt://a.example:1883', 'a one-off redirect falls back to the list');
    await device.stop();
  });

  test('MQTT 5 redirect: DISCONNECT 0x9D (server moved) makes the new server preferred', async () => {
    const { scheduler, fake, device } = setup();
    device.start();
    await flush();
    fake.last().accept();
    fake.last().serverDisconnect(0x9d, { serverReference: 'mqtt://d.example:1999' });
    await flush();
    scheduler.fireNext();
    await flush();
    assert.equal(fake.last().url, 'mqtt://d.example:1999');
    fake.last().accept();
    fake.last().emit('close');
    await flush();
    scheduler.fireNext();
    await flush();
    assert.equal(fake.last().url, 'mqtt://d.example:1999');
    await device.stop();
  });
});

describe('auth circuit breaker in the device', () => {
  async function refuseAuth(
    d: { scheduler: ManualScheduler; fake: ReturnType<typeof fakeFactory> },
    code: number,
  ) {
    d.fake.last().refuse(code);
    await flush();
  }

  test('opens after exactly 3 consecutive auth failures (0x86, 0x87, 0x8C): 60-90 min wait, event, no attempts meanwhile', async () => {
    const d = setup();
    const opened: Array<{ openForMs: number }> = [];
    d.device.on('auth-breaker-open', (e) => opened.push(e));
    d.device.start();
    await flush();
    await refuseAuth(d, 0x86);
    assert.equal(d.device.state, 'backoff');
    d.scheduler.fireNext();
    await flush();
    await refuseAuth(d, 0x87);
    assert.equal(d.device.state, 'backoff');
    assert.equal(opened.length, 0);
    d.scheduler.fireNext();
    await flush();
    await refuseAuth(d, 0x8c);
    assert.equal(d.device.state, 'auth-blocked');
    assert.equal(opened.length, 1);
    const openFor = opened[0]!.openForMs;
    assert.ok(openFor >= 3_600_000 && openFor <= 5_400_000, `open for ${openFor}`);
    assert.equal(d.scheduler.nextIn(), openFor);
    const clients = d.fake.clients.length;
    d.scheduler.advance(openFor - 1);
    await flush();
    assert.equal(d.fake.clients.length, clients, 'no attempt while the breaker is open');
    d.scheduler.advance(1);
    await flush();
    assert.equal(d.fake.clients.length, clients + 1, 'one probe after the cool-down');
    assert.equal(d.device.counters.authFailures, 3);
    assert.equal(d.device.counters.authBlockedMs, openFor);
    // Half-open: a single further auth refusal reopens it at once.
    await refuseAuth(d, 0x86);
    assert.equal(d.device.state, 'auth-blocked');
    assert.equal(opened.length, 2);
    await d.device.stop();
  });

  test('network failures neither count nor reset the auth count', async () => {
    const d = setup();
    let opened = 0;
    d.device.on('auth-breaker-open', () => opened++);
    d.device.start();
    await flush();
    const script = ['auth', 'net', 'net', 'auth', 'net', 'busy', 'net'];
    for (const step of script) {
      if (step === 'auth') await refuseAuth(d, 0x86);
      else if (step === 'busy') await refuseAuth(d, 0x89);
      else await failNetwork(d.fake);
      assert.equal(d.device.state, 'backoff');
      d.scheduler.fireNext();
      await flush();
    }
    assert.equal(opened, 0);
    await refuseAuth(d, 0x86);
    assert.equal(opened, 1, 'the third auth failure opens it despite the network failures in between');
    await d.device.stop();
  });

  test('many network failures never open the breaker', async () => {
    const d = setup();
    let opened = 0;
    d.device.on('auth-breaker-open', () => opened++);
    d.device.start();
    await flush();
    for (let i = 0; i < 20; i++) {
      await failNetwork(d.fake);
      d.scheduler.fireNext();
      await flush();
    }
    assert.equal(opened, 0);
    assert.equal(d.device.counters.authFailures, 0);
    await d.device.stop();
  });

  test('a successful connect resets the auth count', async () => {
    const d = setup();
    let opened = 0;
    d.device.on('auth-breaker-open', () => opened++);
    d.device.start();
    await flush();
    await refuseAuth(d, 0x86);
    d.scheduler.fireNext();
    await flush();
    await refuseAuth(d, 0x86);
    d.scheduler.fireNext();
    await flush();
    d.fake.last().accept();
    d.fake.last().emit('close');
    await flush();
    d.scheduler.fireNext();
    await flush();
    await refuseAuth(d, 0x86);
    d.scheduler.fireNext();
    await flush();
    await refuseAuth(d, 0x86);
    assert.equal(opened, 0, 'two failures after a success are not three');
    d.scheduler.fireNext();
    await flush();
    await refuseAuth(d, 0x86);
    assert.equal(opened, 1);
    await d.device.stop();
  });

  test('MQTT 3.1.1 return codes 4 and 5 count as auth failures', async () => {
    const d = setup({ protocolVersion: 4 });
    let opened = 0;
    d.device.on('auth-breaker-open', () => opened++);
    d.device.start();
    await flush();
    for (const rc of [4, 5, 3, 4]) {
      await refuseAuth(d, rc);
      if (d.device.state === 'backoff') {
        d.scheduler.fireNext();
        await flush();
      }
    }
    assert.equal(opened, 1);
    assert.equal(d.device.counters.authFailures, 3);
    assert.equal(d.fake.clients[0]!.options.properties, undefined, 'no v5 properties on a 3.1.1 CONNECT');
    await d.device.stop();
  });
});

describe('token provider', () => {
  test('fetches before connecting, refreshes ahead of expiry and reconnects with the new token at expiry', async () => {
    const scheduler = new ManualScheduler();
    const fake = fakeFactory();
    let n = 0;
    const device: Device = createDevice({
      servers: 'mqtt://a.example',
      deviceId: 'dev-2',
      credentials: {
        refreshMarginMs: 60_000,
        tokenProvider: async () => {
          n++;
          return { token: `jwt-${n}`, expiresAt: scheduler.now() + 600_000 };
        },
      },
      scheduler,
      random: mulberry32(1),
      clientFactory: fake.factory,
    });
    device.start();
    await flush();
    assert.equal(fake.last().options.password, 'jwt-1');
    fake.last().accept();
    scheduler.advance(540_000); // expiry minus the margin: refresh, but keep the connection
    await flush();
    assert.equal(n, 2);
    assert.equal(fake.clients.length, 1);
    scheduler.advance(60_000); // the old token expires: reconnect at once with the new one
    await flush();
    assert.equal(fake.clients.length, 2);
    assert.ok(fake.clients[0]!.destroyed);
    assert.equal(fake.last().options.password, 'jwt-2');
    assert.equal(n, 2, 'the prefetched token is used, not fetched again');
    // A refused token is not reused.
    fake.last().refuse(0x86);
    await flush();
    scheduler.fireNext();
    await flush();
    assert.equal(n, 3);
    assert.equal(fake.last().options.password, 'jwt-3');
    await device.stop();
  });

  test('a failing provider is a failed attempt with backoff, not an auth failure', async () => {
    const scheduler = new ManualScheduler();
    const fake = fakeFactory();
    const errors: Error[] = [];
    const device = createDevice({
      servers: 'mqtt://a.example',
      deviceId: 'dev-3',
      credentials: {
        tokenProvider: async () => {
          throw new Error('token endpoint down');
        },
      },
      scheduler,
      random: mulberry32(1),
      clientFactory: fake.factory,
    });
    const reasons: string[] = [];
    device.on('reconnecting', (e) => reasons.push(e.cause));
    device.on('error', (e) => errors.push(e));
    device.start();
    await flush();
    assert.equal(fake.clients.length, 0);
    assert.deepEqual(reasons, ['token']);
    assert.equal((errors[0] as { code?: string }).code, 'BW_ERR_DEVICE_TOKEN_PROVIDER');
    assert.equal(device.counters.authFailures, 0);
    await device.stop();
  });
});

describe('fleet handlers over the loop', () => {
  test('config: applied once per version, on every (re)connect the retained copy is ignored if unchanged', async () => {
    const { scheduler, fake, device } = setup();
    const applied: string[] = [];
    device.onConfig((config, meta) => {
      applied.push(`${meta.version}:${config.interval}`);
    });
    device.start();
    await flush();
    fake.last().accept();
    fake.last().message('$fleet/dev-1/config', JSON.stringify({ version: 3, interval: 10 }));
    await flush();
    fake.last().emit('close');
    await flush();
    scheduler.fireNext();
    await flush();
    fake.last().accept();
    assert.ok(fake.last().subscriptions.includes('$fleet/dev-1/config'), 're-subscribed on reconnect');
    fake.last().message('$fleet/dev-1/config', JSON.stringify({ version: 3, interval: 10 }));
    fake.last().message('$fleet/dev-1/config', JSON.stringify({ version: 4, interval: 20 }));
    await flush();
    assert.deepEqual(applied, ['3:10', '4:20']);
    await device.stop();
  });

  test('reportConfig publishes retained QoS 1, and waits for a connection when offline', async () => {
    const { fake, device } = setup();
    device.start();
    await flush();
    let done = false;
    const p = device.reportConfig({ version: 4, interval: 20 }).then(() => {
      done = true;
    });
    await flush();
    assert.equal(done, false);
    fake.last().accept();
    await p;
    assert.deepEqual(fake.last().published, [
      { topic: '$fleet/dev-1/config/reported', payload: '{"version":4,"interval":20}', retain: true },
    ]);
    await device.stop();
  });

  test('commands reach the handler; the result goes to the response topic', async () => {
    const { fake, device } = setup();
    device.onCommand((cmd) => ({
      rebooting: cmd.name === 'reboot',
      delay: (cmd.data as { delay: number }).delay,
    }));
    device.start();
    await flush();
    fake.last().accept();
    fake.last().message('$fleet/dev-1/commands/reboot', '{"delay":5}', { responseTopic: 'replies/1' });
    await flush();
    assert.deepEqual(fake.last().published, [
      { topic: 'replies/1', payload: '{"ok":true,"result":{"rebooting":true,"delay":5}}', retain: false },
    ]);
    await device.stop();
  });

  test('options are validated once, with hints for MQTT.js names', () => {
    assert.throws(() => createDevice({ servers: [], deviceId: 'x' }), /servers/);
    assert.throws(() => createDevice({ servers: 'mqtt://a', deviceId: 'a/b' }), /deviceId/);
    assert.throws(
      () =>
        createDevice({
          servers: 'mqtt://a',
          deviceId: 'x',
          reconnectPeriod: 1000,
        } as unknown as DeviceOptions),
      /use policy instead/,
    );
    assert.throws(() => createDevice({ servers: 'http://a', deviceId: 'x' }), /not an MQTT URL/);
    assert.throws(
      () => createDevice({ servers: 'mqtt://a', deviceId: 'x', oob: { url: 'http://cp.example/report' } }),
      /must be https/,
    );
  });
});
