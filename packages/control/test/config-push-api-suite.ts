/**
 * Config push HTTP API, in-process (fastify.inject), once per storage driver
 * (config-push-api-sqlite.test.ts, config-push-api-postgres.test.ts), against a
 * recording FleetBroker (what is published, who is online, and a tap the test feeds reports
 * into). The real broker and device SDK are in config-push-e2e.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import type { FleetBroker, FleetMessageHandler } from '../src/fleet-broker.js';
import type { ControlPlaneOptions } from '../src/http/app.js';
import { type Driver, errorOf, type Harness, startControlPlane } from './harness.js';

interface Published {
  topic: string;
  payload: string;
  qos: number;
  retain: boolean;
}

/** Records publishes; `fail` makes chosen topics reject; counts publishes in flight at once. */
class RecordingFleet implements FleetBroker {
  readonly published: Published[] = [];
  readonly online = new Set<string>();
  readonly taps = new Map<string, FleetMessageHandler>();
  fail: (topic: string) => boolean = () => false;
  inFlight = 0;
  maxInFlight = 0;
  readonly revocations = null;

  async publish(m: {
    topic: string;
    payload: Buffer | string;
    qos: 0 | 1 | 2;
    retain?: boolean;
  }): Promise<void> {
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    // Like the broker: resolves after a (shared) flush, here the next macrotask.
    await new Promise((resolve) => setImmediate(resolve));
    this.inFlight--;
    if (this.fail(m.topic)) throw new Error('storage flush failed');
    this.published.push({
      topic: m.topic,
      payload: String(m.payload),
      qos: m.qos,
      retain: m.retain === true,
    });
  }

  subscribe(filter: string, handler: FleetMessageHandler): () => void {
    this.taps.set(filter, handler);
    return () => this.taps.delete(filter);
  }

  /** A device (or an impostor: `publisherId`) publishes its reported config. */
  report(deviceId: string, doc: unknown, publisherId: string | null = deviceId): void {
    const tap = this.taps.get('$fleet/+/config/reported');
    assert.ok(tap, 'the control plane follows $fleet/+/config/reported');
    tap(`$fleet/${deviceId}/config/reported`, Buffer.from(JSON.stringify(doc)), publisherId);
  }

  onPresence(): () => void {
    return () => {};
  }
  disconnectClient(): boolean {
    return false;
  }
  async purgePublishedBy(): Promise<{ retained: number; wills: number }> {
    return { retained: 0, wills: 0 };
  }
  connectedClientIds(): string[] {
    return [...this.online];
  }
}

interface PushResult {
  action: string;
  version: number | null;
  matchedDevices: number;
  published: number;
  online: number;
  warnings: string[];
}

interface DeviceConfig {
  deviceId: string;
  status: string;
  inSync: boolean;
  contentMatches: boolean | null;
  desired: { version: number; config: Record<string, unknown>; pushedAt: string } | null;
  reported: { version: string | null; config: Record<string, unknown>; reportedAt: string } | null;
}

