/**
 * The device against a real Breakwater broker (testkit `startBroker`, port 0): restarts, socket
 * hygiene over many reconnects, session takeover, config on reconnect, redirect, and the
 * out-of-band report when the broker refuses the credential.
 *
 * Policies here are short custom ones (tens of ms): the real schedule is covered with a fake
 * clock in device-loop.test.ts; these tests are about the wire, not the minutes.
 */
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { once } from 'node:events';
import net from 'node:net';
import { after, describe, test } from 'node:test';
import { RawClient, startBroker, type TestBroker } from '@breakwater/testkit';
import mqtt from 'mqtt';
import {
  createDevice,
  type Device,
  type DeviceEvents,
  type DeviceOptions,
  type ReconnectPolicy,
} from '../src/index.js';
import { until } from './helpers/fake-mqtt.js';
import { selfSigned, startHttpsServer } from './helpers/https-server.js';

const quick = (ms = 20): ReconnectPolicy => ({ name: 'test-quick', nextDelayMs: () => ms });
const slow: ReconnectPolicy = { name: 'test-slow', nextDelayMs: () => 60_000 };

async function broker(options: Parameters<typeof startBroker>[0] = {}): Promise<TestBroker> {
  const b = await startBroker(options);
  after(() => b.close());
  return b;
}

function device(options: Partial<DeviceOptions> & Pick<DeviceOptions, 'servers'>): Device {
  const d = createDevice({
    deviceId: `dev-${Math.random().toString(16).slice(2, 8)}`,
    policy: quick(),
    ...options,
  });
  d.on('error', () => {}); // asserted where it matters
  after(() => d.stop());
  return d;
}

/** The next `event` from the device, bounded. */
function next<K extends keyof DeviceEvents>(d: Device, event: K, timeoutMs = 5000): Promise<DeviceEvents[K]> {
  return Promise.race([
    once(d as unknown as NodeJS.EventEmitter, event) as Promise<DeviceEvents[K]>,
    new Promise<never>((_, reject) =>
      setTimeout(
        () => reject(new Error(`no '${String(event)}' within ${timeoutMs} ms (state ${d.state})`)),
        timeoutMs,
      ).unref(),
    ),
  ]);
}

