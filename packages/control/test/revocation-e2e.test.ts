/**
 * Revocation end to end: a real broker on port 0 (testkit) whose Guard verifies tokens with a
 * jwt authenticator against the control plane's own JWKS (over HTTP, like `breakwater up`), the
 * control plane on a real HTTP socket with SQLite storage, and MQTT.js 5 clients.
 *
 * Revoke via the API → the live client gets DISCONNECT 0x87 (latency printed, not asserted), a
 * reconnect with the same token is refused with CONNACK 0x8A, the retained message it published
 * is gone and its will was never published; un-revoke → it connects again. And "tokens issued
 * before T": the old token is kicked and refused, a token minted after T connects.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type Clock, Guard, ReasonCode, systemClock } from '@breakwater/broker';
import { startBroker, type TestBroker } from '@breakwater/testkit';
import Fastify, { type FastifyInstance } from 'fastify';
import mqtt, { type IClientOptions, type IDisconnectPacket, type MqttClient } from 'mqtt';
import { brokerFleet } from '../src/fleet-broker.js';
import { type ControlPlane, createControlPlane } from '../src/http/app.js';
import { SqliteControlStorage } from '../src/storage/sqlite.js';

// Generous: other test files load the machine at the same time.
const DEADLINE_MS = 15_000;

function withDeadline<T>(what: string, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), DEADLINE_MS);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

/** The control plane's clock runs `offsetMs` ahead of the wall clock (to mint "later" tokens). */
function offsetClock(): Clock & { offsetMs: number } {
  const c = { ...systemClock, offsetMs: 0, now: () => Date.now() + c.offsetMs };
  return c;
}

interface Token {
  token: string;
  tokenId: string;
  issuedAt: string;
}

