/**
 * Revocation (kill switch 1) HTTP API, in-process (fastify.inject), once per storage driver,
 * against a recording FleetBroker whose `revocations` is a real RevocationList with the guard's
 * session matching. The real broker + guard + MQTT client are in revocation-e2e.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import { type RevocationEntry, RevocationList } from '@breakwater/broker';
import type { FleetBroker, FleetRevocations } from '../src/fleet-broker.js';
import { type ControlPlaneOptions, createControlPlane } from '../src/http/app.js';
import { denylistKey } from '../src/revocation/denylist.js';
import {
  type Driver,
  errorOf,
  type Harness,
  postgresDriver,
  sqliteDriver,
  startControlPlane,
} from './harness.js';

interface Session {
  tokenId?: string;
  /** Token iat, epoch ms. */
  issuedAt?: number;
}

/**
 * Records every broker action in order (`purge:a`, `revoke:client:a`, `kick:a`, `unrevoke:…`),
 * keeps live sessions, retained messages and wills per publisher, and (unless built with
 * `auth: false`) a denylist that ends matching sessions like Guard.revoke does.
 */
class RecordingFleet implements FleetBroker {
  readonly log: string[] = [];
  readonly sessions = new Map<string, Session>();
  readonly retained = new Map<string, number>();
  readonly wills = new Set<string>();
  readonly list = new RevocationList();
  readonly revocations: FleetRevocations | null;

  constructor(auth = true) {
    this.revocations = auth
      ? {
          revoke: (e) => {
            this.log.push(`revoke:${denylistKey(e)}`);
            const victims = this.matching(e);
            this.list.revoke(e);
            for (const id of victims) this.disconnectClient(id);
          },
          unrevoke: (e) => {
            this.log.push(`unrevoke:${denylistKey(e)}`);
            this.list.unrevoke(e);
          },
          sessionsMatching: (e) => this.matching(e),
        }
      : null;
  }

  matching(e: RevocationEntry): string[] {
    const out: string[] = [];
    for (const [id, s] of this.sessions) {
      if (e.issuedBefore !== undefined) {
        if (
          (e.clientId === undefined || e.clientId === id) &&
          s.issuedAt !== undefined &&
          s.issuedAt < e.issuedBefore
        )
          out.push(id);
      } else if (e.clientId === id || (e.tokenId !== undefined && s.tokenId === e.tokenId)) {
        out.push(id);
      }
    }
    return out;
  }

  /** A device connects (refused like the guard would when revoked). */
  connect(id: string, s: Session = {}): boolean {
    if (this.list.check(id, s.tokenId, undefined, s.issuedAt)) return false;
    this.sessions.set(id, s);
    return true;
  }

  async publish(): Promise<void> {}
  subscribe(): () => void {
    return () => {};
  }
  onPresence(): () => void {
    return () => {};
  }
  disconnectClient(id: string): boolean {
    if (!this.sessions.delete(id)) return false;
    this.log.push(`kick:${id}`);
    return true;
  }
  async purgePublishedBy(id: string): Promise<{ retained: number; wills: number }> {
    this.log.push(`purge:${id}`);
    const retained = this.retained.get(id) ?? 0;
    this.retained.delete(id);
    const wills = this.wills.delete(id) ? 1 : 0;
    return { retained, wills };
  }
  connectedClientIds(): string[] {
    return [...this.sessions.keys()];
  }
}

interface Reach {
  matchedDevices: number;
  disconnected: number;
  purgedRetained: number;
  purgedWills: number;
  warnings: string[];
}
interface View {
  id: string;
  kind: string;
  active: boolean;
  deviceId: string | null;
  tokenId: string | null;
  issuedBefore: string | null;
  deviceCount: number;
  reason: string | null;
  revertedBy: { id: string; name: string } | null;
}

async function keyFor(h: Harness, role: 'operator' | 'viewer'): Promise<string> {
  const res = await h.call('POST', '/api/v1/keys', { body: { name: role, role } });
  assert.equal(res.statusCode, 201, res.body);
  return (res.json() as { key: string }).key;
}

async function devices(h: Harness, ...rows: Array<{ id: string; tags?: string[] }>): Promise<void> {
  const res = await h.call('POST', '/api/v1/devices/import', { body: rows });
  assert.equal(res.statusCode, 201, res.body);
}

