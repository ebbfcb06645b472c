import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { FakeClock, RawClient } from '@breakwater/testkit';
import Fastify from 'fastify';
import { exportSPKI, generateKeyPair, SignJWT } from 'jose';
import type mqtt from 'mqtt-packet';
import { Broker } from '../../src/broker.js';
import { type Clock, systemClock } from '../../src/clock.js';
import { validateConfig } from '../../src/config/load.js';
import { type AdmissionConfigInput, resolveAdmissionConfig } from '../../src/guard/admission/config.js';
import { AdmissionGate } from '../../src/guard/admission/gate.js';
import { AdmissionMetrics } from '../../src/guard/admission/metrics.js';
import { upsertPasswordEntry } from '../../src/guard/authenticators/password-file.js';
import { Guard } from '../../src/guard/guard.js';
import { brokerAdminRoutes } from '../../src/http/admin.js';
import { AuditLog } from '../../src/http/audit-log.js';
import { BrokerMetrics } from '../../src/metrics.js';
import { ReasonCode } from '../../src/reason-codes.js';
import { MemoryStorage } from '../../src/storage/memory.js';
import { Listeners } from '../../src/transports/listeners.js';
import { tempDir } from './helpers.js';

// Issue 3 end to end over real sockets: Listeners (accept-time admission) → Broker (admission at
// CONNECT, the Guard as hooks, expiry sweep, revocation) → the admin API's break-glass.

interface Stack {
  broker: Broker;
  guard: Guard | null;
  admission: AdmissionGate;
  metrics: BrokerMetrics;
  port: number;
  dataDir: string;
}

async function startStack(o: { guard?: unknown; admission?: AdmissionConfigInput; clock?: Clock } = {}) {
  const clock = o.clock ?? systemClock;
  const tmp = tempDir('wiring');
  const metrics = new BrokerMetrics({ defaultMetrics: false });
  const guard = o.guard ? new Guard(o.guard, { dataDir: tmp.dir, clock, metrics }) : null;
  await guard?.start();
  // Tarpit off unless a test asks for it: most tests here want the refusal answered at once.
  const admission = new AdmissionGate(
    resolveAdmissionConfig({ tarpit: { enabled: false }, ...o.admission }),
    {
      clock,
      random: () => 0.5,
      metrics: new AdmissionMetrics(metrics.registry),
    },
  );
  const broker = new Broker({
    storage: new MemoryStorage(),
    metrics,
    clock,
    admission,
    ...(guard ? { hooks: guard } : {}),
  });
  await broker.start();
  const listeners = new Listeners(broker, [{ name: 'mqtt', type: 'tcp', host: '127.0.0.1', port: 0 }], {
    admission,
  });
  const [address] = await listeners.start();
  after(async () => {
    listeners.stopAccepting();
    await broker.close();
    await listeners.close({ graceMs: 100 });
    await guard?.close();
    tmp.cleanup();
  });
  const stack: Stack = { broker, guard, admission, metrics, port: address!.port, dataDir: tmp.dir };
  return stack;
}

async function client(s: Stack, protocolVersion = 5): Promise<RawClient> {
  const c = await RawClient.connect(s.port, { protocolVersion });
  after(() => c.end());
  return c;
}

async function connack(s: Stack, packet: Partial<mqtt.IConnectPacket>, protocolVersion = 5) {
  const c = await client(s, protocolVersion);
  const ack = await c.connect({ protocolVersion: protocolVersion as 4 | 5, ...packet });
  return { c, ack };
}

