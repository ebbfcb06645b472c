/**
 * The storage contract, written once and run against every driver (memory.test.ts,
 * sqlite.test.ts), like MQTT.js's abstract_store.ts. Every round trip is read back through
 * `durable()` after `flush()`: for SQLite that is a second instance on the same file, so these
 * tests check what reached the database, not what one instance remembers.
 */
import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import type {
  BrokerStorage,
  OutboxRecord,
  RetainedRecord,
  SessionRecord,
  SubscriptionRecord,
  WillRecord,
} from '../../src/storage/types.js';

export interface StorageHarness {
  /** An opened instance, empty. */
  storage: BrokerStorage;
  /**
   * An instance that sees only what is durable: SQLite opens a fresh instance on the same file
   * (without closing `storage`); memory returns `storage` itself.
   */
  durable(): Promise<BrokerStorage>;
  /** Close `storage` and open a new instance on the same data; null if the driver does not persist. */
  reopen: (() => Promise<BrokerStorage>) | null;
  /** Close every instance and delete files. */
  cleanup(): Promise<void>;
}

type SessionRow = Omit<SessionRecord, 'subscriptions' | 'will'>;

function session(clientId: string, over: Partial<SessionRow> = {}): SessionRow {
  return { clientId, protocolVersion: 5, expiryInterval: 3600, disconnectedAt: null, ...over };
}

function sub(filter: string, over: Partial<SubscriptionRecord> = {}): SubscriptionRecord {
  return { filter, qos: 1, noLocal: false, retainAsPublished: false, retainHandling: 0, ...over };
}

function outbox(seq: number, over: Partial<OutboxRecord> = {}): OutboxRecord {
  return {
    seq,
    qos: 1,
    packetId: null,
    state: 'queued',
    topic: `t/${seq}`,
    payload: Buffer.from(`payload ${seq}`),
    retain: false,
    properties: null,
    subscriptionIds: null,
    expiresAt: null,
    ...over,
  };
}

function will(over: Partial<WillRecord> = {}): WillRecord {
  return {
    topic: 'wills/x',
    payload: Buffer.from('gone'),
    qos: 1,
    retain: false,
    properties: null,
    delaySec: 0,
    expirySec: null,
    dueAt: null,
    ...over,
  };
}

function retained(topic: string, over: Partial<RetainedRecord> = {}): RetainedRecord {
  return {
    topic,
    payload: Buffer.from(`retained ${topic}`),
    qos: 1,
    properties: null,
    expiresAt: null,
    publisherId: null,
    ...over,
  };
}

/** Every byte value, so an encoding that is not byte-exact (UTF-8, base64 slip) shows. */
const allBytes = Buffer.from(Array.from({ length: 256 }, (_, i) => i));

function sortedSessions(list: SessionRecord[]): SessionRecord[] {
  return list
    .map((s) => ({
      ...s,
      subscriptions: [...s.subscriptions].sort((a, b) => a.filter.localeCompare(b.filter)),
    }))
    .sort((a, b) => a.clientId.localeCompare(b.clientId));
}

function sortedRetained(list: RetainedRecord[]): RetainedRecord[] {
  return [...list].sort((a, b) => a.topic.localeCompare(b.topic));
}

function assertStorageError(err: unknown): true {
  assert.ok(err instanceof Error);
  assert.equal((err as Error & { code?: string }).code, 'BW_ERR_STORAGE');
  return true;
}

