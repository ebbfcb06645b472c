import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, describe, test } from 'node:test';
import { FakeClock, startBroker, type TestBroker } from '@breakwater/testkit';
import { ReasonCode, SqliteStorage } from '../../src/index.js';
import { ClientPool, eventually, metricValue, nothingReceived, publish, subscribe, sync } from './helpers.js';

type Pub = { topic: string; payload: Buffer; qos: number; retain: boolean; dup: boolean; messageId?: number };

describe('engine: sessions, QoS flows, wills', () => {
  let tb: TestBroker;
  const pool = new ClientPool(() => tb);
  afterEach(async () => {
    await pool.closeAll();
    await tb.close();
  });

  test('[MQTT-3.1.2-4] [MQTT-3.1.2-5] persistent session: subscriptions kept, offline QoS 1 delivered, session present', async () => {
    tb = await startBroker();
    const s = await pool.connected('ps', 4, { clean: false });
    await subscribe(s, 'ps/t', 1);
    s.send({ cmd: 'disconnect' });
    await s.closed();
    const p = await pool.connected('ps-p', 4);
    publish(p, 'ps/t', 'while away', 1, { messageId: 2 });
    await p.next('puback');
    publish(p, 'ps/t', 'qos0 not queued', 0);
    await sync(p);
    const back = await pool.open(4);
    const ack = await back.connect({ clientId: 'ps', clean: false });
    assert.equal(ack.sessionPresent, true);
    const m = (await back.next('publish')) as Pub;
    assert.equal(m.payload.toString(), 'while away');
    back.send({ cmd: 'puback', messageId: m.messageId! });
    assert.equal(await nothingReceived(back, 'publish'), true);
    // Clean start discards it [MQTT-3.1.2-4].
    await back.end();
    const clean = await pool.open(4);
    const ack2 = await clean.connect({ clientId: 'ps', clean: true });
    assert.equal(ack2.sessionPresent, false);
  });

  test('[MQTT-4.4.0-1] unacknowledged QoS 1/2 are resent with DUP=1 on reconnect, PUBREL for released', async () => {
    tb = await startBroker();
    const s = await pool.connected('redeliver', 5, {
      clean: false,
      properties: { sessionExpiryInterval: 60 },
    });
    await subscribe(s, 'rd/#', 2);
    const p = await pool.connected('rd-p', 5);
    publish(p, 'rd/1', 'q1', 1, { messageId: 1 });
    publish(p, 'rd/2', 'q2', 2, { messageId: 2 });
    const a = (await s.next('publish')) as Pub;
    const b = (await s.next('publish')) as Pub;
    assert.equal(a.dup, false);
    s.send({ cmd: 'pubrec', messageId: b.messageId! });
    await s.next('pubrel');
    await s.end(); // no PUBACK for a, no PUBCOMP for b
    const back = await pool.open(5);
    const ack = await back.connect({
      clientId: 'redeliver',
      clean: false,
      protocolVersion: 5,
      properties: { sessionExpiryInterval: 60 },
    });
    assert.equal(ack.sessionPresent, true);
    const again = (await back.next('publish')) as Pub;
    assert.equal(again.dup, true);
    assert.equal(again.messageId, a.messageId);
    assert.equal(again.payload.toString(), 'q1');
    const rel = (await back.next('pubrel')) as { messageId: number };
    assert.equal(rel.messageId, b.messageId);
    back.send({ cmd: 'puback', messageId: a.messageId! });
    back.send({ cmd: 'pubcomp', messageId: b.messageId! });
    await sync(back);
    assert.equal(await metricValue(tb, 'breakwater_inflight_messages'), 0);
  });

  test('[MQTT-4.9.0-?] outbound in flight is bounded by the client Receive Maximum; the rest is queued', async () => {
    tb = await startBroker();
    const s = await pool.connected('rmax', 5, { properties: { receiveMaximum: 2 } });
    await subscribe(s, 'rx/t', 1);
    const p = await pool.connected('rx-p', 5);
    for (let i = 1; i <= 5; i++) publish(p, 'rx/t', String(i), 1, { messageId: i });
    const first = [(await s.next('publish')) as Pub, (await s.next('publish')) as Pub];
    assert.equal(await nothingReceived(s, 'publish'), true, 'window full at 2');
    s.send({ cmd: 'puback', messageId: first[0]!.messageId! });
    const third = (await s.next('publish')) as Pub;
    assert.equal(third.payload.toString(), '3');
  });

  test('offline queue limit: overflow dropped and counted as queue_full', async () => {
    tb = await startBroker({ limits: { offlineQueueLimit: 2 } });
    const s = await pool.connected('ql', 4, { clean: false });
    await subscribe(s, 'ql/t', 1);
    s.send({ cmd: 'disconnect' });
    await s.closed();
    const p = await pool.connected('ql-p', 4);
    for (let i = 1; i <= 4; i++) {
      publish(p, 'ql/t', String(i), 1, { messageId: i });
      await p.next('puback');
    }
    assert.equal(await metricValue(tb, 'breakwater_messages_dropped_total', { reason: 'queue_full' }), 2);
    const back = await pool.open(4);
    await back.connect({ clientId: 'ql', clean: false });
    const got = [
      ((await back.next('publish')) as Pub).payload.toString(),
      ((await back.next('publish')) as Pub).payload.toString(),
    ];
    assert.deepEqual(got, ['1', '2']);
  });

  test('persistent session, acknowledged QoS 1 and retained survive a broker restart (SQLite file)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'bw-engine-'));
    after(() => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, 'broker.db');
    tb = await startBroker({ storage: new SqliteStorage({ file }) });
    const s = await pool.connected('restart', 5, {
      clean: false,
      properties: { sessionExpiryInterval: 3600 },
    });
    await subscribe(s, 'rs/#', 1);
    await s.end();
    const p = await pool.connected('rs-p', 5);
    publish(p, 'rs/t', 'durable', 1, { messageId: 1, retain: true });
    await p.next('puback');
    await pool.closeAll();
    await tb.close();
    tb = await startBroker({ storage: new SqliteStorage({ file }) });
    assert.equal(tb.broker.sessionCount, 1);
    const back = await pool.open(5);
    const ack = await back.connect({
      clientId: 'restart',
      clean: false,
      protocolVersion: 5,
      properties: { sessionExpiryInterval: 3600 },
    });
    assert.equal(ack.sessionPresent, true);
    const m = (await back.next('publish')) as Pub;
    assert.equal(m.payload.toString(), 'durable');
    back.send({ cmd: 'puback', messageId: m.messageId! });
    const fresh = await pool.connected('rs-new', 5);
    await subscribe(fresh, 'rs/t');
    assert.equal(((await fresh.next('publish')) as Pub).retain, true, 'retained survived');
  });

  test('[MQTT-3.1.2-?] session expiry: an offline session is deleted after its expiry interval', async () => {
    const clock = new FakeClock();
    tb = await startBroker({ clock });
    const s = await pool.connected('exp', 5, { clean: false, properties: { sessionExpiryInterval: 30 } });
    await subscribe(s, 'e/t', 1);
    s.send({ cmd: 'disconnect' });
    await s.closed();
    await eventually(() => tb.broker.connectedClients === 0, 'offline');
    assert.equal(tb.broker.sessionCount, 1);
    clock.advance(29_000);
    assert.equal(tb.broker.sessionCount, 1);
    clock.advance(2_000);
    assert.equal(tb.broker.sessionCount, 0);
    assert.equal(await metricValue(tb, 'breakwater_subscriptions'), 0);
  });

  test('[MQTT-3.14.2-2] DISCONNECT raising Session Expiry from 0 is a protocol error', async () => {
    tb = await startBroker();
    const c = await pool.connected('dse', 5);
    c.send({ cmd: 'disconnect', reasonCode: 0, properties: { sessionExpiryInterval: 10 } });
    const d = (await c.next('disconnect')) as { reasonCode: number };
    assert.equal(d.reasonCode, ReasonCode.ProtocolError);
  });

  test('[MQTT-3.1.2-8] will published on abnormal close, [MQTT-3.14.4-3] not on normal DISCONNECT, 0x04 sends it', async () => {
    tb = await startBroker();
    const w = await pool.connected('will-watch', 5);
    await subscribe(w, 'will/#');
    const will = (t: string) => ({ will: { topic: t, payload: Buffer.from(t), qos: 0, retain: false } });
    const a = await pool.connected('w-abrupt', 5, will('will/abrupt'));
    await a.end();
    assert.equal(((await w.next('publish')) as Pub).topic, 'will/abrupt');
    const n = await pool.connected('w-normal', 5, will('will/normal'));
    n.send({ cmd: 'disconnect', reasonCode: 0 });
    await n.closed();
    const x = await pool.connected('w-04', 5, will('will/04'));
    x.send({ cmd: 'disconnect', reasonCode: ReasonCode.DisconnectWithWillMessage });
    await x.closed();
    assert.equal(((await w.next('publish')) as Pub).topic, 'will/04', 'normal DISCONNECT sent no will');
    const e = await pool.connected('w-proto', 5, will('will/proto'));
    e.send(Buffer.from([0x00, 0x00]));
    assert.equal(
      ((await w.next('publish')) as Pub).topic,
      'will/proto',
      'protocol-error close sends the will',
    );
  });

  test('[MQTT-3.1.3-9] will delay: published after the delay, cancelled when the session reconnects in time', async () => {
    const clock = new FakeClock();
    tb = await startBroker({ clock });
    const w = await pool.connected('wd-watch', 5);
    await subscribe(w, 'wd/#');
    const opts = (t: string) => ({
      clean: false,
      properties: { sessionExpiryInterval: 300 },
      will: {
        topic: t,
        payload: Buffer.from(t),
        qos: 0,
        retain: false,
        properties: { willDelayInterval: 10 },
      },
    });
    const late = await pool.connected('wd-late', 5, opts('wd/late'));
    const back = await pool.connected('wd-back', 5, opts('wd/back'));
    await late.end();
    await back.end();
    await eventually(() => tb.broker.connectedClients === 1, 'both offline');
    clock.advance(5_000);
    await pool.connected('wd-back', 5, opts('wd/back')); // returns before its delay: will cancelled
    clock.advance(6_000);
    const m = (await w.next('publish')) as Pub;
    assert.equal(m.topic, 'wd/late');
    assert.equal(await nothingReceived(w, 'publish'), true);
  });

  test('broker.close(): v5 clients get DISCONNECT 0x8B and every socket is closed', async () => {
    tb = await startBroker();
    const c5 = await pool.connected('bye5', 5);
    const c4 = await pool.connected('bye4', 4);
    const closing = tb.broker.close();
    const d = (await c5.next('disconnect')) as { reasonCode: number };
    assert.equal(d.reasonCode, ReasonCode.ServerShuttingDown);
    await closing;
    await c5.closed();
    await c4.closed();
  });

  test('disconnectClient() kicks a live session with the given reason code; publish() delivers server messages', async () => {
    tb = await startBroker();
    const c = await pool.connected('kick', 5);
    await subscribe(c, 'srv/t', 1);
    await tb.broker.publish({ topic: 'srv/t', payload: Buffer.from('from server'), qos: 1 });
    const m = (await c.next('publish')) as Pub;
    assert.equal(m.payload.toString(), 'from server');
    assert.equal(tb.broker.disconnectClient('kick', ReasonCode.NotAuthorized, 'revoked'), true);
    const d = (await c.next('disconnect')) as { reasonCode: number };
    assert.equal(d.reasonCode, ReasonCode.NotAuthorized);
    await c.closed();
    assert.equal(tb.broker.disconnectClient('kick', ReasonCode.NotAuthorized), false);
  });
});
