/**
 * Revocation repository contract, run against both drivers (SQLite file; PostgreSQL in a
 * throwaway schema, skipped locally when 127.0.0.1:5432 is down, failing under CI).
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { activeEntries, denylistEntries, denylistKey } from '../src/revocation/denylist.js';
import type { NewRevocation } from '../src/revocation/types.js';
import type { ControlStorage } from '../src/storage/types.js';
import { type Driver, postgresDriver, sqliteDriver } from './harness.js';

const actor = { id: 'k1', name: 'ops' };

function revocation(id: string, extra: Partial<NewRevocation> = {}): NewRevocation {
  return {
    id,
    kind: 'device',
    deviceId: null,
    selector: null,
    tokenId: null,
    issuedBefore: null,
    deviceIds: [],
    reason: null,
    createdAt: 1000,
    createdBy: actor,
    ...extra,
  };
}

for (const driver of [sqliteDriver, postgresDriver] as Driver[]) {
  describe(`revocation storage contract: ${driver.name}`, () => {
    async function withStorage(t: TestContext, fn: (s: ControlStorage) => Promise<void>): Promise<void> {
      if (!(await driver.available(t))) return;
      const dir = await mkdtemp(join(tmpdir(), 'bw-revocation-'));
      const { storage, drop } = await driver.open(dir);
      try {
        await fn(storage);
      } finally {
        await storage.close();
        await drop();
        await rm(dir, { recursive: true, force: true });
      }
    }

    it('insert, get (with device count), device ids, revert once', (t) =>
      withStorage(t, async (s) => {
        await s.revocations.insert(
          revocation('r1', {
            kind: 'selector',
            selector: { tags: ['eu'], cohort: 'canary' },
            deviceIds: ['b', 'a', 'c'],
            reason: 'leaked',
            issuedBefore: 5000,
          }),
        );
        const r = await s.revocations.get('r1');
        assert.ok(r);
        assert.equal(r.kind, 'selector');
        assert.deepEqual(r.selector, { tags: ['eu'], cohort: 'canary' });
        assert.equal(r.issuedBefore, 5000);
        assert.equal(r.deviceCount, 3);
        assert.equal(r.reason, 'leaked');
        assert.deepEqual(r.createdBy, actor);
        assert.equal(r.revertedAt, null);
        assert.deepEqual(await s.revocations.deviceIds('r1'), ['a', 'b', 'c']);
        assert.equal(await s.revocations.get('nope'), null);
        assert.equal(await s.revocations.revert('r1', 2000, { id: 'k2', name: 'lead' }), true);
        assert.equal(await s.revocations.revert('r1', 3000, actor), false, 'only once');
        assert.equal(await s.revocations.revert('nope', 3000, actor), false);
        const after = await s.revocations.get('r1');
        assert.equal(after?.revertedAt, 2000);
        assert.deepEqual(after?.revertedBy, { id: 'k2', name: 'lead' });
      }));

    it('stores a large selector revocation in chunks', (t) =>
      withStorage(t, async (s) => {
        const ids = Array.from({ length: 1234 }, (_, i) => `dev-${String(i).padStart(5, '0')}`);
        await s.transaction((tx) =>
          tx.revocations.insert(revocation('big', { kind: 'selector', deviceIds: ids })),
        );
        assert.equal((await s.revocations.get('big'))?.deviceCount, 1234);
        assert.deepEqual(await s.revocations.deviceIds('big'), ids);
      }));

    it('lists newest first with filters (active, kind, deviceId, tokenId) and cursor pages', (t) =>
      withStorage(t, async (s) => {
        await s.revocations.insert(revocation('r1', { deviceId: 'a', deviceIds: ['a'] }));
        await s.revocations.insert(revocation('r2', { kind: 'token', tokenId: 'jti-1' }));
        await s.revocations.insert(revocation('r3', { kind: 'selector', deviceIds: ['a', 'b'] }));
        await s.revocations.insert(revocation('r4', { kind: 'all', issuedBefore: 9000 }));
        await s.revocations.revert('r2', 5, actor);
        const ids = async (f: Parameters<typeof s.revocations.list>[0]) =>
          (await s.revocations.list(f, 100, null)).items.map((r) => r.id);
        assert.deepEqual(await ids({}), ['r4', 'r3', 'r2', 'r1']);
        assert.deepEqual(await ids({ active: true }), ['r4', 'r3', 'r1']);
        assert.deepEqual(await ids({ active: false }), ['r2']);
        assert.deepEqual(await ids({ kind: 'selector' }), ['r3']);
        assert.deepEqual(await ids({ deviceId: 'a' }), ['r3', 'r1']);
        assert.deepEqual(await ids({ deviceId: 'b', active: true }), ['r3']);
        assert.deepEqual(await ids({ tokenId: 'jti-1' }), ['r2']);
        const p1 = await s.revocations.list({}, 3, null);
        assert.deepEqual(
          p1.items.map((r) => r.id),
          ['r4', 'r3', 'r2'],
        );
        assert.ok(p1.nextCursor);
        const p2 = await s.revocations.list({}, 3, p1.nextCursor);
        assert.deepEqual(
          p2.items.map((r) => r.id),
          ['r1'],
        );
        assert.equal(p2.nextCursor, null);
        await assert.rejects(s.revocations.list({}, 3, 'garbage!'), /cursor/);
      }));

    it('active(): the denylist inputs of every active revocation', (t) =>
      withStorage(t, async (s) => {
        await s.revocations.insert(revocation('r1', { deviceId: 'a', deviceIds: ['a'] }));
        await s.revocations.insert(
          revocation('r2', { kind: 'selector', deviceIds: ['b', 'c'], issuedBefore: 700 }),
        );
        await s.revocations.insert(revocation('r3', { kind: 'token', tokenId: 'jti-1', deviceIds: ['z'] }));
        await s.revocations.insert(revocation('r4', { kind: 'all', issuedBefore: 9000, deviceIds: ['y'] }));
        await s.revocations.insert(revocation('r5', { deviceId: 'gone', deviceIds: ['gone'] }));
        await s.revocations.revert('r5', 5, actor);
        const keys = activeEntries(await s.revocations.active())
          .map(denylistKey)
          .sort();
        assert.deepEqual(keys, ['client:a', 'cutoff:b:700', 'cutoff:c:700', 'global:9000', 'token:jti-1']);
      }));

    it('coveredElsewhere(): only what another ACTIVE revocation produces (same entry, same cutoff)', (t) =>
      withStorage(t, async (s) => {
        await s.revocations.insert(revocation('sel', { kind: 'selector', deviceIds: ['a', 'b', 'c'] }));
        await s.revocations.insert(revocation('dev-a', { deviceId: 'a', deviceIds: ['a'] }));
        await s.revocations.insert(revocation('dev-b-old', { deviceId: 'b', deviceIds: ['b'] }));
        await s.revocations.revert('dev-b-old', 5, actor);
        await s.revocations.insert(
          revocation('cut-c', { deviceId: 'c', deviceIds: ['c'], issuedBefore: 100 }),
        );
        assert.deepEqual([...(await s.revocations.coveredElsewhere('sel'))], ['client:a']);
        assert.deepEqual([...(await s.revocations.coveredElsewhere('dev-a'))], ['client:a']);
        assert.deepEqual(
          [...(await s.revocations.coveredElsewhere('cut-c'))],
          [],
          'a cutoff is not a device ban',
        );
        await s.revocations.insert(
          revocation('cut-c2', { kind: 'selector', deviceIds: ['c'], issuedBefore: 100 }),
        );
        assert.deepEqual([...(await s.revocations.coveredElsewhere('cut-c'))], ['cutoff:c:100']);
        await s.revocations.insert(revocation('t1', { kind: 'token', tokenId: 'j' }));
        assert.equal((await s.revocations.coveredElsewhere('t1')).size, 0);
        await s.revocations.insert(revocation('t2', { kind: 'token', tokenId: 'j' }));
        assert.deepEqual([...(await s.revocations.coveredElsewhere('t1'))], ['token:j']);
        await s.revocations.insert(revocation('g1', { kind: 'all', issuedBefore: 50 }));
        await s.revocations.insert(revocation('g2', { kind: 'all', issuedBefore: 60 }));
        assert.equal(
          (await s.revocations.coveredElsewhere('g1')).size,
          0,
          'a different T is a different entry',
        );
      }));
  });
}

describe('denylist entries', () => {
  it('maps each kind to guard entries and keys', () => {
    const base = { tokenId: null, issuedBefore: null };
    assert.deepEqual(denylistEntries({ ...base, kind: 'device', deviceIds: ['a'] }), [{ clientId: 'a' }]);
    assert.deepEqual(denylistEntries({ ...base, kind: 'selector', deviceIds: ['a', 'b'], issuedBefore: 5 }), [
      { clientId: 'a', issuedBefore: 5 },
      { clientId: 'b', issuedBefore: 5 },
    ]);
    assert.deepEqual(denylistEntries({ ...base, kind: 'token', deviceIds: ['x'], tokenId: 'j' }), [
      { tokenId: 'j' },
    ]);
    assert.deepEqual(denylistEntries({ ...base, kind: 'all', deviceIds: ['x'], issuedBefore: 7 }), [
      { issuedBefore: 7 },
    ]);
    assert.equal(denylistKey({ clientId: 'a', issuedBefore: 5 }), 'cutoff:a:5');
    assert.equal(denylistKey({ issuedBefore: 5 }), 'global:5');
  });
});
