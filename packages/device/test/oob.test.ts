/**
 * The out-of-band channel against a real local HTTPS server with a self-signed certificate.
 */
import assert from 'node:assert/strict';
import { createHmac, createPublicKey, verify } from 'node:crypto';
import { once } from 'node:events';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { createDevice, mulberry32, type OobReport, OobReporter, signBody } from '../src/index.js';
import { fakeFactory, flush, until } from './helpers/fake-mqtt.js';
import { type SelfSigned, selfSigned, startHttpsServer } from './helpers/https-server.js';
import { ManualScheduler } from './helpers/manual-scheduler.js';

let tls: SelfSigned;
before(() => {
  tls = selfSigned();
});

const report = (n: number): OobReport => ({
  deviceId: 'dev-9',
  reason: `r${n}`,
  attempts: n,
  firmware: '1.0.0',
  lastError: null,
  at: new Date(0).toISOString(),
});

describe('out-of-band reports over HTTPS', () => {
  test('the auth breaker sends one signed report {deviceId, reason, attempts, firmware, lastError, at}', async () => {
    const server = await startHttpsServer(tls);
    after(() => server.close());
    const scheduler = new ManualScheduler();
    const fake = fakeFactory();
    const device = createDevice({
      servers: 'mqtt://broker.example',
      deviceId: 'dev-oob',
      credentials: { token: 'device-secret-token' },
      firmware: '2.4.1',
      oob: { url: `${server.url}/v1/devices/report`, ca: tls.cert },
      scheduler,
      random: mulberry32(5),
      clientFactory: fake.factory,
    });
    after(() => device.stop());
    device.start();
    await flush();
    for (let i = 0; i < 3; i++) {
      fake.last().refuse(0x86);
      await flush();
      if (i < 2) scheduler.fireNext();
      await flush();
    }
    assert.equal(device.state, 'auth-blocked');
    await server.waitFor(1);
    await device.oobIdle();
    const [req] = server.received;
    assert.equal(req!.method, 'POST');
    assert.equal(req!.url, '/v1/devices/report');
    assert.equal(req!.headers['content-type'], 'application/json');
    assert.equal(req!.headers['x-breakwater-device'], 'dev-oob');
    assert.equal(req!.clientCertCN, null, 'a token device presents no client certificate');
    const body = JSON.parse(req!.body.toString());
    assert.deepEqual(Object.keys(body).sort(), [
      'at',
      'attempts',
      'deviceId',
      'firmware',
      'lastError',
      'reason',
    ]);
    assert.equal(body.deviceId, 'dev-oob');
    assert.equal(body.reason, 'auth-breaker-open');
    assert.equal(body.attempts, 3);
    assert.equal(body.firmware, '2.4.1');
    assert.match(body.lastError, /refused/);
    assert.equal(body.at, new Date(scheduler.now()).toISOString());
    const expected = createHmac('sha256', 'device-secret-token').update(req!.body).digest('hex');
    assert.equal(req!.headers['x-breakwater-signature'], `hmac-sha256=${expected}`);
    assert.deepEqual(device.oobStats, { queued: 0, sent: 1, dropped: 0, rejected: 0, failures: 0 });
  });

  test('an untrusted certificate is refused (no custom CA), and that is a retryable failure', async () => {
    const server = await startHttpsServer(tls);
    after(() => server.close());
    const scheduler = new ManualScheduler();
    const r = new OobReporter('dev-9', { url: server.url }, () => null, scheduler, mulberry32(1));
    after(() => r.close());
    const outcomes: string[] = [];
    r.onEvent((o) => outcomes.push(o));
    r.report(report(1));
    await until(() => outcomes.length > 0, 'a send outcome');
    assert.deepEqual(outcomes, ['failed']);
    assert.equal(server.received.length, 0);
    assert.equal(r.stats.queued, 1);
  });

  test('slow backoff after failures (30 s doubling, jittered), then delivery in order', async () => {
    const server = await startHttpsServer(tls, (_req, i) => (i < 2 ? 503 : 204));
    after(() => server.close());
    const scheduler = new ManualScheduler();
    const r = new OobReporter(
      'dev-9',
      { url: server.url, ca: tls.cert },
      () => null,
      scheduler,
      mulberry32(2),
    );
    after(() => r.close());
    const outcomes: string[] = [];
    r.onEvent((o, rep) => outcomes.push(`${o}:${rep.reason}`));
    r.report(report(1));
    r.report(report(2));
    await server.waitFor(1);
    await until(() => outcomes.length >= 1, 'first failure');
    const first = scheduler.nextIn()!;
    assert.ok(first >= 15_000 && first <= 30_000, `first retry in ${first}`);
    scheduler.advance(first);
    await server.waitFor(2);
    await until(() => outcomes.length >= 2, 'second failure');
    const second = scheduler.nextIn()!;
    assert.ok(second >= 30_000 && second <= 60_000, `second retry in ${second}`);
    scheduler.advance(second);
    await r.idle();
    assert.deepEqual(outcomes, ['failed:r1', 'failed:r1', 'sent:r1', 'sent:r2']);
    assert.equal(r.stats.failures, 2);
  });

  test('Retry-After on a 429 is a lower bound for the next try', async () => {
    const server = await startHttpsServer(tls, (_req, i) =>
      i === 0 ? { status: 429, headers: { 'retry-after': '600' } } : 204,
    );
    after(() => server.close());
    const scheduler = new ManualScheduler();
    const r = new OobReporter(
      'dev-9',
      { url: server.url, ca: tls.cert },
      () => null,
      scheduler,
      mulberry32(3),
    );
    after(() => r.close());
    let failed = false;
    r.onEvent((o) => {
      if (o === 'failed') failed = true;
    });
    r.report(report(1));
    await until(() => failed, 'the 429 failure');
    assert.equal(scheduler.nextIn(), 600_000);
  });

  test('a 4xx is final: the report is dropped as rejected, not retried', async () => {
    const server = await startHttpsServer(tls, () => 401);
    after(() => server.close());
    const scheduler = new ManualScheduler();
    const r = new OobReporter(
      'dev-9',
      { url: server.url, ca: tls.cert },
      () => null,
      scheduler,
      mulberry32(4),
    );
    after(() => r.close());
    r.report(report(1));
    await r.idle();
    assert.deepEqual(r.stats, { queued: 0, sent: 0, dropped: 0, rejected: 1, failures: 0 });
    assert.equal(scheduler.pending, 0);
  });

  test('the queue is bounded: the oldest reports are dropped and counted', async () => {
    // A port with nothing listening: every send fails fast.
    const probe = net.createServer().listen(0, '127.0.0.1');
    await once(probe, 'listening');
    const port = (probe.address() as net.AddressInfo).port;
    await new Promise<void>((res) => probe.close(() => res()));
    const scheduler = new ManualScheduler();
    const r = new OobReporter(
      'dev-9',
      { url: `https://127.0.0.1:${port}/`, queueLimit: 3 },
      () => null,
      scheduler,
      mulberry32(5),
    );
    after(() => r.close());
    const dropped: string[] = [];
    r.onEvent((o, rep) => {
      if (o === 'dropped') dropped.push(rep.reason);
    });
    for (let i = 1; i <= 6; i++) r.report(report(i));
    assert.deepEqual(dropped, ['r1', 'r2', 'r3']);
    assert.equal(r.stats.queued, 3);
    assert.equal(r.stats.dropped, 3);
  });

  test('certificate credentials: the report request presents the device certificate (mTLS)', async () => {
    const server = await startHttpsServer(tls);
    after(() => server.close());
    const scheduler = new ManualScheduler();
    const fake = fakeFactory();
    const device = createDevice({
      servers: 'mqtts://broker.example',
      deviceId: 'dev-mtls',
      credentials: { key: tls.key, cert: tls.cert },
      oob: { url: server.url, ca: tls.cert },
      scheduler,
      random: mulberry32(6),
      clientFactory: fake.factory,
    });
    after(() => device.stop());
    assert.equal(fake.clients.length, 0);
    device.start();
    await flush();
    assert.equal(fake.last().options.cert, tls.cert, 'the MQTT connection uses the certificate');
    for (let i = 0; i < 3; i++) {
      fake.last().refuse(0x87);
      await flush();
      if (i < 2) scheduler.fireNext();
      await flush();
    }
    await server.waitFor(1);
    assert.equal(server.received[0]!.clientCertCN, 'localhost');
    assert.match(String(server.received[0]!.headers['x-breakwater-signature']), /^sig-sha256=/);
  });

  test('certificate credentials sign with the private key (verifiable with the certificate)', () => {
    const body = Buffer.from('{"deviceId":"x"}');
    const sig = signBody(body, { key: tls.key, cert: tls.cert }, undefined);
    assert.ok(sig?.startsWith('sig-sha256='));
    const ok = verify(
      'sha256',
      body,
      createPublicKey(tls.cert),
      Buffer.from(sig!.slice('sig-sha256='.length), 'base64'),
    );
    assert.ok(ok);
    assert.ok(
      !verify(
        'sha256',
        Buffer.from('tampered'),
        createPublicKey(tls.cert),
        Buffer.from(sig!.slice(11), 'base64'),
      ),
    );
  });
});