/** Polls a condition the broker reaches asynchronously (bounded, no fixed sleeps). */
async function until(cond: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('guard wiring: authentication over real sockets', () => {
  test('password file: bad credentials get 0x86 (v3.1.1: rc 4), good ones are admitted', async () => {
    const tmp = tempDir('pw');
    after(tmp.cleanup);
    const file = join(tmp.dir, 'passwords');
    await upsertPasswordEntry(file, 'dev-1', 'right', { ln: 10, r: 8, p: 1 });
    const s = await startStack({
      guard: {
        authenticators: { passwordFile: { pw: { path: file } } },
        listeners: { mqtt: { authn: ['pw'] } },
      },
    });
    const bad = await connack(s, { clientId: 'dev-1', username: 'dev-1', password: Buffer.from('wrong') });
    assert.equal(bad.ack.reasonCode, ReasonCode.BadUserNameOrPassword);
    await bad.c.closed();
    const bad3 = await connack(s, { clientId: 'dev-1', username: 'dev-1', password: Buffer.from('x') }, 4);
    assert.equal(bad3.ack.returnCode, 4);
    const good = await connack(s, { clientId: 'dev-1', username: 'dev-1', password: Buffer.from('right') });
    assert.equal(good.ack.reasonCode, ReasonCode.Success);
    // Authorization is the guard's: own topics only (default rules).
    good.c.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'devices/dev-2/#', qos: 0 }] });
    const suback = (await good.c.next('suback')) as mqtt.ISubackPacket;
    assert.deepEqual(suback.granted, [ReasonCode.NotAuthorized]);
    const metrics = await s.metrics.registry.metrics();
    assert.match(
      metrics,
      /breakwater_auth_total\{listener="mqtt",method="password-file",outcome="success"\} 1/,
    );
  });

  test('revocation ends a live session at once with DISCONNECT 0x87; a reconnect gets CONNACK 0x8A', async () => {
    const tmp = tempDir('pw');
    after(tmp.cleanup);
    const file = join(tmp.dir, 'passwords');
    await upsertPasswordEntry(file, 'dev-r', 'pw', { ln: 10, r: 8, p: 1 });
    const s = await startStack({
      guard: {
        authenticators: { passwordFile: { pw: { path: file } } },
        listeners: { mqtt: { authn: ['pw'] } },
      },
    });
    const { c, ack } = await connack(s, {
      clientId: 'dev-r',
      username: 'dev-r',
      password: Buffer.from('pw'),
    });
    assert.equal(ack.reasonCode, 0);
    s.guard!.revoke({ clientId: 'dev-r' });
    const d = (await c.next('disconnect')) as mqtt.IDisconnectPacket;
    assert.equal(d.reasonCode, ReasonCode.NotAuthorized);
    await c.closed();
    const again = await connack(s, { clientId: 'dev-r', username: 'dev-r', password: Buffer.from('pw') });
    assert.equal(again.ack.reasonCode, ReasonCode.Banned);
  });

  test('JWT expiry disconnects a live client with DISCONNECT 0xA0 (FakeClock)', async () => {
    const clock = new FakeClock();
    const tmp = tempDir('jwt');
    after(tmp.cleanup);
    const { privateKey, publicKey } = await generateKeyPair('RS256', { extractable: true });
    const pem = join(tmp.dir, 'key.pem');
    writeFileSync(pem, await exportSPKI(publicKey));
    const s = await startStack({
      clock,
      guard: {
        authenticators: { jwt: { j: { publicKeyFile: pem, algorithms: ['RS256'], clockSkewSec: 0 } } },
        listeners: { mqtt: { authn: ['j'] } },
      },
    });
    const exp = Math.floor(clock.now() / 1000) + 60;
    const token = await new SignJWT({ sub: 'dev-j' })
      .setProtectedHeader({ alg: 'RS256' })
      .setExpirationTime(exp)
      .sign(privateKey);
    const { c, ack } = await connack(s, {
      clientId: 'dev-j',
      username: 'dev-j',
      password: Buffer.from(token),
    });
    assert.equal(ack.reasonCode, 0);
    clock.advance(30_000);
    assert.equal(s.broker.connectedClients, 1, 'still valid half way');
    clock.advance(31_000);
    const d = (await c.next('disconnect')) as mqtt.IDisconnectPacket;
    assert.equal(d.reasonCode, ReasonCode.MaximumConnectTime);
    await c.closed();
  });
});

