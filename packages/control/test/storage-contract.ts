/**
 * The storage contract, written once and run against every driver (the pattern of MQTT.js's
 * abstract_store.ts): storage-sqlite.test.ts and storage-postgres.test.ts call it.
 */
import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import type { NewDeviceEvent } from '../src/devices/events.js';
import type { NewDevice } from '../src/devices/model.js';
import { ApiError, DuplicateKeyError } from '../src/errors.js';
import { SCHEMA_VERSION } from '../src/storage/migrations.js';
import type { ControlStorage } from '../src/storage/types.js';

export type StorageFactory = () => Promise<{ storage: ControlStorage; cleanup: () => Promise<void> }>;

function device(id: string, extra: Partial<NewDevice> = {}): NewDevice {
  return {
    id,
    tags: [],
    cohort: null,
    firmwareVersion: null,
    secretHash: `hash-${id}`,
    createdAt: 1000,
    ...extra,
  };
}

/** `available` skips (or, in CI, fails) a test when the driver's server is not running. */
export function storageContract(
  name: string,
  open: StorageFactory,
  available: (t: TestContext) => Promise<boolean> = async () => true,
): void {
  describe(`storage contract: ${name}`, () => {
    async function withStorage(t: TestContext, fn: (s: ControlStorage) => Promise<void>): Promise<void> {
      if (!(await available(t))) return;
      const { storage, cleanup } = await open();
      try {
        await fn(storage);
      } finally {
        await cleanup();
      }
    }

    it('is migrated to the current schema version', (t) =>
      withStorage(t, async (s) => {
        assert.equal(await s.schemaVersion(), SCHEMA_VERSION);
      }));

    it('api keys: insert, find by hash, revoke once, count', (t) =>
      withStorage(t, async (s) => {
        assert.equal(await s.apiKeys.count(), 0);
        await s.apiKeys.insert({
          id: 'k1',
          name: 'ci',
          role: 'operator',
          keyHash: 'h1',
          createdAt: 5,
          createdBy: null,
          revokedAt: null,
          lastUsedAt: null,
        });
        const found = await s.apiKeys.findByHash('h1');
        assert.equal(found?.id, 'k1');
        assert.equal(found?.role, 'operator');
        assert.equal(found?.createdAt, 5);
        assert.equal(await s.apiKeys.findByHash('nope'), null);
        await assert.rejects(
          s.apiKeys.insert({ ...found!, id: 'k2' }), // same hash
          (err) => err instanceof DuplicateKeyError,
        );
        assert.equal(await s.apiKeys.revoke('k1', 9), true);
        assert.equal(await s.apiKeys.revoke('k1', 10), false, 'already revoked');
        assert.equal((await s.apiKeys.get('k1'))?.revokedAt, 9);
        await s.apiKeys.touch('k1', 11);
        assert.equal((await s.apiKeys.get('k1'))?.lastUsedAt, 11);
        assert.equal(await s.apiKeys.count(), 1);
      }));

    it('devices: insert with tags, get, duplicate id is a DuplicateKeyError', (t) =>
      withStorage(t, async (s) => {
        await s.devices.insert([
          device('d1', { tags: ['eu', 'beta'], cohort: 'c1', firmwareVersion: '1.0.0' }),
        ]);
        const d = await s.devices.get('d1');
        assert.deepEqual(d, {
          id: 'd1',
          tags: ['beta', 'eu'],
          cohort: 'c1',
          firmwareVersion: '1.0.0',
          connectionState: 'unknown',
          lastSeen: null,
          lastDisconnectReason: null,
          createdAt: 1000,
          updatedAt: 1000,
        });
        assert.equal(await s.devices.secretHash('d1'), 'hash-d1');
        await assert.rejects(s.devices.insert([device('d1')]), (err) => err instanceof DuplicateKeyError);
        assert.equal(await s.devices.get('zz'), null);
      }));

    it('transactions are all-or-nothing', (t) =>
      withStorage(t, async (s) => {
        await s.devices.insert([device('a')]);
        await assert.rejects(
          s.transaction(async (tx) => {
            await tx.devices.insert([device('b'), device('c')]);
            await tx.audit.append({
              at: 1,
              actorId: 'k',
              actorName: 'k',
              action: 'device.import',
              targetType: 'device',
              targetId: null,
              reason: null,
              details: null,
            });
            await tx.devices.insert([device('a')]); // duplicate: the whole transaction rolls back
          }),
          (err) => err instanceof DuplicateKeyError,
        );
        assert.deepEqual(await s.devices.resolve({}), ['a']);
        assert.equal((await s.audit.list({}, 10, null)).items.length, 0);
        const n = await s.transaction(async (tx) => {
          await tx.devices.insert([device('b')]);
          return tx.devices.count({});
        });
        assert.equal(n, 2);
        assert.deepEqual(await s.devices.resolve({}), ['a', 'b']);
      }));

    it('devices: update replaces tags, delete removes them', (t) =>
      withStorage(t, async (s) => {
        await s.devices.insert([device('d1', { tags: ['x', 'y'] })]);
        const u = await s.devices.update(
          'd1',
          { tags: ['z'], cohort: 'canary', firmwareVersion: null },
          2000,
        );
        assert.deepEqual(u?.tags, ['z']);
        assert.equal(u?.cohort, 'canary');
        assert.equal(u?.updatedAt, 2000);
        assert.equal(await s.devices.update('missing', { cohort: 'x' }, 1), null);
        assert.deepEqual(await s.devices.resolve({ tags: ['x'] }), []);
        assert.equal(await s.devices.delete('d1'), true);
        assert.equal(await s.devices.delete('d1'), false);
        assert.deepEqual(await s.devices.resolve({ tags: ['z'] }), []);
      }));

    it('selectors: ids, tags (all of), cohort, firmware, connection state; AND-combined', (t) =>
      withStorage(t, async (s) => {
        await s.devices.insert([
          device('a', { tags: ['eu', 'beta'], cohort: 'c1', firmwareVersion: '1.0' }),
          device('b', { tags: ['eu'], cohort: 'c1', firmwareVersion: '1.1' }),
          device('c', { tags: ['us', 'beta'], cohort: 'c2', firmwareVersion: '1.0' }),
        ]);
        await s.devices.applyPresence([{ id: 'b', state: 'online', at: 50, reason: null }]);
        assert.deepEqual(await s.devices.resolve({ ids: ['c', 'a', 'nope'] }), ['a', 'c']);
        assert.deepEqual(await s.devices.resolve({ tags: ['beta'] }), ['a', 'c']);
        assert.deepEqual(await s.devices.resolve({ tags: ['beta', 'eu'] }), ['a']);
        assert.deepEqual(await s.devices.resolve({ cohort: 'c1' }), ['a', 'b']);
        assert.deepEqual(await s.devices.resolve({ firmware: '1.0' }), ['a', 'c']);
        assert.deepEqual(await s.devices.resolve({ connectionState: 'online' }), ['b']);
        assert.deepEqual(await s.devices.resolve({ connectionState: 'unknown', cohort: 'c1' }), ['a']);
        assert.equal(await s.devices.count({ tags: ['eu'] }), 2);
        assert.deepEqual(
          await s.devices.existing(['a', 'x', 'c']),
          ['a', 'c'].filter((id) => id !== 'x'),
        );
      }));

    it('device list: cursor pagination visits every match once, in id order (bytewise)', (t) =>
      withStorage(t, async (s) => {
        const ids = ['B', 'a', 'b', 'A', 'c-1', 'c_1', 'Z9', '0'];
        await s.devices.insert(ids.map((id) => device(id, { tags: ['t'] })));
        const seen: string[] = [];
        let cursor: string | null = null;
        let pages = 0;
        do {
          const page = await s.devices.list({ tags: ['t'] }, 3, cursor);
          assert.ok(page.items.length <= 3);
          seen.push(...page.items.map((d) => d.id));
          cursor = page.nextCursor;
          pages++;
        } while (cursor !== null && pages < 10);
        assert.deepEqual(seen, [...ids].sort()); // JS sort is by UTF-16 code unit = bytewise for ASCII
        assert.equal(pages, 3);
        await assert.rejects(
          s.devices.list({}, 3, 'not a cursor!'),
          (err) => err instanceof ApiError && err.field === 'cursor',
        );
      }));

    it('presence: online/offline with reason; an older event never overwrites a newer one', (t) =>
      withStorage(t, async (s) => {
        await s.devices.insert([device('d1')]);
        await s.devices.applyPresence([
          { id: 'd1', state: 'online', at: 100, reason: null },
          { id: 'ghost', state: 'online', at: 100, reason: null },
        ]);
        assert.equal((await s.devices.get('d1'))?.connectionState, 'online');
        await s.devices.applyPresence([{ id: 'd1', state: 'offline', at: 200, reason: 'KeepAliveTimeout' }]);
        await s.devices.applyPresence([{ id: 'd1', state: 'online', at: 150, reason: null }]); // late
        const d = await s.devices.get('d1');
        assert.equal(d?.connectionState, 'offline');
        assert.equal(d?.lastSeen, 200);
        assert.equal(d?.lastDisconnectReason, 'KeepAliveTimeout');
        await s.devices.applyPresence([{ id: 'd1', state: 'online', at: 300, reason: null }]);
        const d2 = await s.devices.get('d1');
        assert.equal(d2?.connectionState, 'online');
        assert.equal(d2?.lastDisconnectReason, 'KeepAliveTimeout', 'kept until the next disconnect');
        assert.equal(await s.devices.get('ghost'), null, 'presence never creates devices');
      }));

    it('device events: registered devices only, newest first, kind filter, cursor, prune, gone with the device', (t) =>
      withStorage(t, async (s) => {
        await s.devices.insert([device('e1'), device('e2')]);
        const ev = (deviceId: string, at: number, extra: Partial<NewDeviceEvent> = {}): NewDeviceEvent => ({
          deviceId,
          at,
          kind: 'connected',
          clientId: deviceId,
          reason: null,
          count: null,
          ...extra,
        });
        const stored = await s.deviceEvents.append([
          ev('e1', 10),
          ev('ghost', 11),
          ev('e1', 20, { kind: 'messages_dropped', reason: 'queue_full', count: 1 }),
          ev('e2', 21, { kind: 'disconnected', reason: 'KeepAliveTimeout' }),
          ev('e1', 30, { kind: 'messages_dropped', reason: 'queue_evicted', count: 4_000_000_000 }),
          ev('e1', 40, { kind: 'disconnected', reason: 'NormalDisconnection' }),
        ]);
        assert.deepEqual([...stored].sort(), ['e1', 'e2'], 'an unknown client id is skipped');
        assert.deepEqual(await s.deviceEvents.append([]), new Set());
        const all = await s.deviceEvents.list('e1', {}, 10, null);
        assert.deepEqual(
          all.items.map((e) => [e.at, e.kind, e.reason, e.count]),
          [
            [40, 'disconnected', 'NormalDisconnection', null],
            [30, 'messages_dropped', 'queue_evicted', 4_000_000_000],
            [20, 'messages_dropped', 'queue_full', 1],
            [10, 'connected', null, null],
          ],
        );
        assert.equal(all.items[0]?.clientId, 'e1');
        assert.equal(all.items[0]?.deviceId, 'e1');
        assert.equal(all.nextCursor, null);
        assert.ok(all.items[0]!.seq > all.items[1]!.seq, 'seq orders the list');
        const drops = await s.deviceEvents.list('e1', { kind: 'messages_dropped' }, 1, null);
        assert.deepEqual(
          drops.items.map((e) => e.reason),
          ['queue_evicted'],
        );
        assert.notEqual(drops.nextCursor, null);
        const next = await s.deviceEvents.list('e1', { kind: 'messages_dropped' }, 1, drops.nextCursor);
        assert.deepEqual(
          next.items.map((e) => e.reason),
          ['queue_full'],
        );
        assert.equal(next.nextCursor, null);
        await assert.rejects(
          s.deviceEvents.list('e1', {}, 3, 'not a cursor!'),
          (err) => err instanceof ApiError && err.field === 'cursor',
        );
        // Prune keeps the newest `keep`, and is a no-op at or under it.
        assert.equal(await s.deviceEvents.prune('e1', 4), 0);
        assert.equal(await s.deviceEvents.prune('e1', 2), 2);
        assert.deepEqual(
          (await s.deviceEvents.list('e1', {}, 10, null)).items.map((e) => e.at),
          [40, 30],
        );
        assert.equal(
          (await s.deviceEvents.list('e2', {}, 10, null)).items.length,
          1,
          'other devices untouched',
        );
        // Deleting the device deletes its history: the same id registered again starts clean.
        assert.equal(await s.devices.delete('e1'), true);
        await s.devices.insert([device('e1')]);
        assert.deepEqual((await s.deviceEvents.list('e1', {}, 10, null)).items, []);
      }));

    it('audit: append, newest first, filters, cursor pagination', (t) =>
      withStorage(t, async (s) => {
        for (let i = 0; i < 5; i++) {
          await s.audit.append({
            at: 100 + i,
            actorId: i % 2 ? 'k1' : 'k2',
            actorName: 'n',
            action: i < 3 ? 'device.create' : 'device.delete',
            targetType: 'device',
            targetId: `d${i}`,
            reason: i === 4 ? 'decommissioned' : null,
            details: i === 0 ? { tags: ['a'] } : null,
          });
        }
        const first = await s.audit.list({}, 2, null);
        assert.deepEqual(
          first.items.map((e) => e.targetId),
          ['d4', 'd3'],
        );
        assert.equal(first.items[0]?.reason, 'decommissioned');
        const second = await s.audit.list({}, 2, first.nextCursor);
        assert.deepEqual(
          second.items.map((e) => e.targetId),
          ['d2', 'd1'],
        );
        const third = await s.audit.list({}, 2, second.nextCursor);
        assert.deepEqual(third.items[0]?.details, { tags: ['a'] });
        assert.equal(third.nextCursor, null);
        assert.equal((await s.audit.list({ action: 'device.delete' }, 10, null)).items.length, 2);
        assert.equal((await s.audit.list({ actorId: 'k1' }, 10, null)).items.length, 2);
        assert.equal((await s.audit.list({ since: 101, until: 103 }, 10, null)).items.length, 2);
        assert.equal(
          (await s.audit.list({ targetType: 'device', targetId: 'd3' }, 10, null)).items.length,
          1,
        );
      }));

    it('signing keys: insert, retire, extend expiry monotonically', (t) =>
      withStorage(t, async (s) => {
        const base = { alg: 'EdDSA', publicJwk: '{}', privateKey: 'enc', retiredAt: null, lastExpiry: 0 };
        await s.signingKeys.insert({ ...base, kid: 'k1', createdAt: 1 });
        await s.signingKeys.insert({ ...base, kid: 'k2', createdAt: 2 });
        await s.signingKeys.extendExpiry('k1', 500);
        await s.signingKeys.extendExpiry('k1', 300);
        await s.signingKeys.retire('k1', 10);
        await s.signingKeys.retire('k1', 20); // no effect: already retired
        const [k1, k2] = await s.signingKeys.list();
        assert.equal(k1?.kid, 'k1');
        assert.equal(k1?.lastExpiry, 500);
        assert.equal(k1?.retiredAt, 10);
        assert.equal(k2?.retiredAt, null);
      }));

    it('bulk insert of more rows than one statement carries', (t) =>
      withStorage(t, async (s) => {
        const many = Array.from({ length: 1234 }, (_, i) =>
          device(`dev-${String(i).padStart(5, '0')}`, { tags: ['bulk'] }),
        );
        await s.transaction((tx) => tx.devices.insert(many));
        assert.equal(await s.devices.count({ tags: ['bulk'] }), 1234);
        assert.equal((await s.devices.existing(many.map((d) => d.id))).length, 1234);
      }));
  });
}
