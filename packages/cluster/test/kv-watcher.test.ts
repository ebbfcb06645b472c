/**
 * Issue 15: the supervised KV watch (kv-watcher.ts) against real nats-servers: entry semantics,
 * a kill -9 of the server its connection (and, when placement allows, its consumer) uses, and a
 * clean stop.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { type NatsClusterHandle, requireNatsServer, startNatsCluster } from '@breakwater/testkit';
import { connect, type KV, type NatsConnection } from 'nats';
import { pino } from 'pino';
import { type KvWatchEntry, KvWatcher, type KvWatcherContext } from '../src/kv-watcher.js';
import { ClusterMetrics } from '../src/metrics.js';
import { eventually } from './helpers.js';

const TIMEOUT_MS = 3000;

async function natsConnect(servers: string[]): Promise<NatsConnection> {
  // As NatsCluster connects: reconnect for ever, quickly.
  return connect({
    servers,
    noRandomize: true,
    ignoreClusterUpdates: true,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250,
    timeout: TIMEOUT_MS,
    pingInterval: 2000,
    maxPingOut: 2,
  });
}

async function contextOf(nc: NatsConnection): Promise<KvWatcherContext> {
  return {
    nc,
    js: nc.jetstream({ timeout: TIMEOUT_MS }),
    jsm: await nc.jetstreamManager({ timeout: TIMEOUT_MS }),
    metrics: new ClusterMetrics(),
    streamName: 'unused',
    logger: pino({ level: 'silent' }),
  };
}

async function bucket(nc: NatsConnection, name: string): Promise<KV> {
  return nc
    .jetstream({ timeout: TIMEOUT_MS })
    .views.kv(name, { replicas: 3, history: 1, timeout: TIMEOUT_MS });
}

/** What the tests compare: the entry without its buffer view and date. */
function brief(e: KvWatchEntry): string {
  return `${e.operation} ${e.key}=${Buffer.from(e.value).toString()} @${e.revision}`;
}