describe('guard wiring: admission', () => {
  test('rate refusal: v5 CONNACK 0x9F with reason string and retry-after-ms; v3.1.1 return code 3', async () => {
    const clock = new FakeClock(); // no refill: the bucket holds exactly its burst
    const s = await startStack({ clock, admission: { listenerDefaults: { rate: 1, burst: 1 } } });
    const first = await connack(s, { clientId: 'a-1' });
    assert.equal(first.ack.reasonCode, 0);
    const refused = await connack(s, { clientId: 'a-2' });
    assert.equal(refused.ack.reasonCode, ReasonCode.ConnectionRateExceeded);
    assert.match(String(refused.ack.properties?.reasonString), /connection rate exceeded/);
    const retry = Number(refused.ack.properties?.userProperties?.['retry-after-ms']);
    assert.ok(retry >= 5000 && retry <= 15_000, `retry-after-ms ${retry} within the configured window`);
    await refused.c.closed();
    const v3 = await connack(s, { clientId: 'a-3' }, 4);
    assert.equal(v3.ack.returnCode, 3);
    const metrics = await s.metrics.registry.metrics();
    assert.match(metrics, /breakwater_admission_refused_total\{listener="mqtt",reason="rate"\} 2/);
    await until(() => s.admission.stats().handshakes === 0, 'handshakes settle');
  });

  test('tarpit: the refusal is answered by the sweep after the hold, and the slot is released', async () => {
    const clock = new FakeClock();
    const s = await startStack({
      clock,
      admission: {
        listenerDefaults: { rate: 1, burst: 1 },
        tarpit: { enabled: true, minMs: 2000, maxMs: 2000 },
      },
    });
    assert.equal((await connack(s, { clientId: 't-1' })).ack.reasonCode, 0);
    const c = await client(s);
    const pending = c.connect({ protocolVersion: 5, clientId: 't-2' });
    await until(() => s.admission.stats().tarpitSlotsInUse === 1, 'the refused CONNECT to hold a slot');
    assert.equal(c.received.length, 0, 'not answered during the hold');
    clock.advance(3000);
    const ack = await pending;
    assert.equal(ack.reasonCode, ReasonCode.ConnectionRateExceeded);
    assert.ok(ack.properties?.userProperties?.['retry-after-ms']);
    await c.closed();
    await until(() => s.admission.stats().tarpitSlotsInUse === 0, 'the slot to be released');
  });

  test('a backend refusal (0x88) is held by the tarpit, answered by the sweep, never a fixed-cadence retry', async () => {
    const clock = new FakeClock();
    const s = await startStack({
      clock,
      guard: {
        authenticators: { http: { down: { url: 'http://127.0.0.1:1/auth' } } },
        listeners: { mqtt: { authn: ['down'] } },
      },
      admission: { tarpit: { enabled: true, minMs: 2000, maxMs: 2000 } },
    });
    const c = await client(s);
    const pending = c.connect({
      protocolVersion: 5,
      clientId: 'held-1',
      username: 'held-1',
      password: Buffer.from('x'),
    });
    await until(() => s.admission.stats().tarpitSlotsInUse === 1, 'the refusal to hold a tarpit slot');
    assert.equal(s.admission.stats().handshakes, 0, 'the handshake slot is released during the hold');
    assert.equal(c.received.length, 0, 'not answered during the hold');
    clock.advance(3000);
    const ack = await pending;
    assert.equal(ack.reasonCode, ReasonCode.ServerUnavailable);
    assert.ok(Number(ack.properties?.userProperties?.['retry-after-ms']) > 0);
    await c.closed();
    await until(() => s.admission.stats().tarpitSlotsInUse === 0, 'the slot to be released');
  });

  test('accept-time refusal (connection cap) is answered after CONNECT with 0x89; counts settle', async () => {
    const s = await startStack({ admission: { listenerDefaults: { maxConnections: 1 } } });
    const first = await connack(s, { clientId: 'm-1' });
    assert.equal(first.ack.reasonCode, 0);
    const second = await connack(s, { clientId: 'm-2' });
    assert.equal(second.ack.reasonCode, ReasonCode.ServerBusy);
    assert.ok(second.ack.properties?.userProperties?.['retry-after-ms']);
    await second.c.closed();
    await until(() => s.admission.stats().tarpitSlotsInUse === 0, 'the accept slot to be released');
    await first.c.end();
    await until(() => s.admission.stats().connections === 0, 'connections to settle');
    assert.equal((await connack(s, { clientId: 'm-3' })).ack.reasonCode, 0, 'capacity is back');
  });
});