function put(h: Harness, id: string, body: unknown, key: string = h.adminKey) {
  return h.app.inject({
    method: 'PUT',
    url: `/api/v1/devices/${id}/config`,
    headers: { authorization: `Bearer ${key}` },
    payload: body as object,
  });
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

export function configPushApiSuite(driver: Driver): void {
  describe(`config push API (${driver.name})`, () => {
    async function start(
      t: TestContext,
      extra: Partial<ControlPlaneOptions> = {},
    ): Promise<{ h: Harness; fleet: RecordingFleet } | null> {
      if (!(await driver.available(t))) return null;
      const fleet = new RecordingFleet();
      const h = await startControlPlane(t, driver, { fleet, ...extra });
      await h.cp.start();
      t.after(() => h.cp.close());
      return { h, fleet };
    }

    it('PUT /devices/:id/config stores, audits and publishes retained QoS 1 with the version', async (t) => {
      const s = await start(t);
      if (!s) return;
      const { h, fleet } = s;
      await devices(h, { id: 'sensor-1' });
      fleet.online.add('sensor-1');
      const res = await put(h, 'sensor-1', { config: { sampleRate: 5, mode: 'safe' }, reason: 'INC-7' });
      assert.equal(res.statusCode, 200, res.body);
      const r = res.json() as PushResult;
      assert.equal(r.action, 'config.push');
      assert.equal(typeof r.version, 'number');
      assert.deepEqual(
        { matched: r.matchedDevices, published: r.published, online: r.online, warnings: r.warnings },
        { matched: 1, published: 1, online: 1, warnings: [] },
      );
      assert.equal(fleet.published.length, 1);
      const p = fleet.published[0]!;
      assert.equal(p.topic, '$fleet/sensor-1/config');
      assert.equal(p.qos, 1);
      assert.equal(p.retain, true);
      assert.deepEqual(JSON.parse(p.payload), { version: r.version, sampleRate: 5, mode: 'safe' });

      const got = (await h.call('GET', '/api/v1/devices/sensor-1/config')).json() as DeviceConfig;
      assert.equal(got.status, 'never-reported');
      assert.equal(got.inSync, false);
      assert.deepEqual(got.desired, {
        version: r.version,
        config: { sampleRate: 5, mode: 'safe' },
        pushedAt: new Date(h.clock.now()).toISOString(),
      });
      assert.equal(got.reported, null);

      const audit = (await h.call('GET', '/api/v1/audit?action=config.push')).json() as {
        items: Array<{ target: { id: string }; reason: string; details: Record<string, unknown> }>;
      };
      assert.equal(audit.items.length, 1);
      assert.equal(audit.items[0]!.target.id, 'sensor-1');
      assert.equal(audit.items[0]!.reason, 'INC-7');
      assert.equal(audit.items[0]!.details.version, r.version);
      assert.deepEqual(audit.items[0]!.details.config, { sampleRate: 5, mode: 'safe' });
    });

    it('deleting a device forgets its config and clears its retained config and OTA job', async (t) => {
      const s = await start(t);
      if (!s) return;
      const { h, fleet } = s;
      await devices(h, { id: 'gone-1' });
      assert.equal((await put(h, 'gone-1', { config: { a: 1 } })).statusCode, 200);
      fleet.report('gone-1', { version: 1, a: 1 });
      // Reports are written in batches: wait until this one is stored before deleting.
      for (let i = 0; i < 500; i++) {
        const c = (await h.call('GET', '/api/v1/devices/gone-1/config')).json() as DeviceConfig;
        if (c.reported !== null) break;
        await new Promise((r) => setTimeout(r, 10));
      }
      const del = await h.call('DELETE', '/api/v1/devices/gone-1');
      assert.equal(del.statusCode, 204, del.body);
      const cleared = fleet.published.filter((p) => p.payload === '').map((p) => [p.topic, p.retain]);
      assert.deepEqual(cleared, [
        ['$fleet/gone-1/config', true],
        ['$fleet/gone-1/ota', true],
      ]);
      await devices(h, { id: 'gone-1' });
      const got = (await h.call('GET', '/api/v1/devices/gone-1/config')).json() as DeviceConfig;
      assert.equal(got.desired, null, 'a re-registered id starts without the old desired config');
      assert.equal(got.reported, null);
    });

    it("the device's own report puts it in sync; a report published by another client is ignored", async (t) => {
      const s = await start(t);
      if (!s) return;
      const { h, fleet } = s;
      await devices(h, { id: 'sensor-1' }, { id: 'sensor-2' });
      const { version } = (await put(h, 'sensor-1', { config: { a: 1 } })).json() as PushResult;
      // An impostor reports for sensor-1: refused, the status stays never-reported.
      fleet.report('sensor-1', { version, a: 1 }, 'sensor-2');
      fleet.report('sensor-1', { version, a: 1 }, null);
      fleet.report('unregistered', { version: 1 });
      await flushReports(h);
      assert.equal(
        ((await h.call('GET', '/api/v1/devices/sensor-1/config')).json() as DeviceConfig).status,
        'never-reported',
      );
      fleet.report('sensor-1', { a: 1, version });
      await flushReports(h);
      const got = (await h.call('GET', '/api/v1/devices/sensor-1/config')).json() as DeviceConfig;
      assert.equal(got.status, 'in-sync');
      assert.equal(got.inSync, true);
      assert.equal(got.contentMatches, true);
      assert.deepEqual(got.reported?.config, { a: 1, version });
      assert.equal(got.reported?.version, String(version));
    });

    it('POST /config/push: one version for every matched device, counts what it reached', async (t) => {
      const s = await start(t);
      if (!s) return;
      const { h, fleet } = s;
      await devices(
        h,
        { id: 'a', tags: ['eu'] },
        { id: 'b', tags: ['eu'] },
        { id: 'c', tags: ['eu'] },
        { id: 'd' },
      );
      fleet.online.add('a');
      fleet.online.add('d'); // online but not targeted
      const res = await h.call('POST', '/api/v1/config/push', {
        body: { selector: { tags: ['eu'] }, config: { ntp: 'pool.eu' }, reason: 'EU NTP outage' },
      });
      assert.equal(res.statusCode, 200, res.body);
      const r = res.json() as PushResult;
      assert.deepEqual(
        { matched: r.matchedDevices, published: r.published, online: r.online },
        { matched: 3, published: 3, online: 1 },
      );
      assert.deepEqual(fleet.published.map((p) => p.topic).sort(), [
        '$fleet/a/config',
        '$fleet/b/config',
        '$fleet/c/config',
      ]);
      for (const p of fleet.published)
        assert.equal((JSON.parse(p.payload) as { version: number }).version, r.version);
      const drift = (await h.call('GET', '/api/v1/config/drift?tag=eu')).json() as {
        summary: Record<string, number>;
        items: Array<{ deviceId: string; desiredVersion: number; status: string }>;
      };
      assert.deepEqual(drift.summary, {
        matched: 3,
        inSync: 0,
        pending: 0,
        neverReported: 3,
        differs: 0,
        noDesired: 0,
      });
      assert.ok(drift.items.every((d) => d.desiredVersion === r.version));
    });

    it('merge: true applies a JSON Merge Patch to each device’s current desired config', async (t) => {
      const s = await start(t);
      if (!s) return;
      const { h, fleet } = s;
      await devices(h, { id: 'a', tags: ['x'] }, { id: 'b', tags: ['x'] });
      await put(h, 'a', { config: { mode: 'normal', net: { ntp: 'old', dns: '1.1.1.1' }, debug: true } });
      const res = await h.call('POST', '/api/v1/config/push', {
        body: { selector: { tags: ['x'] }, config: { net: { ntp: 'new' }, debug: null }, merge: true },
      });
      assert.equal(res.statusCode, 200, res.body);
      const a = (await h.call('GET', '/api/v1/devices/a/config')).json() as DeviceConfig;
      assert.deepEqual(a.desired?.config, { mode: 'normal', net: { ntp: 'new', dns: '1.1.1.1' } });
      const b = (await h.call('GET', '/api/v1/devices/b/config')).json() as DeviceConfig;
      assert.deepEqual(b.desired?.config, { net: { ntp: 'new' } }, 'no previous config: patch onto {}');
      const last = fleet.published.find((p) => p.topic === '$fleet/a/config' && p.payload.includes('new'));
      assert.deepEqual(JSON.parse(last!.payload), {
        version: a.desired?.version,
        mode: 'normal',
        net: { ntp: 'new', dns: '1.1.1.1' },
      });
    });

    it('POST /killswitch/config-push answers what it did; the reason is required', async (t) => {
      const s = await start(t);
      if (!s) return;
      const { h, fleet } = s;
      await devices(h, { id: 'a' }, { id: 'b' });
      fleet.online.add('b');
      const noReason = await h.call('POST', '/api/v1/killswitch/config-push', {
        body: { selector: { all: true }, config: { telemetry: false } },
      });
      assert.equal(noReason.statusCode, 400);
      assert.equal(errorOf(noReason).field, 'reason');
      const res = await h.call('POST', '/api/v1/killswitch/config-push', {
        body: { selector: { all: true }, config: { telemetry: false }, reason: 'cost incident' },
      });
      assert.equal(res.statusCode, 200, res.body);
      const r = res.json() as PushResult;
      assert.equal(r.action, 'config-push');
      assert.deepEqual(
        { matched: r.matchedDevices, published: r.published, online: r.online, warnings: r.warnings },
        { matched: 2, published: 2, online: 1, warnings: [] },
      );
      const audit = (await h.call('GET', '/api/v1/audit?action=config-push')).json() as {
        items: Array<{ reason: string; details: { matchedDevices: number; selector: unknown } }>;
      };
      assert.equal(audit.items[0]?.reason, 'cost incident');
      assert.equal(audit.items[0]?.details.matchedDevices, 2);
      assert.deepEqual(audit.items[0]?.details.selector, { all: true });
    });

    it('validation: 400 naming the field, 413 over 64 KiB, 404 unknown device; nothing written', async (t) => {
      const s = await start(t);
      if (!s) return;
      const { h, fleet } = s;
      await devices(h, { id: 'a' });
      const cases: Array<[unknown, number, string]> = [
        [{ selector: {}, config: { x: 1 } }, 400, 'selector'],
        [{ selector: { ids: ['a'] }, config: { version: 3 } }, 400, 'config.version'],
        [{ selector: { ids: ['a'] }, config: [1, 2] }, 400, 'config'],
        [{ selector: { ids: ['a'] }, config: 'x' }, 400, 'config'],
        [{ selector: { ids: ['a'] } }, 400, 'config'],
        [{ selector: { ids: ['a'] }, config: {}, merg: true }, 400, 'merg'],
        [{ selector: { ids: ['a'] }, config: {}, merge: 'yes' }, 400, 'merge'],
        [{ selector: { ids: ['a/b'] }, config: {} }, 400, 'selector.ids[0]'],
        [{ selector: { ids: ['a'] }, config: { blob: 'x'.repeat(70 * 1024) } }, 413, 'config'],
      ];
      for (const [body, status, field] of cases) {
        const res = await h.call('POST', '/api/v1/config/push', { body });
        assert.equal(
          res.statusCode,
          status,
          `${JSON.stringify(body).slice(0, 80)}: ${res.body.slice(0, 200)}`,
        );
        assert.equal(errorOf(res).field, field, JSON.stringify(body).slice(0, 80));
      }
      const missing = await put(h, 'ghost', { config: { x: 1 } });
      assert.equal(missing.statusCode, 404);
      assert.equal(errorOf(missing).code, 'BW_ERR_API_NOT_FOUND');
      assert.equal((await h.call('GET', '/api/v1/devices/ghost/config')).statusCode, 404);
      assert.equal((await put(h, 'a', { config: { version: 'x' } })).statusCode, 400);
      assert.equal(fleet.published.length, 0, 'nothing published');
      const audit = (await h.call('GET', '/api/v1/audit?targetType=device')).json() as {
        items: Array<{ action: string }>;
      };
      assert.deepEqual(
        audit.items.map((i) => i.action),
        ['device.import'],
        'nothing audited',
      );
      assert.equal(
        ((await h.call('GET', '/api/v1/devices/a/config')).json() as DeviceConfig).status,
        'no-desired',
      );
      // A merge whose result is over the limit: 413, nothing stored.
      assert.equal((await put(h, 'a', { config: { blob: 'x'.repeat(40 * 1024) } })).statusCode, 200);
      const tooBig = await put(h, 'a', { config: { blob2: 'y'.repeat(40 * 1024) }, merge: true });
      assert.equal(tooBig.statusCode, 413);
      assert.equal(errorOf(tooBig).field, 'config');
      assert.equal(
        Object.keys(
          ((await h.call('GET', '/api/v1/devices/a/config')).json() as DeviceConfig).desired!.config,
        ).join(),
        'blob',
      );
    });

    it('roles: viewers read config and drift, only operators push', async (t) => {
      const s = await start(t);
      if (!s) return;
      const { h } = s;
      await devices(h, { id: 'a' });
      const viewer = await keyFor(h, 'viewer');
      const operator = await keyFor(h, 'operator');
      assert.equal((await put(h, 'a', { config: { x: 1 } }, viewer)).statusCode, 403);
      for (const url of ['/api/v1/config/push', '/api/v1/killswitch/config-push']) {
        const res = await h.call('POST', url, {
          key: viewer,
          body: { selector: { ids: ['a'] }, config: {}, reason: 'r' },
        });
        assert.equal(res.statusCode, 403, url);
      }
      assert.equal((await put(h, 'a', { config: { x: 1 } }, operator)).statusCode, 200);
      assert.equal((await h.call('GET', '/api/v1/devices/a/config', { key: viewer })).statusCode, 200);
      assert.equal((await h.call('GET', '/api/v1/config/drift', { key: viewer })).statusCode, 200);
      assert.equal((await h.call('GET', '/api/v1/config/drift', { key: null })).statusCode, 401);
    });

    it('without a broker: stored, published 0, with a warning', async (t) => {
      if (!(await driver.available(t))) return;
      const h = await startControlPlane(t, driver);
      await devices(h, { id: 'a' });
      const res = await put(h, 'a', { config: { x: 1 } });
      assert.equal(res.statusCode, 200, res.body);
      const r = res.json() as PushResult;
      assert.equal(r.published, 0);
      assert.equal(r.matchedDevices, 1);
      assert.equal(r.warnings.length, 1);
      assert.match(r.warnings[0]!, /no broker attached/);
      const got = (await h.call('GET', '/api/v1/devices/a/config')).json() as DeviceConfig;
      assert.equal(got.desired?.version, r.version);
    });

    it('a selector that matches nothing pushes nothing and says so', async (t) => {
      const s = await start(t);
      if (!s) return;
      const { h, fleet } = s;
      await devices(h, { id: 'a' });
      const res = await h.call('POST', '/api/v1/config/push', {
        body: { selector: { cohort: 'nobody' }, config: { x: 1 } },
      });
      assert.equal(res.statusCode, 200, res.body);
      const r = res.json() as PushResult;
      assert.equal(r.version, null);
      assert.equal(r.matchedDevices, 0);
      assert.match(r.warnings[0]!, /matched no registered device/);
      assert.equal(fleet.published.length, 0);
    });

    it('failed publishes are counted and reported; the desired config is stored', async (t) => {
      const s = await start(t);
      if (!s) return;
      const { h, fleet } = s;
      await devices(h, { id: 'a', tags: ['t'] }, { id: 'b', tags: ['t'] }, { id: 'c', tags: ['t'] });
      fleet.fail = (topic) => topic === '$fleet/b/config';
      const r = (
        await h.call('POST', '/api/v1/config/push', { body: { selector: { tags: ['t'] }, config: { x: 1 } } })
      ).json() as PushResult;
      assert.equal(r.matchedDevices, 3);
      assert.equal(r.published, 2);
      assert.equal(r.warnings.length, 1);
      assert.match(r.warnings[0]!, /1 of 3 publishes failed \(first: b:/);
      const b = (await h.call('GET', '/api/v1/devices/b/config')).json() as DeviceConfig;
      assert.equal(b.desired?.version, r.version);
    });

    it('drift: per-device status, status filter, pagination, counts over all pages', async (t) => {
      const s = await start(t);
      if (!s) return;
      const { h, fleet } = s;
      const ids = Array.from({ length: 7 }, (_, i) => `d${i}`);
      await devices(h, ...ids.map((id) => ({ id, tags: ['fleet'] })));
      const { version } = (
        await h.call('POST', '/api/v1/config/push', {
          body: { selector: { tags: ['fleet'] }, config: { m: 1 } },
        })
      ).json() as PushResult;
      fleet.report('d0', { version, m: 1 }); // in sync
      fleet.report('d1', { version: version! + 100, m: 1 }); // differs: a version never pushed
      fleet.report('d2', { version: version! - 1, m: 0 }); // pending
      fleet.report('d3', { version, m: 1, extra: 'default' }); // in sync, effective config
      await flushReports(h);
      const drift = (await h.call('GET', '/api/v1/config/drift?tag=fleet&limit=3')).json() as {
        summary: Record<string, number>;
        items: Array<{ deviceId: string; status: string; inSync: boolean; contentMatches: boolean | null }>;
        nextCursor: string | null;
      };
      assert.deepEqual(drift.summary, {
        matched: 7,
        inSync: 2,
        pending: 1,
        neverReported: 3,
        differs: 1,
        noDesired: 0,
      });
      assert.deepEqual(
        drift.items.map((d) => [d.deviceId, d.status, d.inSync, d.contentMatches]),
        [
          ['d0', 'in-sync', true, true],
          ['d1', 'differs', false, true],
          ['d2', 'pending', false, false],
        ],
      );
      assert.ok(drift.nextCursor);
      const next = (
        await h.call('GET', `/api/v1/config/drift?tag=fleet&limit=3&cursor=${drift.nextCursor}`)
      ).json() as { items: Array<{ deviceId: string; status: string; contentMatches: boolean | null }> };
      assert.deepEqual(
        next.items.map((d) => [d.deviceId, d.status, d.contentMatches]),
        [
          ['d3', 'in-sync', false],
          ['d4', 'never-reported', null],
          ['d5', 'never-reported', null],
        ],
      );
      const never = (
        await h.call('GET', '/api/v1/config/drift?status=never-reported&id=d4&id=d0')
      ).json() as {
        summary: { matched: number };
        items: Array<{ deviceId: string }>;
      };
      assert.equal(never.summary.matched, 2);
      assert.deepEqual(
        never.items.map((d) => d.deviceId),
        ['d4'],
      );
      const bad = await h.call('GET', '/api/v1/config/drift?status=bogus');
      assert.equal(bad.statusCode, 400);
      assert.equal(errorOf(bad).field, 'status');
      const badCursor = await h.call('GET', '/api/v1/config/drift?cursor=%%%');
      assert.equal(badCursor.statusCode, 400);
    });

    it('10,000 devices: publishes run concurrently (shared flushes), every device gets its config', async (t) => {
      const s = await start(t);
      if (!s) return;
      const { h, fleet } = s;
      const ids = Array.from({ length: 10_000 }, (_, i) => `bulk-${String(i).padStart(5, '0')}`);
      await h.storage.devices.insert(
        ids.map((id) => ({
          id,
          tags: ['bulk'],
          cohort: null,
          firmwareVersion: null,
          secretHash: 'x',
          createdAt: 1,
        })),
      );
      for (const id of ids.slice(0, 2500)) fleet.online.add(id);
      const res = await h.call('POST', '/api/v1/killswitch/config-push', {
        body: { selector: { tags: ['bulk'] }, config: { safeMode: true }, reason: 'bench' },
      });
      assert.equal(res.statusCode, 200, res.body);
      const r = res.json() as PushResult;
      assert.deepEqual(
        { matched: r.matchedDevices, published: r.published, online: r.online },
        { matched: 10_000, published: 10_000, online: 2500 },
      );
      assert.equal(new Set(fleet.published.map((p) => p.topic)).size, 10_000);
      assert.ok(fleet.maxInFlight >= 500, `publishes in flight together: ${fleet.maxInFlight}`);
      const drift = (await h.call('GET', '/api/v1/config/drift?tag=bulk&limit=1')).json() as {
        summary: { neverReported: number };
      };
      assert.equal(drift.summary.neverReported, 10_000);
    });

    it('the OpenAPI document lists the config routes', async (t) => {
      const s = await start(t);
      if (!s) return;
      const doc = (await s.h.call('GET', '/api/openapi.json', { key: null })).json() as {
        paths: Record<string, Record<string, unknown>>;
      };
      assert.ok(doc.paths['/api/v1/devices/{id}/config']?.put);
      assert.ok(doc.paths['/api/v1/devices/{id}/config']?.get);
      assert.ok(doc.paths['/api/v1/config/push']?.post);
      assert.ok(doc.paths['/api/v1/config/drift']?.get);
      assert.ok(doc.paths['/api/v1/killswitch/config-push']?.post);
    });
  });
}

/** Waits until the reports fed so far are written (the follower batches per event-loop turn). */
async function flushReports(h: Harness): Promise<void> {
  // close() flushes and unsubscribes; start() subscribes again.
  await h.cp.close();
  await h.cp.start();
}
