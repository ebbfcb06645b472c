import assert from 'node:assert/strict';
import { afterEach, describe, test } from 'node:test';
import { FakeClock, startBroker, type TestBroker } from '@breakwater/testkit';
import { ReasonCode } from '../../src/index.js';
import { ClientPool, eventually, metricValue, nothingReceived, publish, subscribe, sync } from './helpers.js';

describe('engine: CONNECT / CONNACK and connection hygiene', () => {
  let tb: TestBroker;
  const pool = new ClientPool(() => tb);
  afterEach(async () => {
    await pool.closeAll();
    await tb.close();
  });

  test('[MQTT-3.1.0-1] first packet not CONNECT closes the connection', async () => {
    tb = await startBroker();
    const c = await pool.open();
    publish(c, 'a', 'x');
    await c.closed();
    assert.equal(c.isClosed, true);
  });

  test('[MQTT-3.1.0-2] second CONNECT is a protocol error: v5 DISCONNECT 0x82 then close', async () => {
    tb = await startBroker();
    const c = await pool.connected('twice', 5);
    c.send({
      cmd: 'connect',
      protocolId: 'MQTT',
      protocolVersion: 5,
      clientId: 'twice',
      clean: true,
      keepalive: 0,
    });
    const d = (await c.next('disconnect')) as { reasonCode: number; properties?: { reasonString?: string } };
    assert.equal(d.reasonCode, ReasonCode.ProtocolError);
    assert.match(d.properties?.reasonString ?? '', /second CONNECT/);
    await c.closed();
  });

  test('[MQTT-3.1.2-2] unsupported protocol level gets CONNACK return code 1', async () => {
    tb = await startBroker();
    const c = await pool.open();
    // CONNECT with protocol name MQTT and level 6.
    c.send(Buffer.from([0x10, 0x0c, 0x00, 0x04, 0x4d, 0x51, 0x54, 0x54, 0x06, 0x02, 0x00, 0x3c, 0x00, 0x00]));
    const ack = (await c.next('connack')) as { returnCode: number };
    assert.equal(ack.returnCode, 1);
    await c.closed();
  });

  test('[MQTT-3.1.3-8] v3.1.1 empty client id with CleanSession=0 is refused with return code 2', async () => {
    tb = await startBroker();
    const c = await pool.open(4);
    // Raw bytes: mqtt-packet refuses to encode this CONNECT. Flags 0x00 = CleanSession 0.
    c.send(Buffer.from([0x10, 0x0c, 0x00, 0x04, 0x4d, 0x51, 0x54, 0x54, 0x04, 0x00, 0x00, 0x3c, 0x00, 0x00]));
    const ack = (await c.next('connack')) as { returnCode: number };
    assert.equal(ack.returnCode, 2);
    await c.closed();
  });

  test('[MQTT-3.1.3-6] [MQTT-3.2.2-16] v5 empty client id gets an Assigned Client Identifier', async () => {
    tb = await startBroker();
    const c = await pool.open(5);
    const ack = await c.connect({ clientId: '', protocolVersion: 5 });
    assert.equal(ack.reasonCode, 0);
    assert.match(ack.properties?.assignedClientIdentifier ?? '', /^bw-/);
  });

  test('[MQTT-4.12.0-1] an Authentication Method is refused with 0x8C and a reason string', async () => {
    tb = await startBroker();
    const c = await pool.open(5);
    const ack = await c.connect({
      clientId: 'am',
      protocolVersion: 5,
      properties: { authenticationMethod: 'SCRAM' },
    });
    assert.equal(ack.reasonCode, ReasonCode.BadAuthenticationMethod);
    assert.ok(ack.properties?.reasonString);
    await c.closed();
  });

  test('[MQTT-3.1.4-3] session takeover: old v5 connection gets DISCONNECT 0x8E and its socket is closed at once', async () => {
    tb = await startBroker();
    const old = await pool.connected('dup', 5);
    const fresh = await pool.connected('dup', 5);
    const d = (await old.next('disconnect')) as { reasonCode: number };
    assert.equal(d.reasonCode, ReasonCode.SessionTakenOver);
    await old.closed();
    assert.equal(tb.broker.connectedClients, 1);
    await eventually(() => tb.openSockets() === 1, 'server side socket of the old connection closed');
    // The new connection works.
    await subscribe(fresh, 't');
  });

  test('connect timeout: a socket that sends no CONNECT is destroyed after limits.connectTimeoutMs', async () => {
    const clock = new FakeClock();
    tb = await startBroker({ clock, limits: { connectTimeoutMs: 10_000 } });
    const c = await pool.open();
    await eventually(() => tb.openSockets() === 1, 'accepted');
    assert.equal(await metricValue(tb, 'breakwater_sockets_without_connect', { listener: 'test' }), 1);
    clock.advance(9_000);
    assert.equal(c.isClosed, false);
    clock.advance(2_000);
    await c.closed();
    await eventually(() => tb.openSockets() === 0, 'server socket closed');
    assert.equal(await metricValue(tb, 'breakwater_sockets_without_connect', { listener: 'test' }), 0);
    assert.equal(await metricValue(tb, 'breakwater_open_sockets', { listener: 'test' }), 0);
  });

  test('[MQTT-3.1.2-22] keepalive enforced at 1.5x: v5 DISCONNECT 0x8D and the will is published', async () => {
    const clock = new FakeClock();
    tb = await startBroker({ clock });
    const watcher = await pool.connected('watcher', 4);
    await subscribe(watcher, 'will/ka');
    const c = await pool.connected('sleepy', 5, {
      keepalive: 10,
      will: { topic: 'will/ka', payload: Buffer.from('gone'), qos: 0, retain: false },
    });
    clock.advance(14_000);
    assert.equal(c.isClosed, false, 'not before 1.5 x keepalive');
    clock.advance(2_000);
    const d = (await c.next('disconnect')) as { reasonCode: number };
    assert.equal(d.reasonCode, ReasonCode.KeepAliveTimeout);
    await c.closed();
    const w = (await watcher.next('publish')) as { topic: string; payload: Buffer };
    assert.equal(w.payload.toString(), 'gone');
  });

  test('[MQTT-3.2.2-21] Server Keep Alive caps the v5 keepalive', async () => {
    tb = await startBroker({ limits: { maxKeepaliveSec: 30 } });
    const c = await pool.open(5);
    const ack = await c.connect({ clientId: 'ka', protocolVersion: 5, keepalive: 0 });
    assert.equal(ack.properties?.serverKeepAlive, 30);
  });

  test('authenticate hook: refusal gives v5 CONNACK with the reason code and string, v3 return code 4', async () => {
    tb = await startBroker({
      hooks: {
        authenticate: async (r) =>
          r.username === 'ok'
            ? { ok: true }
            : { ok: false, reasonCode: ReasonCode.BadUserNameOrPassword, reasonString: 'nope' },
      },
    });
    const c5 = await pool.open(5);
    const ack5 = await c5.connect({ clientId: 'a5', protocolVersion: 5, username: 'bad' });
    assert.equal(ack5.reasonCode, ReasonCode.BadUserNameOrPassword);
    assert.equal(ack5.properties?.reasonString, 'nope');
    await c5.closed();
    const c4 = await pool.open(4);
    const ack4 = await c4.connect({ clientId: 'a4', username: 'bad' });
    assert.equal(ack4.returnCode, 4);
    const good = await pool.open(4);
    const ok = await good.connect({ clientId: 'a-ok', username: 'ok' });
    assert.equal(ok.returnCode, 0);
  });

  test('authenticate hook: packets pipelined after CONNECT wait for the decision', async () => {
    let release: () => void = () => {};
    const gate = new Promise<void>((r) => {
      release = r;
    });
    tb = await startBroker({
      hooks: {
        authenticate: async () => {
          await gate;
          return { ok: true };
        },
      },
    });
    const c = await pool.open(4);
    c.send({
      cmd: 'connect',
      protocolId: 'MQTT',
      protocolVersion: 4,
      clientId: 'pipe',
      clean: true,
      keepalive: 0,
    });
    c.send({ cmd: 'subscribe', messageId: 3, subscriptions: [{ topic: 'p', qos: 0 }] });
    assert.equal(await nothingReceived(c, 'connack', 100), true);
    release();
    await c.next('connack');
    const s = (await c.next('suback')) as { granted: number[] };
    assert.deepEqual(s.granted, [0]);
  });

  test('authenticate hook: a socket closed while authenticating leaves nothing behind', async () => {
    let release: () => void = () => {};
    const gate = new Promise<void>((r) => {
      release = r;
    });
    tb = await startBroker({
      hooks: {
        authenticate: async () => {
          await gate;
          return { ok: true };
        },
      },
    });
    const c = await pool.open(4);
    c.send({
      cmd: 'connect',
      protocolId: 'MQTT',
      protocolVersion: 4,
      clientId: 'gone',
      clean: true,
      keepalive: 0,
    });
    await eventually(() => tb.openSockets() === 1, 'accepted');
    await c.end();
    await eventually(() => tb.openSockets() === 0, 'closed');
    release();
    await new Promise((r) => setImmediate(r));
    assert.equal(tb.broker.connectedClients, 0);
    assert.equal(tb.broker.sessionCount, 0);
  });

  test('metrics: connections, attempts and sessions follow connect and close', async () => {
    tb = await startBroker();
    const c = await pool.connected('m1', 4);
    assert.equal(await metricValue(tb, 'breakwater_connections', { listener: 'test' }), 1);
    assert.equal(await metricValue(tb, 'breakwater_connection_attempts_total', { listener: 'test' }), 1);
    assert.equal(await metricValue(tb, 'breakwater_sessions', { state: 'online' }), 1);
    c.send({ cmd: 'disconnect' });
    await c.closed();
    await eventually(() => tb.broker.connectedClients === 0, 'disconnected');
    assert.equal(await metricValue(tb, 'breakwater_connections', { listener: 'test' }), 0);
    assert.equal(await metricValue(tb, 'breakwater_sessions', { state: 'online' }), 0);
    assert.equal(tb.broker.sessionCount, 0);
  });
});

describe('engine: slow consumers', () => {
  test('a subscriber whose socket stays unwritable for limits.drainTimeoutMs is cut', async () => {
    const clock = new FakeClock();
    const tb = await startBroker({ clock, limits: { drainTimeoutMs: 5_000, maxPacketSize: 256 * 1024 } });
    const pool = new ClientPool(() => tb);
    try {
      const slow = await pool.connected('slow', 4);
      await subscribe(slow, 'flood');
      slow.socket.pause(); // stop reading: the broker's writes back up
      const p = await pool.connected('flooder', 4);
      const big = Buffer.alloc(128 * 1024, 7);
      for (let i = 0; i < 100; i++) publish(p, 'flood', big);
      await sync(p);
      assert.equal(tb.openSockets(), 2);
      clock.advance(6_000);
      await eventually(() => tb.openSockets() === 1, 'slow consumer socket destroyed');
      assert.ok(
        (await metricValue(tb, 'breakwater_messages_dropped_total', { reason: 'slow_consumer' })) >= 1,
      );
      // The publisher is unaffected.
      await sync(p);
    } finally {
      await pool.closeAll();
      await tb.close();
    }
  });
});