describe('guard wiring: engine seams', () => {
  test('[MQTT-4.11] disconnectClient with a Server Reference sends DISCONNECT 0x9C carrying it', async () => {
    const s = await startStack();
    const { c } = await connack(s, { clientId: 'mv-1' });
    assert.ok(
      s.broker.disconnectClient('mv-1', ReasonCode.UseAnotherServer, 'drain', {
        serverReference: 'other.example:1883',
      }),
    );
    const d = (await c.next('disconnect')) as mqtt.IDisconnectPacket;
    assert.equal(d.reasonCode, ReasonCode.UseAnotherServer);
    assert.equal(d.properties?.serverReference, 'other.example:1883');
  });

  test('config: guard and admission sections validate, and name unknown listeners', () => {
    const ok = validateConfig({});
    assert.deepEqual(ok.guard.listeners, {});
    assert.equal(ok.admission.global.maxConnections, 100_000);
    assert.throws(
      () => validateConfig({ guard: { listeners: { nosuch: { authn: [] } } } }),
      /guard\.listeners\.nosuch: there is no listener named "nosuch"/,
    );
    assert.throws(
      () => validateConfig({ guard: { listeners: { mqtt: { authn: ['missing'] } } } }),
      /unknown authenticator "missing"/,
    );
    assert.throws(() => validateConfig({ admission: { tarpit: { minMs: 9, maxMs: 1 } } }), /tarpit\.minMs/);
  });
});

describe('guard wiring: break-glass over HTTP', () => {
  test('bypass-authn admits a client whose backend is down, confined to its topics, until the TTL', async () => {
    const clock = new FakeClock();
    const s = await startStack({
      clock,
      guard: {
        // Port 1: nothing listens, every call fails (connection refused) → 0x88, never a deny.
        authenticators: { http: { down: { url: 'http://127.0.0.1:1/auth' } } },
        listeners: { mqtt: { authn: ['down'] } },
      },
    });
    const audit = new AuditLog(join(s.dataDir, 'audit.log'));
    const app = Fastify();
    await app.register(brokerAdminRoutes, {
      token: 'the-admin-token-0123456789',
      guard: s.guard,
      listeners: ['mqtt'],
      audit,
      registry: s.metrics.registry,
    });
    await app.listen({ port: 0, host: '127.0.0.1' });
    after(() => app.close());
    const base = `http://127.0.0.1:${(app.server.address() as { port: number }).port}/api/v1/listeners`;
    const post = (path: string, body: unknown, token?: string) =>
      fetch(`${base}/${path}`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          ...(token ? { authorization: `Bearer ${token}` } : {}),
        },
        body: JSON.stringify(body),
      });
    const creds = { clientId: 'dev-b', username: 'dev-b', password: Buffer.from('pw') };

    assert.equal((await connack(s, creds)).ack.reasonCode, ReasonCode.ServerUnavailable);

    const anonymous = await post('mqtt/bypass-authn', { ttl: '1m', reason: 'pg down' });
    assert.equal(anonymous.status, 401);
    assert.equal(
      ((await anonymous.json()) as { error: { code: string } }).error.code,
      'BW_ERR_API_UNAUTHENTICATED',
    );
    assert.equal((await post('mqtt/bypass-authn', { ttl: '1m', reason: 'pg down' }, 'wrong')).status, 401);
    const badTtl = await post(
      'mqtt/bypass-authn',
      { ttl: 'forever', reason: 'pg down' },
      'the-admin-token-0123456789',
    );
    assert.equal(badTtl.status, 400);
    assert.equal(((await badTtl.json()) as { error: { field: string } }).error.field, 'ttl');
    const noReason = await post('mqtt/bypass-authn', { ttl: '1m' }, 'the-admin-token-0123456789');
    assert.equal(((await noReason.json()) as { error: { field: string } }).error.field, 'reason');
    assert.equal(
      (await post('nosuch/bypass-authn', { ttl: '1m', reason: 'x y z' }, 'the-admin-token-0123456789'))
        .status,
      404,
    );

    const ok = await post(
      'mqtt/bypass-authn',
      { ttl: '1m', reason: 'pg down', actor: 'alice' },
      'the-admin-token-0123456789',
    );
    assert.equal(ok.status, 200);
    const line = JSON.parse(readFileSync(audit.path, 'utf8').trim()) as Record<string, string>;
    assert.equal(line.actor, 'alice');
    assert.equal(line.action, 'bypass-authn');
    assert.equal(line.reason, 'pg down');
    assert.ok(line.until && line.at);

    const inside = await connack(s, creds);
    assert.equal(inside.ack.reasonCode, ReasonCode.Success, 'admitted without the backend');
    inside.c.send({
      cmd: 'subscribe',
      messageId: 1,
      subscriptions: [
        { topic: 'devices/dev-b/#', qos: 0 },
        { topic: '#', qos: 0 },
      ],
    });
    const suback = (await inside.c.next('suback')) as mqtt.ISubackPacket;
    assert.deepEqual(suback.granted, [0, ReasonCode.NotAuthorized], 'confined to its own topics');
    const metrics = await s.metrics.registry.metrics();
    assert.match(metrics, /breakwater_auth_bypass_active\{listener="mqtt"\} 1/);
    assert.match(metrics, /breakwater_authn_bypass_changes_total\{listener="mqtt",action="bypass-authn"\} 1/);

    clock.advance(61_000); // the TTL passes: the bypass ends by itself
    assert.equal((await connack(s, creds)).ack.reasonCode, ReasonCode.ServerUnavailable);
    const status = await fetch(`${base}/mqtt/authn`, {
      headers: { authorization: 'Bearer the-admin-token-0123456789' },
    });
    assert.deepEqual(await status.json(), { listener: 'mqtt', authn: ['down'], bypass: null });
  });
});