async function freePort(): Promise<number> {
  const s = net.createServer().listen(0, '127.0.0.1');
  await once(s, 'listening');
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

const tcpSockets = () => process.getActiveResourcesInfo().filter((r) => r === 'TCPSocketWrap').length;

describe('device against Breakwater', () => {
  test('reconnects after a broker restart on the same port', async () => {
    const port = await freePort();
    let b1: TestBroker | null = await startBroker({ port });
    after(() => b1?.close());
    const d = device({ servers: `mqtt://127.0.0.1:${port}` });
    const connected = next(d, 'connected');
    d.start();
    await connected;
    const disconnected = next(d, 'disconnected');
    await b1.close();
    b1 = null;
    const [lost] = await disconnected;
    assert.ok(lost.reasonCode === 0x8b || lost.reasonCode === null, `reason ${lost.reasonCode}`);
    // At least one attempt must have hit the closed port before the broker is back.
    for (;;) {
      const [e] = await next(d, 'reconnecting');
      if (e.cause === 'network') break;
    }
    const b2 = await broker({ port });
    const [again] = await next(d, 'connected');
    assert.equal(again.url, `mqtt://127.0.0.1:${port}`);
    assert.ok(d.counters.failures >= 1);
    assert.equal(d.counters.connects, 2);
    assert.equal(b2.openSockets(), 1);
  });

  test('200 forced reconnects leave exactly one socket open, broker side and process side', async () => {
    const b = await broker();
    const before = tcpSockets();
    const d = device({ servers: b.url, credentials: { token: 'tok' } });
    const first = next(d, 'connected');
    d.start();
    await first;
    for (let i = 0; i < 200; i++) {
      const c = next(d, 'connected');
      d.reconnect();
      await c;
    }
    assert.equal(d.counters.connects, 201);
    assert.equal(d.counters.attempts, 201);
    // Closed sockets finish closing asynchronously: poll (bounded) for the steady state.
    await until(() => b.openSockets() === 1, `broker open sockets = 1 (is ${b.openSockets()})`);
    // One client socket + its server-side peer, both in this process.
    await until(
      () => tcpSockets() === before + 2,
      `process TCP sockets = ${before + 2} (is ${tcpSockets()})`,
    );
    await d.stop();
    await until(() => b.openSockets() === 0, 'broker sockets closed after stop');
    await until(() => tcpSockets() === before, `process TCP sockets back to ${before} (is ${tcpSockets()})`);
  });

  test('session takeover: the old connection gets DISCONNECT 0x8E and its socket is gone', async () => {
    const b = await broker();
    const d = device({ servers: b.url, deviceId: 'dev-takeover', policy: slow });
    const c = next(d, 'connected');
    d.start();
    await c;
    const disconnected = next(d, 'disconnected');
    const intruder = await RawClient.connect(b.port, { protocolVersion: 5 });
    after(() => intruder.end());
    const ack = await intruder.connect({ clientId: 'dev-takeover', protocolVersion: 5, clean: false });
    assert.equal(ack.reasonCode, 0);
    const [e] = await disconnected;
    assert.equal(e.reason, 'server-disconnect');
    assert.equal(e.reasonCode, 0x8e);
    assert.equal(d.state, 'backoff');
    await until(() => b.openSockets() === 1, 'only the new connection remains');
  });

  test('persistent session: the reconnect resumes the session (clean start false + expiry)', async () => {
    const b = await broker();
    const d = device({ servers: b.url });
    const c1 = next(d, 'connected');
    d.start();
    const [first] = await c1;
    assert.equal(first.sessionPresent, false);
    const c2 = next(d, 'connected');
    d.reconnect();
    const [second] = await c2;
    assert.equal(second.sessionPresent, true);
  });

  test('config: retained desired config applied on connect, once per version, new version on reconnect', async () => {
    const b = await broker();
    const id = 'dev-config';
    const push = (config: object) =>
      b.broker.publish({
        topic: `$fleet/${id}/config`,
        payload: Buffer.from(JSON.stringify(config)),
        qos: 1,
        retain: true,
      });
    await push({ version: 1, interval: 10 });
    const d = device({ servers: b.url, deviceId: id, policy: slow });
    const applied: string[] = [];
    d.onConfig((config, meta) => {
      applied.push(`${meta.version}:${config.interval}`);
    });
    const c = next(d, 'connected');
    const cfg1 = next(d, 'config');
    d.start();
    await c;
    await cfg1;
    assert.deepEqual(applied, ['1:10']);
    // Same retained config on a reconnect: not applied twice.
    const again = next(d, 'connected');
    d.reconnect();
    await again;
    // Kick the device; push v2 while it is offline; it takes effect on the next connect.
    const gone = next(d, 'disconnected');
    assert.ok(b.broker.disconnectClient(id, 0x98, 'test'));
    await gone;
    await push({ version: 2, interval: 20 });
    const cfg2 = next(d, 'config');
    d.reconnect();
    const [e] = await cfg2;
    assert.equal(e.version, '2');
    assert.deepEqual(applied, ['1:10', '2:20']);
    // Reported config is retained on the broker.
    await d.reportConfig({ version: 2, interval: 20 });
    const watcher = await mqtt.connectAsync(b.url, { protocolVersion: 5, reconnectPeriod: 0 });
    after(() => watcher.endAsync(true));
    const got = new Promise<{ topic: string; payload: string; retain: boolean }>((resolve) =>
      watcher.on('message', (topic, payload, packet) =>
        resolve({ topic, payload: payload.toString(), retain: packet.retain }),
      ),
    );
    await watcher.subscribeAsync(`$fleet/${id}/config/reported`, { qos: 1 });
    assert.deepEqual(await got, {
      topic: `$fleet/${id}/config/reported`,
      payload: '{"version":2,"interval":20}',
      retain: true,
    });
  });

  test('MQTT 5 redirect: CONNACK 0x9C with a Server Reference is followed to the second broker', async () => {
    const target = await broker();
    const moved = await broker({
      hooks: {
        authenticate: () => ({
          ok: false,
          reasonCode: 0x9c,
          reasonString: 'moved',
          serverReference: `127.0.0.1:${target.port}`,
        }),
      },
    });
    const d = device({ servers: moved.url });
    const redirected = next(d, 'reconnecting');
    d.start();
    const [r] = await redirected;
    assert.equal(r.reasonCode, 0x9c);
    assert.equal(
      r.redirectedTo,
      `mqtt://127.0.0.1:${target.port}`,
      'the broker must send the Server Reference',
    );
    const [c] = await next(d, 'connected');
    assert.equal(c.url, `mqtt://127.0.0.1:${target.port}`);
  });

  test('token credential: username = device id, password = the token', async () => {
    const seen: Array<{ username?: string; password?: string }> = [];
    const b = await broker({
      hooks: {
        authenticate: (req) => {
          seen.push({ username: req.username, password: req.password?.toString() });
          return { ok: true };
        },
      },
    });
    const d = device({ servers: b.url, deviceId: 'dev-tok', credentials: { token: 'eyJ.jwt' } });
    const c = next(d, 'connected');
    d.start();
    await c;
    assert.deepEqual(seen, [{ username: 'dev-tok', password: 'eyJ.jwt' }]);
  });

  test('3 auth refusals from the broker open the breaker and a signed report reaches a real HTTPS server', async () => {
    const tls = selfSigned();
    const server = await startHttpsServer(tls);
    after(() => server.close());
    let refusals = 0;
    const b = await broker({
      hooks: {
        authenticate: () => {
          refusals++;
          return { ok: false, reasonCode: 0x86, reasonString: 'bad token' };
        },
      },
    });
    const d = device({
      servers: b.url,
      deviceId: 'dev-revoked',
      credentials: { token: 'revoked-token' },
      firmware: '3.1.0',
      oob: { url: `${server.url}/report`, ca: tls.cert },
    });
    const opened = next(d, 'auth-breaker-open');
    d.start();
    const [e] = await opened;
    assert.ok(e.openForMs >= 3_600_000 && e.openForMs <= 5_400_000);
    assert.equal(d.state, 'auth-blocked');
    assert.equal(refusals, 3, 'exactly three attempts reached the broker');
    await server.waitFor(1);
    const body = JSON.parse(server.received[0]!.body.toString());
    assert.equal(body.deviceId, 'dev-revoked');
    assert.equal(body.reason, 'auth-breaker-open');
    assert.equal(body.attempts, 3);
    assert.equal(body.firmware, '3.1.0');
    const sig = createHmac('sha256', 'revoked-token').update(server.received[0]!.body).digest('hex');
    assert.equal(server.received[0]!.headers['x-breakwater-signature'], `hmac-sha256=${sig}`);
    await until(() => b.openSockets() === 0, 'refused sockets closed');
  });
});