/** A put that retries (under a new key: a retry must not replace a write that did land). */
async function putRetrying(kv: KV, key: string, value: string): Promise<{ key: string; rev: number }> {
  for (let attempt = 0; ; attempt++) {
    const k = `${key}-${attempt}`;
    try {
      return { key: k, rev: await kv.put(k, value) };
    } catch (err) {
      if (attempt >= 40) throw err;
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}

/** After a server restart: until every replica of `stream` is current again (the next kill keeps quorum). */
async function replicasCurrent(nc: NatsConnection, stream: string): Promise<void> {
  const jsm = await nc.jetstreamManager({ timeout: TIMEOUT_MS });
  await eventually(
    async () => {
      const info = await jsm.streams.info(stream).catch(() => null);
      const replicas = info?.cluster?.replicas ?? [];
      return (
        info?.cluster?.leader !== undefined &&
        replicas.length === 2 &&
        replicas.every((r) => r.current && !r.offline)
      );
    },
    30_000,
    `${stream}: every replica current`,
  );
}

describe('KvWatcher', () => {
  let nats: NatsClusterHandle | null = null;
  let nc: NatsConnection | null = null;

  before(async (t) => {
    if (!requireNatsServer(t as never)) return;
    nats = await startNatsCluster(3);
    nc = await natsConnect([nats.urls[2]!]);
    // The buckets up front: after a kill test restarts its server, an R3 bucket cannot be placed
    // until the others count it online again (and the kill tests run last for the same reason).
    for (const name of ['w_order', 'w_stall', 'w_kill', 'w_stop']) await bucket(nc, name);
  });
  after(async () => {
    await nc?.close();
    await nats?.stop();
  });

  test('last-value: the current entries, then updates and deletes, in revision order', async (t) => {
    if (nc === null) return t.skip('no nats-server');
    const kv = await bucket(nc, 'w_order');
    const r1 = await kv.put('a', '1');
    await kv.put('b', '2');
    const r3 = await kv.put('a', '3');
    const r4 = await kv.delete('b').then(async () => (await kv.get('b'))!.revision);
    const got: string[] = [];
    const updatesOnly: string[] = [];
    const ctx = await contextOf(nc);
    const w = new KvWatcher(ctx, { bucket: 'w_order', include: 'last-value', what: 'test' }, (e) =>
      got.push(brief(e)),
    );
    const u = new KvWatcher(ctx, { bucket: 'w_order', include: 'updates-only', what: 'test' }, (e) =>
      updatesOnly.push(brief(e)),
    );
    const noDeletes: string[] = [];
    const d = new KvWatcher(
      ctx,
      { bucket: 'w_order', include: 'last-value', ignoreDeletes: true, what: 'test' },
      (e) => noDeletes.push(brief(e)),
    );
    try {
      await Promise.all([w.start(), u.start(), d.start()]);
      assert.ok(r1 < r3);
      // start() resolved with the initial load delivered: the last value of each key, a delete too.
      assert.deepEqual(got, [`PUT a=3 @${r3}`, `DEL b= @${r4}`]);
      assert.deepEqual(noDeletes, [`PUT a=3 @${r3}`]);
      assert.deepEqual(updatesOnly, []);
      const r5 = await kv.put('c', '4');
      await kv.delete('a');
      const r6 = (await kv.get('a'))!.revision;
      await kv.purge('c');
      const r7 = (await kv.get('c'))!.revision;
      const r8 = await kv.put('a', '5');
      const updates = [`PUT c=4 @${r5}`, `DEL a= @${r6}`, `PURGE c= @${r7}`, `PUT a=5 @${r8}`];
      await eventually(() => got.length === 6 && updatesOnly.length === 4, 10_000, 'updates delivered');
      assert.deepEqual(got.slice(2), updates);
      assert.deepEqual(updatesOnly, updates);
      await eventually(() => noDeletes.length === 3, 10_000, 'puts delivered');
      assert.deepEqual(noDeletes.slice(1), [`PUT c=4 @${r5}`, `PUT a=5 @${r8}`]);
      assert.equal(w.lastRevision, r8);
    } finally {
      await Promise.all([w.stop(), u.stop(), d.stop()]);
    }
  });

  test('stop(): no entry after it, its consumer deleted, no timer left', async (t) => {
    if (nc === null) return t.skip('no nats-server');
    const kv = await bucket(nc, 'w_stop');
    await kv.put('x', '1');
    const ctx = await contextOf(nc);
    const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    const baseline = timers();
    const got: string[] = [];
    const w = new KvWatcher(ctx, { bucket: 'w_stop', include: 'last-value', what: 'test' }, (e) =>
      got.push(brief(e)),
    );
    await w.start();
    const name = w.consumerName!;
    await kv.put('x', '2');
    await eventually(() => got.length === 2, 10_000, 'the update');
    assert.ok(timers() > baseline, 'the watcher runs timers while it watches');
    await w.stop();
    assert.equal(w.consumerName, null);
    assert.equal(timers(), baseline, 'no timer of the watcher left');
    const names: string[] = [];
    for await (const c of await ctx.jsm.consumers.list('KV_w_stop')) names.push(c.name);
    assert.ok(!names.includes(name), 'the consumer is deleted');
    await kv.put('x', '3');
    // A watcher still reading would have it by the time a fresh one has caught up.
    const later: string[] = [];
    const w2 = new KvWatcher(ctx, { bucket: 'w_stop', include: 'last-value', what: 'test' }, (e) =>
      later.push(brief(e)),
    );
    await w2.start();
    await w2.stop();
    assert.equal(later.length, 1);
    assert.equal(got.length, 2, 'nothing delivered after stop()');
    assert.equal(timers(), baseline);
  });

  test('kill -9 of the server its consumer lives on (the connection stays): replaced, nothing lost or repeated', async (t) => {
    if (nats === null || nc === null) return t.skip('no nats-server');
    const KILLED = 1;
    const killedName = nats.servers[KILLED]!.name;
    // The watcher's connection stays up (server 2): no reconnect tells it anything; the missed
    // idle heartbeats and the stall check must.
    const kv = await bucket(nc, 'w_stall');
    const ctx = await contextOf(nc);
    const got: KvWatchEntry[] = [];
    const open = async () => {
      const w = new KvWatcher(ctx, { bucket: 'w_stall', include: 'updates-only', what: 'test' }, (e) =>
        got.push({ ...e, value: Buffer.from(e.value) }),
      );
      await w.start();
      return w;
    };
    const leaderOf = async (w: KvWatcher) =>
      (await ctx.jsm.consumers.info('KV_w_stall', w.consumerName!)).cluster?.leader ?? null;
    let w = await open();
    for (let i = 0; i < 12 && (await leaderOf(w)) !== killedName; i++) {
      await w.stop();
      w = await open();
    }
    const placed = await leaderOf(w);
    t.diagnostic(`watch consumer on ${placed}; killing ${killedName}`);
    try {
      const written: { key: string; rev: number }[] = [];
      for (let i = 0; i < 10; i++) written.push(await putRetrying(kv, `before-${i}`, String(i)));
      await eventually(() => got.length === 10, 10_000, 'updates before the kill');
      const restartsBefore = w.restarts;
      await nats.kill(KILLED);
      for (let i = 0; i < 50; i++) written.push(await putRetrying(kv, `after-${i}`, String(i)));
      const revs = () => new Set(got.map((e) => e.revision));
      const missing = () => written.filter((x) => !revs().has(x.rev));
      await eventually(() => missing().length === 0, 30_000, 'every acknowledged update delivered').catch(
        (err: Error) => {
          throw new Error(`${err.message}: ${missing().length} of ${written.length} missing`);
        },
      );
      for (let i = 1; i < got.length; i++)
        assert.ok(got[i]!.revision > got[i - 1]!.revision, 'in order, no duplicate');
      if (placed === killedName) assert.ok(w.restarts > restartsBefore, 'the dead consumer was replaced');
    } finally {
      await w.stop();
      await nats.start(KILLED);
      // The next test kills another server: the bucket it writes must have its quorum back.
      await replicasCurrent(nc, 'KV_w_stall');
      await replicasCurrent(nc, 'KV_w_kill');
    }
  });

  test('kill -9 of the server its connection uses: every later update arrives once, in order', async (t) => {
    if (nats === null || nc === null) return t.skip('no nats-server');
    const KILLED = 0;
    const killedName = nats.servers[KILLED]!.name;
    // The watcher's connection: server 0 first (it fails over to the others).
    const wnc = await natsConnect([nats.urls[KILLED]!, nats.urls[1]!, nats.urls[2]!]);
    const kv = await bucket(nc, 'w_kill');
    for (let i = 0; i < 10; i++) await kv.put(`init-${i}`, String(i));
    const ctx = await contextOf(wnc);
    const got: KvWatchEntry[] = [];
    const gotUpdates: KvWatchEntry[] = [];
    const open = async () => {
      const w = new KvWatcher(ctx, { bucket: 'w_kill', include: 'last-value', what: 'test' }, (e) =>
        got.push({ ...e, value: Buffer.from(e.value) }),
      );
      await w.start();
      return w;
    };
    const leaderOf = async (w: KvWatcher) =>
      (await ctx.jsm.consumers.info('KV_w_kill', w.consumerName!)).cluster?.leader ?? null;
    // The consumer on the server that dies too, when placement allows (the server's random pick:
    // a few tries). Otherwise the test still covers a connection lost under a live consumer.
    let w = await open();
    for (let i = 0; i < 12 && (await leaderOf(w)) !== killedName; i++) {
      await w.stop();
      got.length = 0;
      w = await open();
    }
    const u = new KvWatcher(ctx, { bucket: 'w_kill', include: 'updates-only', what: 'test' }, (e) =>
      gotUpdates.push({ ...e, value: Buffer.from(e.value) }),
    );
    await u.start();
    t.diagnostic(
      `watch consumer on ${await leaderOf(w)}, updates-only on ${await leaderOf(u)}; killing ${killedName}`,
    );
    try {
      assert.equal(got.length, 10, 'initial entries');
      const written: { key: string; rev: number }[] = [];
      for (let i = 0; i < 20; i++) written.push(await putRetrying(kv, `before-${i}`, String(i)));
      await eventually(() => got.length === 30, 10_000, 'updates before the kill');
      const restartsBefore = w.restarts;
      await nats.kill(KILLED);
      for (let i = 0; i < 100; i++) written.push(await putRetrying(kv, `after-${i}`, String(i)));
      const revs = (list: KvWatchEntry[]) => new Set(list.map((e) => e.revision));
      const missing = (list: KvWatchEntry[]) => written.filter((x) => !revs(list).has(x.rev));
      await eventually(
        () => missing(got).length === 0 && missing(gotUpdates).length === 0,
        30_000,
        'every acknowledged update delivered',
      ).catch((err: Error) => {
        throw new Error(
          `${err.message}: last-value missing ${missing(got).length}, updates-only missing ${missing(gotUpdates).length} of ${written.length}`,
        );
      });
      for (const list of [got, gotUpdates]) {
        // Each revision once, in order (a replaced consumer resumes after the last delivered).
        for (let i = 1; i < list.length; i++)
          assert.ok(list[i]!.revision > list[i - 1]!.revision, 'in order, no duplicate');
        // Every write of the test is what was written under its key.
        for (const x of written) {
          const e = list.find((y) => y.revision === x.rev)!;
          assert.equal(e.key, x.key);
          assert.equal(e.operation, 'PUT');
        }
      }
      assert.ok(w.restarts > restartsBefore, 'the consumer was replaced after the connection moved');
    } finally {
      await Promise.all([w.stop(), u.stop()]);
      await wnc.close();
      await nats.start(KILLED);
      await replicasCurrent(nc, 'KV_w_kill');
    }
  });
});