describe('guard wiring: flapping bans over real sockets and the admin API', () => {
  test('sessions that end quickly get the id banned (0x9F); GET lists the ban, lift ends it (audited)', async () => {
    const s = await startStack({ admission: { flapping: { clientId: { maxShortSessions: 2 } } } });
    for (let i = 0; i < 3; i++) {
      const { c, ack } = await connack(s, { clientId: 'flappy' });
      assert.equal(ack.reasonCode, ReasonCode.Success, `session ${i + 1} accepted`);
      await c.end(); // socket closed without DISCONNECT: a short session
    }
    await until(() => s.admission.flappingBans().length === 1, 'the ban');
    const banned = await connack(s, { clientId: 'flappy' });
    assert.equal(banned.ack.reasonCode, ReasonCode.ConnectionRateExceeded);
    assert.match(String(banned.ack.properties?.reasonString), /flapping/);
    assert.ok(Number(banned.ack.properties?.userProperties?.['retry-after-ms']) > 60_000);
    // A clean DISCONNECT never counts: another id reconnecting the same way stays admitted.
    for (let i = 0; i < 5; i++) {
      const { c, ack } = await connack(s, { clientId: 'tidy' });
      assert.equal(ack.reasonCode, ReasonCode.Success);
      c.send({ cmd: 'disconnect' });
      await c.closed();
    }

    const audit = new AuditLog(join(s.dataDir, 'audit.log'));
    const app = Fastify();
    await app.register(brokerAdminRoutes, {
      token: 'the-admin-token-0123456789',
      guard: null,
      listeners: ['mqtt'],
      audit,
      registry: s.metrics.registry,
      admission: s.admission,
    });
    await app.listen({ port: 0, host: '127.0.0.1' });
    after(() => app.close());
    const base = `http://127.0.0.1:${(app.server.address() as { port: number }).port}/api/v1/admission/flapping-bans`;
    const headers = {
      authorization: 'Bearer the-admin-token-0123456789',
      'content-type': 'application/json',
    };
    const list = (await (await fetch(base, { headers })).json()) as {
      bans: { scope: string; key: string; remainingMs: number }[];
    };
    assert.deepEqual(
      list.bans.map((b) => [b.scope, b.key]),
      [['client_id', 'flappy']],
    );
    assert.ok(list.bans[0]!.remainingMs > 60_000);
    const bad = await fetch(`${base}/lift`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ scope: 'user', key: 'x' }),
    });
    assert.equal(bad.status, 400);
    assert.equal(((await bad.json()) as { error: { field: string } }).error.field, 'scope');
    const missing = await fetch(`${base}/lift`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ scope: 'client_id', key: 'nobody' }),
    });
    assert.equal(missing.status, 404);
    const lifted = await fetch(`${base}/lift`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ scope: 'client_id', key: 'flappy', actor: 'bob' }),
    });
    assert.equal(lifted.status, 200);
    const line = JSON.parse(readFileSync(audit.path, 'utf8').trim()) as Record<string, string>;
    assert.deepEqual(
      [line.action, line.actor, line.scope, line.key],
      ['lift-flapping-ban', 'bob', 'client_id', 'flappy'],
    );
    assert.equal(
      (await connack(s, { clientId: 'flappy' })).ack.reasonCode,
      ReasonCode.Success,
      'admitted again',
    );
  });
});