describe('revocation end to end (broker + guard + control plane + MQTT.js 5)', () => {
  let tb: TestBroker;
  let guard: Guard;
  let cp: ControlPlane;
  let app: FastifyInstance;
  let server: http.Server;
  let storage: SqliteControlStorage;
  let dataDir: string;
  let base: string;
  const clock = offsetClock();
  const clients: MqttClient[] = [];
  /** Everything the broker routes under devices/ (wills included), via an in-process tap. */
  const routed: string[] = [];

  before(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'bw-revocation-e2e-'));
    // The HTTP socket first: the guard needs the JWKS URL, the control plane needs the guard.
    server = http.createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    guard = new Guard(
      {
        authenticators: {
          jwt: {
            control: {
              jwksUrl: `http://127.0.0.1:${port}/.well-known/jwks.json`,
              issuer: 'breakwater',
              audience: 'breakwater-mqtt',
              algorithms: ['EdDSA'],
            },
          },
        },
        listeners: { test: { authn: ['control'] } },
      },
      { dataDir },
    );
    tb = await startBroker({ hooks: guard });
    tb.broker.tap('devices/#', (topic, payload) => routed.push(`${topic}=${payload.toString()}`));
    storage = SqliteControlStorage.open({ file: join(dataDir, 'control.db') });
    cp = await createControlPlane({ storage, dataDir, clock, fleet: brokerFleet(tb.broker, guard) });
    app = Fastify({
      serverFactory: (handler) => {
        server.on('request', handler);
        return server;
      },
    });
    await app.register(cp.plugin);
    await app.ready();
    await cp.start();
    base = `http://127.0.0.1:${port}/api/v1`;
  });

  after(async () => {
    for (const c of clients) c.end(true);
    await cp.close();
    await app.close();
    // Fastify did not listen (serverFactory), so it does not close the server; keep-alive
    // sockets (fetch, the guard's JWKS fetches) would hold it open.
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await tb.close();
    await guard.close();
    await storage.close();
    await rm(dataDir, { recursive: true, force: true });
  });

  async function api<T = Record<string, unknown>>(
    method: string,
    path: string,
    body?: unknown,
  ): Promise<{ status: number; body: T }> {
    const res = await fetch(`${base}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${cp.initialAdminKey}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    return { status: res.status, body: (await res.json().catch(() => null)) as T };
  }

  async function provision(id: string): Promise<void> {
    const res = await api('POST', '/devices', { id });
    assert.equal(res.status, 201, JSON.stringify(res.body));
  }

  async function mint(id: string): Promise<Token> {
    const res = await api<Token>('POST', '/tokens', { deviceId: id, ttl: 600 });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    return res.body;
  }

  function connect(id: string, token: string, extra: Partial<IClientOptions> = {}): Promise<MqttClient> {
    const options: IClientOptions = {
      clientId: id,
      username: id,
      password: token,
      protocolVersion: 5,
      reconnectPeriod: 0,
      connectTimeout: DEADLINE_MS,
      ...extra,
    };
    const p = mqtt.connectAsync(tb.url, options, false);
    return withDeadline(`${id} to connect`, p).then((c) => {
      clients.push(c);
      return c;
    });
  }

  /** Resolves with the CONNACK refusal reason code (MQTT.js rejects with `code`). */
  async function refusedCode(id: string, token: string): Promise<number> {
    try {
      const c = await connect(id, token);
      c.end(true);
      return 0;
    } catch (err) {
      return (err as { code?: number }).code ?? -1;
    }
  }

  /** The server's DISCONNECT (packet) and when it arrived. */
  function disconnectOf(c: MqttClient): Promise<{ packet: IDisconnectPacket; at: number }> {
    return withDeadline(
      'the server DISCONNECT',
      new Promise((resolve) => c.once('disconnect', (packet) => resolve({ packet, at: performance.now() }))),
    );
  }

  /**
   * What the broker sends a new subscriber of `devices/{id}/#`, up to a marker published after
   * the subscription: retained messages arrive before it.
   */
  async function retainedFor(c: MqttClient, id: string): Promise<string[]> {
    const seen: string[] = [];
    const marker = `marker-${Math.random()}`;
    const done = new Promise<void>((resolve) => {
      c.on('message', (topic, payload, packet) => {
        if (payload.toString() === marker) resolve();
        else if (packet.retain) seen.push(`${topic}=${payload.toString()}`);
      });
    });
    await c.subscribeAsync(`devices/${id}/#`, { qos: 1 });
    await c.publishAsync(`devices/${id}/marker`, marker, { qos: 1 });
    await withDeadline('the marker message', done);
    return seen;
  }

  it('revoke kicks with DISCONNECT 0x87, refuses the reconnect with 0x8A, purges retained + will; un-revoke lets it back', async () => {
    await provision('sensor-1');
    const { token } = await mint('sensor-1');
    const device = await connect('sensor-1', token, {
      will: { topic: 'devices/sensor-1/status', payload: Buffer.from('offline'), qos: 1, retain: false },
    });
    await device.publishAsync('devices/sensor-1/state', 'on', { qos: 1, retain: true });
    const kicked = disconnectOf(device);
    const sent = performance.now();
    const res = await api<{
      action: string;
      revocationId: string;
      matchedDevices: number;
      disconnected: number;
      purgedRetained: number;
      purgedWills: number;
      warnings: string[];
    }>('POST', '/killswitch/revoke', { deviceId: 'sensor-1', reason: 'e2e' });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const { packet, at } = await kicked;
    console.log(`revocation → DISCONNECT latency: ${(at - sent).toFixed(1)} ms (API call included)`);
    assert.equal(packet.reasonCode, ReasonCode.NotAuthorized, 'DISCONNECT 0x87 Not authorized');
    assert.equal(res.body.action, 'revoke');
    assert.deepEqual(
      {
        m: res.body.matchedDevices,
        d: res.body.disconnected,
        r: res.body.purgedRetained,
        w: res.body.purgedWills,
      },
      { m: 1, d: 1, r: 1, w: 1 },
    );
    assert.deepEqual(res.body.warnings, []);

    assert.equal(await refusedCode('sensor-1', token), ReasonCode.Banned, 'CONNACK 0x8A Banned');
    assert.ok(
      !routed.some((m) => m.startsWith('devices/sensor-1/status=')),
      `the will was never published (${routed.join(', ')})`,
    );

    const undo = await api<{ released: number }>('DELETE', `/revocations/${res.body.revocationId}`);
    assert.equal(undo.status, 200, JSON.stringify(undo.body));
    assert.equal(undo.body.released, 1);
    const back = await connect('sensor-1', token);
    assert.deepEqual(await retainedFor(back, 'sensor-1'), [], 'its retained message is gone');
    back.end(true);
  });

  it('the same probe sees a retained message that was not purged (control for the check above)', async () => {
    await provision('sensor-2');
    const { token } = await mint('sensor-2');
    const c = await connect('sensor-2', token);
    await c.publishAsync('devices/sensor-2/state', 'on', { qos: 1, retain: true });
    assert.deepEqual(await retainedFor(c, 'sensor-2'), ['devices/sensor-2/state=on']);
    c.end(true);
  });

  it('tokens issued before T: the old token is kicked and refused, a token issued after T connects', async () => {
    await provision('sensor-3');
    const old = await mint('sensor-3');
    const device = await connect('sensor-3', old.token);
    const cutoff = Date.parse(old.issuedAt) + 1000; // iat has 1 s resolution
    const kicked = disconnectOf(device);
    const res = await api<{ revocation: { kind: string; issuedBefore: string }; disconnected: number }>(
      'POST',
      '/revocations',
      { deviceId: 'sensor-3', issuedBefore: new Date(cutoff).toISOString() },
    );
    assert.equal(res.status, 201, JSON.stringify(res.body));
    assert.equal(res.body.revocation.kind, 'device');
    assert.equal(res.body.disconnected, 1);
    assert.equal((await kicked).packet.reasonCode, ReasonCode.NotAuthorized);
    assert.equal(await refusedCode('sensor-3', old.token), ReasonCode.Banned);

    // The issuer's clock moves 2 s on: its next token's iat is past the cutoff.
    clock.offsetMs += 2000;
    const fresh = await mint('sensor-3');
    assert.ok(Date.parse(fresh.issuedAt) >= cutoff);
    const again = await connect('sensor-3', fresh.token);
    assert.ok(again.connected, 'a token issued after T is admitted: the device itself is not revoked');
    again.end(true);
  });
});