async function revoke(
  h: Harness,
  body: unknown,
  url = '/api/v1/revocations',
): Promise<Reach & { revocation: View }> {
  const res = await h.call('POST', url, { body });
  assert.equal(res.statusCode, url.endsWith('killswitch/revoke') ? 200 : 201, res.body);
  return res.json() as Reach & { revocation: View };
}

for (const driver of [sqliteDriver, postgresDriver] satisfies Driver[]) {
  describe(`revocation API (${driver.name})`, () => {
    async function start(
      t: TestContext,
      fleet: FleetBroker | null = new RecordingFleet(),
      extra: Partial<ControlPlaneOptions> = {},
    ): Promise<Harness | null> {
      if (!(await driver.available(t))) return null;
      const h = await startControlPlane(t, driver, { ...(fleet ? { fleet } : {}), ...extra });
      await h.cp.start();
      t.after(() => h.cp.close());
      return h;
    }

    it('by device: purges its will and retained messages BEFORE ending the session; reconnect refused; audited', async (t) => {
      const fleet = new RecordingFleet();
      const h = await start(t, fleet);
      if (!h) return;
      await devices(h, { id: 'a' }, { id: 'b' });
      fleet.connect('a');
      fleet.connect('b');
      fleet.retained.set('a', 2);
      fleet.wills.add('a');
      const out = await revoke(h, { deviceId: 'a', reason: 'stolen unit' });
      assert.equal(out.revocation.kind, 'device');
      assert.equal(out.revocation.deviceId, 'a');
      assert.equal(out.revocation.active, true);
      assert.equal(out.revocation.reason, 'stolen unit');
      assert.deepEqual(
        { m: out.matchedDevices, d: out.disconnected, r: out.purgedRetained, w: out.purgedWills },
        { m: 1, d: 1, r: 2, w: 1 },
      );
      assert.deepEqual(out.warnings, []);
      assert.deepEqual(fleet.log, ['purge:a', 'revoke:client:a', 'kick:a'], 'purge first, then kick');
      assert.equal(fleet.connect('a'), false, 'reconnect refused');
      assert.ok(fleet.sessions.has('b'), 'other devices untouched');
      const audit = (
        await h.call('GET', `/api/v1/audit?action=revocation.create&targetId=${out.revocation.id}`)
      ).json() as {
        items: Array<{ reason: string; details: { kind: string; deviceIds: string[]; via: string } }>;
      };
      assert.equal(audit.items.length, 1);
      assert.equal(audit.items[0]?.reason, 'stolen unit');
      assert.deepEqual(audit.items[0]?.details.deviceIds, ['a']);
      assert.equal(audit.items[0]?.details.via, 'api');
    });

    it('killswitch/revoke by selector answers what it reached; offline devices lose their retained messages too', async (t) => {
      const fleet = new RecordingFleet();
      const h = await start(t, fleet);
      if (!h) return;
      await devices(
        h,
        { id: 'eu-1', tags: ['eu'] },
        { id: 'eu-2', tags: ['eu'] },
        { id: 'eu-3', tags: ['eu'] },
        { id: 'us-1', tags: ['us'] },
      );
      fleet.connect('eu-1');
      fleet.connect('eu-2');
      fleet.connect('us-1');
      fleet.retained.set('eu-3', 1);
      fleet.retained.set('eu-1', 1);
      const res = await h.call('POST', '/api/v1/killswitch/revoke', { body: { selector: { tags: ['eu'] } } });
      assert.equal(res.statusCode, 200, res.body);
      const out = res.json() as Reach & { action: string; revocationId: string; kind: string };
      assert.equal(out.action, 'revoke');
      assert.equal(out.kind, 'selector');
      assert.match(out.revocationId, /^rev_/);
      assert.deepEqual(
        { m: out.matchedDevices, d: out.disconnected, r: out.purgedRetained },
        { m: 3, d: 2, r: 2 },
      );
      assert.deepEqual([...fleet.sessions.keys()], ['us-1']);
      const kicks = fleet.log.filter((l) => l.startsWith('kick:'));
      for (const k of kicks) {
        const id = k.slice(5);
        assert.ok(fleet.log.indexOf(`purge:${id}`) < fleet.log.indexOf(k), `${id} purged before kicked`);
      }
      const one = (await h.call('GET', `/api/v1/revocations/${out.revocationId}`)).json() as {
        revocation: View;
        deviceIds: string[];
      };
      assert.deepEqual(one.deviceIds, ['eu-1', 'eu-2', 'eu-3']);
      assert.equal(one.revocation.deviceCount, 3);
      const audit = (await h.call('GET', '/api/v1/audit?action=revocation.create')).json() as {
        items: Array<{ details: { via: string } }>;
      };
      assert.equal(audit.items[0]?.details.via, 'killswitch');
    });

    it('400 names the field; empty selector needs all: true; viewer may read but not revoke (403)', async (t) => {
      const h = await start(t);
      if (!h) return;
      const cases: Array<[unknown, string]> = [
        [{}, 'deviceId'],
        [{ deviceId: 'a', tokenId: 'j' }, 'tokenId'],
        [{ selector: { tags: ['x'] }, deviceId: 'a' }, 'selector'],
        [{ tokenId: 'j', issuedBefore: 'now' }, 'issuedBefore'],
        [{ issuedBefore: 'yesterday' }, 'issuedBefore'],
        [{ issuedBefore: '2030-01-01T00:00:00Z' }, 'issuedBefore'],
        [{ selector: {} }, 'selector'],
        [{ deviceId: 'has space' }, 'deviceId'],
        [{ deviceId: 'a', colour: 'red' }, 'colour'],
        [{ selector: { tags: ['eu'], cohorts: 'x' } }, 'selector.cohorts'],
      ];
      for (const [body, field] of cases) {
        const res = await h.call('POST', '/api/v1/revocations', { body });
        assert.equal(res.statusCode, 400, `${JSON.stringify(body)}: ${res.body}`);
        assert.equal(errorOf(res).field, field, JSON.stringify(body));
      }
      const viewer = await keyFor(h, 'viewer');
      const denied = await h.call('POST', '/api/v1/killswitch/revoke', {
        key: viewer,
        body: { deviceId: 'a' },
      });
      assert.equal(denied.statusCode, 403);
      assert.equal((await h.call('GET', '/api/v1/revocations', { key: viewer })).statusCode, 200);
      const list = (await h.call('GET', '/api/v1/revocations')).json() as { items: unknown[] };
      assert.equal(list.items.length, 0, 'nothing half-applied');
      const operator = await keyFor(h, 'operator');
      const all = await h.call('POST', '/api/v1/revocations', {
        key: operator,
        body: { selector: { all: true } },
      });
      assert.equal(all.statusCode, 201, 'all: true is an explicit fleet-wide revocation');
    });

    it('by token id: ends only the sessions holding it; by issuedBefore: per device and global', async (t) => {
      const fleet = new RecordingFleet();
      const h = await start(t, fleet);
      if (!h) return;
      const now = h.clock.now();
      await devices(h, { id: 'a' }, { id: 'b' }, { id: 'c' });
      fleet.connect('a', { tokenId: 'j-a', issuedAt: now - 60_000 });
      fleet.connect('b', { tokenId: 'j-b', issuedAt: now - 60_000 });
      fleet.connect('c', { tokenId: 'j-c', issuedAt: now - 1_000 });
      const tok = await revoke(h, { tokenId: 'j-a' });
      assert.equal(tok.revocation.kind, 'token');
      assert.deepEqual({ m: tok.matchedDevices, d: tok.disconnected }, { m: 1, d: 1 });
      assert.deepEqual([...fleet.sessions.keys()].sort(), ['b', 'c']);
      assert.equal(fleet.connect('a', { tokenId: 'j-a', issuedAt: now }), false, 'the token is refused');
      assert.equal(fleet.connect('a', { tokenId: 'j-a2', issuedAt: now }), true, 'a new token is fine');

      const perDevice = await revoke(h, {
        deviceId: 'b',
        issuedBefore: new Date(now - 30_000).toISOString(),
      });
      assert.equal(perDevice.revocation.kind, 'device');
      assert.equal(perDevice.disconnected, 1);
      assert.equal(fleet.connect('b', { tokenId: 'old', issuedAt: now - 40_000 }), false);
      assert.equal(
        fleet.connect('b', { tokenId: 'new', issuedAt: now - 20_000 }),
        true,
        'the device itself is not banned',
      );

      const global = await revoke(h, { issuedBefore: 'now' }, '/api/v1/killswitch/revoke');
      assert.equal((global as unknown as { kind: string }).kind, 'all');
      // a (j-a2, iat = now) stays; b (iat now-20s) and c (now-1s) were issued before now.
      assert.deepEqual({ m: global.matchedDevices, d: global.disconnected }, { m: 2, d: 2 });
      assert.deepEqual([...fleet.sessions.keys()], ['a']);
      const tokens = (await h.call('GET', '/api/v1/revocations?kind=all')).json() as { items: View[] };
      assert.equal(tokens.items[0]?.issuedBefore, new Date(now).toISOString());
      assert.equal(tokens.items[0]?.deviceCount, 2, 'the sessions it reached are recorded');
    });

    it('DELETE un-revokes, keeping what another active revocation covers; 409 twice; 404 unknown; audited', async (t) => {
      const fleet = new RecordingFleet();
      const h = await start(t, fleet);
      if (!h) return;
      await devices(h, { id: 'a', tags: ['t'] }, { id: 'b', tags: ['t'] });
      const single = await revoke(h, { deviceId: 'a' });
      const both = await revoke(h, { selector: { tags: ['t'] } });
      const operator = await keyFor(h, 'operator');
      const res = await h.call('DELETE', `/api/v1/revocations/${both.revocation.id}`, {
        key: operator,
        headers: { 'x-breakwater-reason': 'false alarm' },
      });
      assert.equal(res.statusCode, 200, res.body);
      const out = res.json() as { revocation: View; released: number; stillRevoked: number };
      assert.equal(out.revocation.active, false);
      assert.equal(out.revocation.revertedBy?.name, 'operator');
      assert.deepEqual(
        { released: out.released, stillRevoked: out.stillRevoked },
        { released: 1, stillRevoked: 1 },
      );
      assert.equal(fleet.connect('b'), true, 'b is free again');
      assert.equal(fleet.connect('a'), false, 'a is still revoked by the device revocation');
      assert.ok(fleet.log.includes('unrevoke:client:b'));
      assert.ok(!fleet.log.includes('unrevoke:client:a'));
      const again = await h.call('DELETE', `/api/v1/revocations/${both.revocation.id}`);
      assert.equal(again.statusCode, 409);
      assert.equal((await h.call('DELETE', '/api/v1/revocations/rev_nope')).statusCode, 404);
      const viewer = await keyFor(h, 'viewer');
      assert.equal(
        (await h.call('DELETE', `/api/v1/revocations/${single.revocation.id}`, { key: viewer })).statusCode,
        403,
      );
      assert.equal((await h.call('DELETE', `/api/v1/revocations/${single.revocation.id}`)).statusCode, 200);
      assert.equal(fleet.connect('a'), true, 'a is free once nothing covers it');
      const audit = (await h.call('GET', '/api/v1/audit?action=revocation.delete')).json() as {
        items: Array<{ targetId: string; reason: string | null }>;
      };
      assert.equal(audit.items.length, 2);
      assert.equal(audit.items[1]?.reason, 'false alarm');
      const active = (await h.call('GET', '/api/v1/revocations?active=true')).json() as { items: View[] };
      assert.equal(active.items.length, 0);
      const reverted = (await h.call('GET', '/api/v1/revocations?active=false&deviceId=b')).json() as {
        items: View[];
      };
      assert.deepEqual(
        reverted.items.map((r) => r.id),
        [both.revocation.id],
      );
      const bad = await h.call('GET', '/api/v1/revocations?kind=everything');
      assert.equal(bad.statusCode, 400);
      assert.equal(errorOf(bad).field, 'kind');
    });

    it('concurrent un-revokes of overlapping revocations release the device (no entry left behind)', async (t) => {
      const fleet = new RecordingFleet();
      const h = await start(t, fleet);
      if (!h) return;
      await devices(h, { id: 'a', tags: ['t'] });
      const [r1, r2, r3] = await Promise.all([
        revoke(h, { deviceId: 'a' }),
        revoke(h, { selector: { tags: ['t'] } }),
        revoke(h, { selector: { ids: ['a'] } }),
      ]);
      const results = await Promise.all(
        [r1, r2, r3].map((r) => h.call('DELETE', `/api/v1/revocations/${r.revocation.id}`)),
      );
      assert.deepEqual(
        results.map((r) => r.statusCode),
        [200, 200, 200],
      );
      const released = results.map((r) => (r.json() as { released: number }).released);
      assert.equal(
        released.reduce((a, b) => a + b, 0),
        1,
        'exactly the last one releases it',
      );
      assert.equal(fleet.connect('a'), true);
    });

    it('without a broker: stored, 0 disconnected, a warning; loaded into the guard at the next start with a broker', async (t) => {
      const h = await start(t, null);
      if (!h) return;
      await devices(h, { id: 'a' });
      const res = await h.call('POST', '/api/v1/killswitch/revoke', { body: { deviceId: 'a' } });
      assert.equal(res.statusCode, 200, res.body);
      const out = res.json() as Reach;
      assert.equal(out.disconnected, 0);
      assert.match(out.warnings.join(' '), /no broker attached/);
      await revoke(h, { tokenId: 'jti-9' });
      await revoke(h, { issuedBefore: 'now' });
      const reverted = await revoke(h, { deviceId: 'z' });
      assert.equal((await h.call('DELETE', `/api/v1/revocations/${reverted.revocation.id}`)).statusCode, 200);

      const fleet = new RecordingFleet();
      const restarted = await createControlPlane({
        storage: h.storage,
        dataDir: h.dataDir,
        clock: h.clock,
        fleet,
      });
      await restarted.start();
      t.after(() => restarted.close());
      assert.deepEqual(
        fleet.log.sort(),
        ['revoke:client:a', `revoke:global:${h.clock.now()}`, 'revoke:token:jti-9'],
        'every ACTIVE revocation, nothing reverted',
      );
      assert.equal(fleet.connect('a'), false);
      assert.equal(fleet.connect('z'), true);
    });

    it('broker without authentication: live sessions ended, a warning that reconnects cannot be refused', async (t) => {
      const fleet = new RecordingFleet(false);
      const h = await start(t, fleet);
      if (!h) return;
      await devices(h, { id: 'a' });
      fleet.connect('a');
      fleet.wills.add('a');
      const out = await revoke(h, { deviceId: 'a' });
      assert.equal(out.disconnected, 1);
      assert.equal(out.purgedWills, 1);
      assert.deepEqual(fleet.log, ['purge:a', 'kick:a']);
      assert.match(out.warnings.join(' '), /reconnects cannot be refused/);
    });

    it('deleting a device revokes its tokens issued before now (listed, reversible)', async (t) => {
      const fleet = new RecordingFleet();
      const h = await start(t, fleet);
      if (!h) return;
      await devices(h, { id: 'a' });
      const now = h.clock.now();
      fleet.connect('a', { tokenId: 'j', issuedAt: now - 5_000 });
      fleet.wills.add('a');
      assert.equal((await h.call('DELETE', '/api/v1/devices/a')).statusCode, 204);
      assert.equal(fleet.sessions.has('a'), false, 'its live session ended');
      assert.deepEqual(fleet.log, ['purge:a', `revoke:cutoff:a:${now}`, 'kick:a']);
      assert.equal(fleet.connect('a', { tokenId: 'j', issuedAt: now - 5_000 }), false);
      const list = (await h.call('GET', '/api/v1/revocations?deviceId=a')).json() as { items: View[] };
      assert.equal(list.items.length, 1);
      assert.equal(list.items[0]?.reason, 'device deleted');
      assert.equal(list.items[0]?.issuedBefore, new Date(now).toISOString());
      h.clock.advance(1000);
      assert.equal((await h.call('POST', '/api/v1/devices', { body: { id: 'a' } })).statusCode, 201);
      assert.equal(
        fleet.connect('a', { tokenId: 'new', issuedAt: h.clock.now() }),
        true,
        're-registered: new tokens work',
      );
    });

    it('the OpenAPI document has the revocation routes', async (t) => {
      const h = await start(t);
      if (!h) return;
      const doc = (await h.call('GET', '/api/openapi.json', { key: null })).json() as {
        paths: Record<string, Record<string, { requestBody?: unknown }>>;
      };
      assert.ok(doc.paths['/api/v1/revocations']?.post?.requestBody);
      assert.ok(doc.paths['/api/v1/revocations']?.get);
      assert.ok(doc.paths['/api/v1/revocations/{id}']?.delete);
      assert.ok(doc.paths['/api/v1/killswitch/revoke']?.post?.requestBody);
    });
  });
}