export function runStorageContract(name: string, makeStorage: () => Promise<StorageHarness>): void {
  async function setup(t: TestContext): Promise<StorageHarness> {
    const h = await makeStorage();
    t.after(() => h.cleanup());
    return h;
  }

  async function reread(h: StorageHarness): Promise<BrokerStorage> {
    await h.storage.flush();
    return h.durable();
  }

  describe(`storage contract: ${name}`, () => {
    it('starts empty', async (t) => {
      const h = await setup(t);
      const s = h.storage;
      assert.deepEqual(s.loadSessions(), []);
      assert.deepEqual(s.loadOutbox('nobody'), []);
      assert.deepEqual(s.loadInboundQos2('nobody'), []);
      assert.deepEqual(s.loadRetained(), []);
      await s.flush();
    });

    it('sessions: put, load, replace, delete', async (t) => {
      const h = await setup(t);
      const s = h.storage;
      s.putSession(session('a', { protocolVersion: 4, expiryInterval: 0xffffffff }));
      s.putSession(session('b', { disconnectedAt: 1_700_000_000_123 }));
      s.putSession(session('c'));
      let d = await reread(h);
      assert.deepEqual(sortedSessions(d.loadSessions()), [
        { ...session('a', { protocolVersion: 4, expiryInterval: 0xffffffff }), subscriptions: [] },
        { ...session('b', { disconnectedAt: 1_700_000_000_123 }), subscriptions: [] },
        { ...session('c'), subscriptions: [] },
      ]);

      s.putSession(session('a', { protocolVersion: 5, expiryInterval: 10, disconnectedAt: 42 }));
      s.deleteSession('c');
      d = await reread(h);
      assert.deepEqual(sortedSessions(d.loadSessions()), [
        {
          ...session('a', { protocolVersion: 5, expiryInterval: 10, disconnectedAt: 42 }),
          subscriptions: [],
        },
        { ...session('b', { disconnectedAt: 1_700_000_000_123 }), subscriptions: [] },
      ]);
    });

    it('putSession ignores a subscriptions property and keeps stored subscriptions', async (t) => {
      const h = await setup(t);
      const s = h.storage;
      s.putSession(session('a'));
      s.putSubscription('a', sub('x/#'));
      const withSubs = { ...session('a', { expiryInterval: 7 }), subscriptions: [sub('ignored')] };
      s.putSession(withSubs);
      const d = await reread(h);
      assert.deepEqual(d.loadSessions(), [
        { ...session('a', { expiryInterval: 7 }), subscriptions: [sub('x/#')] },
      ]);
    });

    it('subscriptions: put, replace by filter, delete, loaded with the session', async (t) => {
      const h = await setup(t);
      const s = h.storage;
      s.putSession(session('a'));
      s.putSession(session('b'));
      s.putSubscription('a', sub('sensors/+/temp', { qos: 0 }));
      s.putSubscription('a', sub('$share/g1/jobs/#', { qos: 2, subscriptionId: 268_435_455 }));
      s.putSubscription('a', sub('x', { noLocal: true, retainAsPublished: true, retainHandling: 2 }));
      s.putSubscription('b', sub('sensors/+/temp', { qos: 2 }));
      let d = await reread(h);
      assert.deepEqual(sortedSessions(d.loadSessions()), [
        {
          ...session('a'),
          subscriptions: [
            sub('$share/g1/jobs/#', { qos: 2, subscriptionId: 268_435_455 }),
            sub('sensors/+/temp', { qos: 0 }),
            sub('x', { noLocal: true, retainAsPublished: true, retainHandling: 2 }),
          ],
        },
        { ...session('b'), subscriptions: [sub('sensors/+/temp', { qos: 2 })] },
      ]);

      // Same filter again replaces (MQTT-3.8.4-3); a subscription id can also go away.
      s.putSubscription('a', sub('$share/g1/jobs/#', { qos: 1 }));
      s.deleteSubscription('a', 'sensors/+/temp');
      s.deleteSubscription('a', 'never-subscribed');
      d = await reread(h);
      assert.deepEqual(sortedSessions(d.loadSessions()), [
        {
          ...session('a'),
          subscriptions: [
            sub('$share/g1/jobs/#', { qos: 1 }),
            sub('x', { noLocal: true, retainAsPublished: true, retainHandling: 2 }),
          ],
        },
        { ...session('b'), subscriptions: [sub('sensors/+/temp', { qos: 2 })] },
      ]);
    });

    it('deleteSession cascades to subscriptions, outbox and inbound QoS 2, and only for that client', async (t) => {
      const h = await setup(t);
      const s = h.storage;
      for (const id of ['gone', 'kept']) {
        s.putSession(session(id));
        s.putSubscription(id, sub('a/#'));
        s.appendOutbox(id, outbox(1));
        s.addInboundQos2(id, 7);
      }
      await s.flush();
      s.deleteSession('gone');
      const d = await reread(h);
      assert.deepEqual(d.loadSessions(), [{ ...session('kept'), subscriptions: [sub('a/#')] }]);
      assert.deepEqual(d.loadOutbox('gone'), []);
      assert.deepEqual(d.loadInboundQos2('gone'), []);
      assert.deepEqual(d.loadOutbox('kept'), [outbox(1)]);
      assert.deepEqual(d.loadInboundQos2('kept'), [7]);

      // A new session under the same id starts with nothing from the old one.
      s.putSession(session('gone'));
      const d2 = await reread(h);
      assert.deepEqual(
        sortedSessions(d2.loadSessions()).map((x) => [x.clientId, x.subscriptions.length]),
        [
          ['gone', 0],
          ['kept', 1],
        ],
      );
    });

    it('wills: put with the session, replace, delete; deleteSession deletes it', async (t) => {
      const h = await setup(t);
      const s = h.storage;
      s.putSession(session('a'));
      s.putSession(session('b'));
      s.putSession(session('c'));
      const armed = will({
        payload: allBytes,
        retain: true,
        delaySec: 30,
        expirySec: 120,
        properties: {
          contentType: 'text/plain',
          correlationData: allBytes,
          userProperties: { k: ['1', '2'] },
        },
      });
      s.putWill('a', armed);
      s.putWill('b', will());
      s.putWill('c', will());
      let d = await reread(h);
      let byId = new Map(d.loadSessions().map((r) => [r.clientId, r]));
      assert.deepEqual(byId.get('a')?.will, armed);
      assert.deepEqual(byId.get('b')?.will, will());
      s.putWill('a', { ...armed, dueAt: 1_700_000_030_000 }); // the connection ended: pending
      s.deleteWill('b');
      s.deleteSession('c');
      d = await reread(h);
      byId = new Map(d.loadSessions().map((r) => [r.clientId, r]));
      assert.equal(byId.get('a')?.will?.dueAt, 1_700_000_030_000);
      assert.equal(byId.get('b')?.will, undefined);
      assert.equal(byId.has('c'), false);
      s.putSession(session('c'));
      d = await reread(h);
      assert.equal(
        d.loadSessions().find((r) => r.clientId === 'c')?.will,
        undefined,
        'a new session with the same id has no will',
      );
    });

    it('outbox: ordered by seq, per session, with update and delete', async (t) => {
      const h = await setup(t);
      const s = h.storage;
      s.putSession(session('a'));
      s.putSession(session('b'));
      // Appended out of order on purpose: the load order is seq order, not insertion order.
      for (const seq of [3, 1, 2, 10, 2 ** 40]) s.appendOutbox('a', outbox(seq));
      s.appendOutbox('b', outbox(1, { topic: 'only/b' }));
      let d = await reread(h);
      assert.deepEqual(
        d.loadOutbox('a').map((r) => r.seq),
        [1, 2, 3, 10, 2 ** 40],
      );
      assert.deepEqual(d.loadOutbox('b'), [outbox(1, { topic: 'only/b' })]);

      s.updateOutbox('a', 1, 17, 'sent');
      s.updateOutbox('a', 2, 65535, 'released');
      s.updateOutbox('a', 3, 5, 'sent');
      s.updateOutbox('a', 3, null, 'queued'); // back to queued, e.g. after a reconnect
      s.updateOutbox('a', 999, 1, 'sent'); // unknown seq: no-op
      s.deleteOutbox('a', 10);
      s.deleteOutbox('a', 999); // unknown seq: no-op
      d = await reread(h);
      assert.deepEqual(d.loadOutbox('a'), [
        outbox(1, { packetId: 17, state: 'sent' }),
        outbox(2, { packetId: 65535, state: 'released' }),
        outbox(3),
        outbox(2 ** 40),
      ]);
      assert.deepEqual(d.loadOutbox('b'), [outbox(1, { topic: 'only/b' })]);
    });

    it('outbox: append, update and delete of one message in the same turn', async (t) => {
      const h = await setup(t);
      const s = h.storage;
      s.appendOutbox('a', outbox(1, { qos: 2 }));
      s.updateOutbox('a', 1, 1, 'sent');
      s.updateOutbox('a', 1, 1, 'released');
      s.appendOutbox('a', outbox(2));
      s.deleteOutbox('a', 2);
      s.appendOutbox('a', outbox(3));
      const d = await reread(h);
      assert.deepEqual(d.loadOutbox('a'), [outbox(1, { qos: 2, packetId: 1, state: 'released' }), outbox(3)]);
    });

    it('outbox: payload and properties round-trip byte-exact; null fields stay null', async (t) => {
      const h = await setup(t);
      const s = h.storage;
      const full = outbox(1, {
        qos: 2,
        topic: 'bin/ü/😀',
        payload: allBytes,
        retain: true,
        properties: {
          payloadFormatIndicator: false,
          contentType: 'application/octet-stream',
          responseTopic: 'reply/to/me',
          correlationData: Buffer.from([0, 255, 0x80, 0x0a, 0]),
          userProperties: { single: 'v', multi: ['a', 'b', 'a'], empty: '', ключ: 'значение' },
        },
        subscriptionIds: [1, 268_435_455],
        expiresAt: 1_700_000_123_456,
      });
      const onlyCorrelation = outbox(2, { properties: { correlationData: Buffer.alloc(0) } });
      const emptyProps = outbox(3, { properties: {}, payload: Buffer.alloc(0), subscriptionIds: [] });
      const utf8 = outbox(4, { properties: { payloadFormatIndicator: true, contentType: 'text/plain' } });
      for (const r of [full, onlyCorrelation, emptyProps, utf8]) s.appendOutbox('a', r);
      const d = await reread(h);
      const back = d.loadOutbox('a');
      assert.deepEqual(back, [full, onlyCorrelation, emptyProps, utf8]);
      assert.ok(Buffer.isBuffer(back[0]!.payload));
      assert.ok(Buffer.isBuffer(back[0]!.properties!.correlationData));
      assert.equal(back[2]!.payload.length, 0);
    });

    it('outbox: appending a seq that exists throws BW_ERR_STORAGE and keeps the first record', async (t) => {
      const h = await setup(t);
      const s = h.storage;
      s.appendOutbox('a', outbox(1, { topic: 'first' }));
      assert.throws(() => s.appendOutbox('a', outbox(1, { topic: 'second' })), assertStorageError);
      s.appendOutbox('b', outbox(1, { topic: 'other session, same seq' }));
      const d = await reread(h);
      assert.deepEqual(d.loadOutbox('a'), [outbox(1, { topic: 'first' })]);
      assert.deepEqual(d.loadOutbox('b'), [outbox(1, { topic: 'other session, same seq' })]);
    });

    it('inbound QoS 2: add, idempotent re-add, delete, per session', async (t) => {
      const h = await setup(t);
      const s = h.storage;
      s.putSession(session('a'));
      for (const id of [300, 1, 65535, 1]) s.addInboundQos2('a', id);
      s.addInboundQos2('b', 1);
      let d = await reread(h);
      assert.deepEqual(d.loadInboundQos2('a'), [1, 300, 65535]);
      assert.deepEqual(d.loadInboundQos2('b'), [1]);
      s.deleteInboundQos2('a', 300);
      s.deleteInboundQos2('a', 2); // unknown: no-op
      d = await reread(h);
      assert.deepEqual(d.loadInboundQos2('a'), [1, 65535]);
      assert.deepEqual(d.loadInboundQos2('b'), [1]);
    });

    it('retained: put, replace, delete, load with publisherId and expiresAt', async (t) => {
      const h = await setup(t);
      const s = h.storage;
      const a = retained('home/a', {
        qos: 2,
        publisherId: 'sensor-1',
        expiresAt: 1_700_000_000_000,
        payload: allBytes,
        properties: { correlationData: Buffer.from('corr'), userProperties: { k: ['1', '2'] } },
      });
      const b = retained('home/b', { qos: 0, payload: Buffer.alloc(0) });
      const c = retained('home/c');
      s.putRetained(a);
      s.putRetained(b);
      s.putRetained(c);
      let d = await reread(h);
      assert.deepEqual(sortedRetained(d.loadRetained()), [a, b, c]);

      const a2 = retained('home/a', { payload: Buffer.from('new'), publisherId: 'sensor-2' });
      s.putRetained(a2);
      s.deleteRetained('home/c');
      s.deleteRetained('never/there');
      d = await reread(h);
      assert.deepEqual(sortedRetained(d.loadRetained()), [a2, b]);
    });

    it('stored state is a copy: mutating arguments or loaded records changes nothing', async (t) => {
      const h = await setup(t);
      const s = h.storage;
      const sess = session('a');
      const subscription = sub('f', { subscriptionId: 1 });
      const msg = outbox(1, {
        properties: { correlationData: Buffer.from('cd'), userProperties: { k: ['x'] } },
        subscriptionIds: [1],
      });
      const ret = retained('r', { properties: { userProperties: { k: 'v' } } });
      s.putSession(sess);
      s.putSubscription('a', subscription);
      s.appendOutbox('a', msg);
      s.putRetained(ret);

      sess.expiryInterval = 1;
      subscription.qos = 0;
      msg.payload.fill(0);
      msg.properties!.correlationData!.fill(0);
      (msg.properties!.userProperties!.k as string[]).push('y');
      msg.subscriptionIds!.push(2);
      msg.state = 'sent';
      ret.payload.fill(0);
      ret.properties!.userProperties!.k = 'changed';

      const expectedMsg = outbox(1, {
        properties: { correlationData: Buffer.from('cd'), userProperties: { k: ['x'] } },
        subscriptionIds: [1],
      });
      const expectedRet = retained('r', { properties: { userProperties: { k: 'v' } } });
      for (const view of [s, await reread(h)]) {
        assert.deepEqual(view.loadSessions(), [
          { ...session('a'), subscriptions: [sub('f', { subscriptionId: 1 })] },
        ]);
        assert.deepEqual(view.loadOutbox('a'), [expectedMsg]);
        assert.deepEqual(view.loadRetained(), [expectedRet]);
      }

      const loaded = s.loadOutbox('a')[0]!;
      loaded.payload.fill(1);
      loaded.properties!.correlationData!.fill(1);
      s.loadSessions()[0]!.subscriptions.pop();
      s.loadRetained()[0]!.payload.fill(1);
      assert.deepEqual(s.loadOutbox('a'), [expectedMsg]);
      assert.equal(s.loadSessions()[0]!.subscriptions.length, 1);
      assert.deepEqual(s.loadRetained(), [expectedRet]);
    });

    it('reads see mutations recorded in the same turn, before any flush', async (t) => {
      const h = await setup(t);
      const s = h.storage;
      s.putSession(session('a'));
      s.putSubscription('a', sub('x'));
      s.appendOutbox('a', outbox(1));
      s.addInboundQos2('a', 9);
      s.putRetained(retained('r'));
      assert.deepEqual(s.loadSessions(), [{ ...session('a'), subscriptions: [sub('x')] }]);
      assert.deepEqual(s.loadOutbox('a'), [outbox(1)]);
      assert.deepEqual(s.loadInboundQos2('a'), [9]);
      assert.deepEqual(s.loadRetained(), [retained('r')]);
      await s.flush();
    });

    it('flush(): resolves with nothing pending, and covers every mutation recorded before it', async (t) => {
      const h = await setup(t);
      const s = h.storage;
      await s.flush();
      const flushes: Promise<void>[] = [];
      for (let seq = 1; seq <= 500; seq++) {
        s.appendOutbox('a', outbox(seq));
        if (seq % 100 === 0) flushes.push(s.flush());
        // Spread the writes over several turns, as a broker under load does.
        if (seq % 150 === 0) await new Promise<void>((resolve) => setImmediate(resolve));
      }
      await Promise.all(flushes);
      const d = await h.durable();
      assert.equal(d.loadOutbox('a').length, 500);
    });

    it('close() flushes: a reopened instance sees every mutation', async (t) => {
      const h = await setup(t);
      if (h.reopen === null) {
        t.skip('driver does not persist across instances');
        return;
      }
      const s = h.storage;
      s.putSession(session('a'));
      s.putSubscription('a', sub('x/#', { qos: 2 }));
      s.appendOutbox('a', outbox(1, { payload: allBytes }));
      s.addInboundQos2('a', 5);
      s.putRetained(retained('r'));
      await s.close(); // no flush() on purpose
      const again = await h.reopen();
      assert.deepEqual(again.loadSessions(), [{ ...session('a'), subscriptions: [sub('x/#', { qos: 2 })] }]);
      assert.deepEqual(again.loadOutbox('a'), [outbox(1, { payload: allBytes })]);
      assert.deepEqual(again.loadInboundQos2('a'), [5]);
      assert.deepEqual(again.loadRetained(), [retained('r')]);
    });

    it('close() is idempotent and later calls throw BW_ERR_STORAGE', async (t) => {
      const h = await setup(t);
      const s = h.storage;
      await s.close();
      await s.close();
      assert.throws(() => s.putSession(session('a')), assertStorageError);
      assert.throws(() => s.appendOutbox('a', outbox(1)), assertStorageError);
      assert.throws(() => s.loadSessions(), assertStorageError);
    });
  });
}
