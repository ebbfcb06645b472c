/**
 * OTA campaign API, in-process (fastify.inject), run once per storage driver
 * (ota-api-sqlite.test.ts, ota-api-postgres.test.ts), with an in-memory fleet and a fake clock
 * (soak times and report timeouts move only when the test advances time).
 */
import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { createControlPlane } from '../src/http/app.js';
import { type Driver, errorOf, type Harness, startControlPlane } from './harness.js';
import { MemoryFleet } from './ota-fleet.js';

const SHA = 'ab'.repeat(32);

interface Detail {
  campaign: {
    id: string;
    state: string;
    currentWave: number | null;
    haltReason: string | null;
    haltedBy: string | null;
    targetCount: number;
    rollbackOf: string | null;
    artifact: { version: string };
  };
  waves: Array<{ wave: number; devices: number; states: Record<string, number> }>;
  states: Record<string, number>;
}

interface Job {
  deviceId: string;
  wave: number;
  state: string;
  jobId: string | null;
  attempt: number;
  previousVersion: string | null;
}

/** Polls until `check` returns a value (not undefined/false); generous deadline, no timing assertion. */
async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined | false>,
  ms = 20_000,
): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

async function setup(
  t: TestContext,
  driver: Driver,
  devices = 20,
): Promise<{ h: Harness; fleet: MemoryFleet } | null> {
  if (!(await driver.available(t))) return null;
  const fleet = new MemoryFleet();
  const h = await startControlPlane(t, driver, { fleet });
  await h.cp.start();
  t.after(() => h.cp.close());
  const rows = Array.from({ length: devices }, (_, i) => ({
    id: `dev-${String(i).padStart(2, '0')}`,
    tags: ['eu'],
    firmwareVersion: '1.0.0',
  }));
  if (rows.length > 0) {
    const res = await h.call('POST', '/api/v1/devices/import', { body: rows });
    assert.equal(res.statusCode, 201, res.body);
  }
  for (const r of rows) fleet.connected.add(r.id);
  return { h, fleet };
}

function campaignBody(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    name: 'fw 2.0',
    artifact: { url: 'https://fw.example/2.0.0.bin', version: '2.0.0', sha256: SHA, size: 1024 },
    selector: { tags: ['eu'] },
    waves: [
      { percent: 10, soakMs: 1000 },
      { percent: 50, soakMs: 1000 },
      { percent: 100, soakMs: 0 },
    ],
    gate: { maxFailureRatio: 0.1, maxOfflineRatio: 0.2, reportTimeoutMs: 60_000 },
    reason: 'release 2.0',
    ...extra,
  };
}

async function create(h: Harness, extra: Record<string, unknown> = {}): Promise<string> {
  const res = await h.call('POST', '/api/v1/campaigns', { body: campaignBody(extra) });
  assert.equal(res.statusCode, 201, res.body);
  return (res.json() as { campaign: { id: string } }).campaign.id;
}

async function detail(h: Harness, id: string): Promise<Detail> {
  const res = await h.call('GET', `/api/v1/campaigns/${id}`);
  assert.equal(res.statusCode, 200, res.body);
  return res.json() as Detail;
}

async function jobs(h: Harness, id: string, query = ''): Promise<Job[]> {
  const res = await h.call('GET', `/api/v1/campaigns/${id}/devices?limit=1000${query}`);
  assert.equal(res.statusCode, 200, res.body);
  return (res.json() as { items: Job[] }).items;
}

/** Waits until every job of `wave` is notified (or further). */
async function notifiedWave(h: Harness, id: string, wave: number): Promise<Job[]> {
  return waitFor(`wave ${wave} notified`, async () => {
    const list = await jobs(h, id, `&wave=${wave}`);
    return list.length > 0 && list.every((j) => j.state !== 'pending') ? list : undefined;
  });
}

/**
 * Moves the fake clock by `ms`, then keeps nudging it while waiting: the engine may arm its timer
 * just after the first advance (it runs asynchronously), and a timer only fires on an advance.
 */
async function advanceUntil<T>(
  h: Harness,
  ms: number,
  what: string,
  check: () => Promise<T | undefined | false>,
): Promise<T> {
  h.clock.advance(ms);
  return waitFor(what, async () => {
    const v = await check();
    if (v === undefined || v === false) h.clock.advance(10);
    return v;
  });
}

function succeedAll(fleet: MemoryFleet, list: readonly Job[]): void {
  for (const j of list) fleet.report(j.deviceId, j.jobId!, 'succeeded');
}

async function waitState(h: Harness, id: string, state: string, wave?: number): Promise<Detail> {
  return waitFor(`campaign ${state}${wave === undefined ? '' : ` in wave ${wave}`}`, async () => {
    const d = await detail(h, id);
    return d.campaign.state === state && (wave === undefined || d.campaign.currentWave === wave)
      ? d
      : undefined;
  });
}

export function otaApiSuite(driver: Driver): void {
  describe(`OTA campaigns API (${driver.name})`, () => {
    it('validates campaigns: 400 naming the field, 403 for viewers', async (t) => {
      const s = await setup(t, driver, 0);
      if (!s) return;
      const { h } = s;
      const cases: Array<[Record<string, unknown>, string]> = [
        [{ artifact: { url: 'https://x/a', version: '2', sha256: 'abc' } }, 'artifact.sha256'],
        [{ artifact: { url: 'ftp://x/a', version: '2', sha256: SHA } }, 'artifact.url'],
        [{ waves: [{ percent: 50 }, { percent: 20 }] }, 'waves[1].percent'],
        [{ waves: [{ percent: 0 }] }, 'waves[0].percent'],
        [
          {
            waves: [
              { percent: 10, minDevices: 5 },
              { percent: 100, minDevices: 1 },
            ],
          },
          'waves[1].minDevices',
        ],
        [{ waves: [] }, 'waves'],
        [{ selector: {} }, 'selector'],
        [{ gate: { maxFailureRatio: 2 } }, 'gate.maxFailureRatio'],
        [{ colour: 'red' }, 'colour'],
      ];
      for (const [extra, field] of cases) {
        const res = await h.call('POST', '/api/v1/campaigns', { body: campaignBody(extra) });
        assert.equal(res.statusCode, 400, `${JSON.stringify(extra)}: ${res.body}`);
        assert.equal(errorOf(res).field, field, res.body);
        assert.equal(errorOf(res).code, 'BW_ERR_API_VALIDATION');
      }
      const viewer = (
        await h.call('POST', '/api/v1/keys', { body: { name: 'v', role: 'viewer' } })
      ).json() as {
        key: string;
      };
      const denied = await h.call('POST', '/api/v1/campaigns', { body: campaignBody(), key: viewer.key });
      assert.equal(denied.statusCode, 403);
      const list = await h.call('GET', '/api/v1/campaigns', { key: viewer.key });
      assert.equal(list.statusCode, 200);
      assert.deepEqual((list.json() as { items: unknown[] }).items, []);
      assert.equal((await h.call('GET', '/api/v1/campaigns/cmp_nope')).statusCode, 404);
      const openapi = (await h.call('GET', '/api/openapi.json', { key: null })).json() as {
        paths: Record<string, Record<string, { requestBody?: unknown }>>;
      };
      for (const path of [
        '/api/v1/campaigns',
        '/api/v1/campaigns/{id}',
        '/api/v1/campaigns/{id}/devices',
        '/api/v1/campaigns/{id}/start',
        '/api/v1/campaigns/{id}/halt',
        '/api/v1/campaigns/{id}/resume',
        '/api/v1/campaigns/{id}/rollback',
        '/api/v1/killswitch/ota-halt',
      ]) {
        assert.ok(openapi.paths[path], `${path} in the OpenAPI document`);
      }
      assert.ok(openapi.paths['/api/v1/killswitch/ota-halt']?.post?.requestBody, 'body schema documented');
    });

    it('runs wave by wave after soak and passing gates, completes, updates the registry', async (t) => {
      const s = await setup(t, driver);
      if (!s) return;
      const { h, fleet } = s;
      const id = await create(h);
      const draft = await detail(h, id);
      assert.equal(draft.campaign.state, 'draft');
      assert.equal(draft.campaign.currentWave, null);

      const started = await h.call('POST', `/api/v1/campaigns/${id}/start`, { body: { reason: 'go' } });
      assert.equal(started.statusCode, 200, started.body);
      const d = started.json() as Detail;
      assert.equal(d.campaign.state, 'running');
      assert.equal(d.campaign.targetCount, 20);
      assert.deepEqual(
        d.waves.map((w) => w.devices),
        [2, 8, 10],
      );
      const again = await h.call('POST', `/api/v1/campaigns/${id}/start`);
      assert.equal(again.statusCode, 409);
      assert.equal(errorOf(again).code, 'BW_ERR_CAMPAIGN_STATE');

      const w1 = await notifiedWave(h, id, 1);
      assert.equal(w1.length, 2);
      for (const j of w1) {
        assert.equal(j.previousVersion, '1.0.0');
        const sent = fleet.published.find((p) => p.topic === `$fleet/${j.deviceId}/ota` && p.payload !== '');
        assert.ok(sent, `job published for ${j.deviceId}`);
        assert.equal(sent.qos, 1);
        assert.equal(sent.retain, true, 'retained: an offline device gets it on reconnect');
        assert.deepEqual(JSON.parse(sent.payload), {
          jobId: j.jobId,
          campaignId: id,
          version: '2.0.0',
          url: 'https://fw.example/2.0.0.bin',
          sha256: SHA,
          size: 1024,
        });
      }
      // Nobody beyond wave 1 has heard of it.
      const later = (await jobs(h, id)).filter((j) => j.wave > 1);
      assert.ok(later.every((j) => j.state === 'pending' && fleet.jobsFor(j.deviceId).length === 0));

      for (const j of w1) fleet.report(j.deviceId, j.jobId!, 'downloading', { progress: 50 });
      succeedAll(fleet, w1);
      await waitFor('wave 1 succeeded', async () => (await detail(h, id)).waves[0]!.states.succeeded === 2);
      // Settled but soaking: still wave 1 until the fake clock passes the soak.
      assert.equal((await detail(h, id)).campaign.currentWave, 1);
      assert.equal(
        fleet.retained.has(`$fleet/${w1[0]!.deviceId}/ota`),
        false,
        'retained job cleared once done',
      );
      await advanceUntil(h, 1000, 'wave 2', async () => (await detail(h, id)).campaign.currentWave === 2);
      const w2 = await notifiedWave(h, id, 2);
      assert.equal(w2.length, 8);
      succeedAll(fleet, w2);
      await waitFor('wave 2 settled', async () => (await detail(h, id)).waves[1]!.states.succeeded === 8);
      await advanceUntil(h, 1000, 'wave 3', async () => (await detail(h, id)).campaign.currentWave === 3);
      const w3 = await notifiedWave(h, id, 3);
      succeedAll(fleet, w3);
      const done = await waitState(h, id, 'completed');
      assert.equal(done.states.succeeded, 20);
      const dev = (await h.call('GET', `/api/v1/devices/${w3[0]!.deviceId}`)).json() as {
        firmwareVersion: string;
      };
      assert.equal(dev.firmwareVersion, '2.0.0', 'registry follows succeeded reports');
      const audit = (await h.call('GET', `/api/v1/audit?targetType=campaign&targetId=${id}`)).json() as {
        items: Array<{ action: string; actor: { id: string }; reason: string | null }>;
      };
      assert.deepEqual(audit.items.map((a) => a.action).reverse(), [
        'campaign.create',
        'campaign.start',
        'campaign.wave',
        'campaign.wave',
        'campaign.complete',
      ]);
      assert.equal(audit.items[0]!.actor.id, 'system');
      assert.equal(audit.items.at(-1)!.reason, 'release 2.0');
      // Each device got exactly one job.
      for (let i = 0; i < 20; i++) assert.equal(fleet.jobsFor(`dev-${String(i).padStart(2, '0')}`).length, 1);
    });

    it('a silent device times out and fails the gate: halted by itself, next wave never notified; resume overrides', async (t) => {
      const s = await setup(t, driver);
      if (!s) return;
      const { h, fleet } = s;
      const id = await create(h, {
        waves: [
          { percent: 25, soakMs: 0 },
          { percent: 100, soakMs: 0 },
        ],
        gate: { maxFailureRatio: 0.1, reportTimeoutMs: 5000 },
      });
      assert.equal((await h.call('POST', `/api/v1/campaigns/${id}/start`)).statusCode, 200);
      const w1 = await notifiedWave(h, id, 1);
      assert.equal(w1.length, 5);
      const [silent, ...rest] = w1;
      succeedAll(fleet, rest);
      fleet.report(silent!.deviceId, silent!.jobId!, 'installing');
      await waitFor('4 succeeded', async () => (await detail(h, id)).waves[0]!.states.succeeded === 4);
      assert.equal((await detail(h, id)).campaign.state, 'running');
      const halted = await advanceUntil(h, 5000, 'gate halt', async () => {
        const d = await detail(h, id);
        return d.campaign.state === 'halted' ? d : undefined;
      });
      assert.equal(halted.campaign.haltedBy, 'system');
      assert.match(halted.campaign.haltReason!, /wave 1: failure ratio 20% \(1\/5\)/);
      assert.equal(halted.waves[0]!.states['timed-out'], 1);
      const wave2 = await jobs(h, id, '&wave=2');
      assert.ok(wave2.every((j) => j.state === 'pending' && fleet.jobsFor(j.deviceId).length === 0));
      const audit = (await h.call('GET', `/api/v1/audit?action=campaign.halt&targetId=${id}`)).json() as {
        items: Array<{ actor: { id: string }; details: { automatic: boolean } }>;
      };
      assert.equal(audit.items[0]?.actor.id, 'system');
      assert.equal(audit.items[0]?.details.automatic, true);

      type Alerts = { active: Array<{ ruleId: string; labels: Record<string, string>; summary: string }> };
      const firing = ((await h.call('GET', '/api/v1/alerts')).json() as Alerts).active.find(
        (a) => a.ruleId === 'ota-gate-failed',
      );
      assert.deepEqual(firing?.labels, { campaign: id, wave: '1' }, 'the gate halt raised ota-gate-failed');
      assert.match(firing!.summary, /failure ratio 20%/);

      const resumed = await h.call('POST', `/api/v1/campaigns/${id}/resume`, {
        body: { reason: 'known flaky unit' },
      });
      assert.equal(resumed.statusCode, 200, resumed.body);
      // Gate of wave 1 overridden: wave 2 goes out.
      const w2 = await notifiedWave(h, id, 2);
      assert.equal(w2.length, 15);
      const after = ((await h.call('GET', '/api/v1/alerts')).json() as Alerts).active;
      assert.equal(
        after.filter((a) => a.ruleId === 'ota-gate-failed').length,
        0,
        'resume resolved the alert',
      );
    });

    it('devices that go offline after updating fail the soak gate', async (t) => {
      const s = await setup(t, driver);
      if (!s) return;
      const { h, fleet } = s;
      const id = await create(h, {
        waves: [
          { percent: 50, soakMs: 2000 },
          { percent: 100, soakMs: 0 },
        ],
      });
      await h.call('POST', `/api/v1/campaigns/${id}/start`);
      const w1 = await notifiedWave(h, id, 1);
      succeedAll(fleet, w1);
      await waitFor('wave 1 settled', async () => (await detail(h, id)).waves[0]!.states.succeeded === 10);
      for (const j of w1.slice(0, 3)) fleet.connected.delete(j.deviceId); // 30 % > 20 %
      const halted = await advanceUntil(h, 2000, 'gate halt', async () => {
        const d = await detail(h, id);
        return d.campaign.state === 'halted' ? d : undefined;
      });
      assert.match(halted.campaign.haltReason!, /went offline after updating/);
      assert.ok((await jobs(h, id, '&wave=2')).every((j) => fleet.jobsFor(j.deviceId).length === 0));
    });

    it('manual halt withdraws queued jobs, tells working devices to stop; resume re-sends with new job ids', async (t) => {
      const s = await setup(t, driver);
      if (!s) return;
      const { h, fleet } = s;
      const id = await create(h, { waves: [{ percent: 50 }, { percent: 100 }] });
      const notRunning = await h.call('POST', `/api/v1/campaigns/${id}/halt`, { body: { reason: 'x' } });
      assert.equal(notRunning.statusCode, 409);
      await h.call('POST', `/api/v1/campaigns/${id}/start`);
      const w1 = await notifiedWave(h, id, 1);
      fleet.report(w1[0]!.deviceId, w1[0]!.jobId!, 'downloading', { progress: 10 });
      fleet.report(w1[1]!.deviceId, w1[1]!.jobId!, 'installing');
      fleet.report(w1[2]!.deviceId, w1[2]!.jobId!, 'queued');
      fleet.report(w1[3]!.deviceId, w1[3]!.jobId!, 'succeeded');
      await waitFor('reports applied', async () => (await detail(h, id)).waves[0]!.states.installing === 1);
      await waitFor('reports applied', async () => (await detail(h, id)).waves[0]!.states.succeeded === 1);
      const mark = fleet.published.length;
      const res = await h.call('POST', `/api/v1/campaigns/${id}/halt`, { body: { reason: 'bad build' } });
      assert.equal(res.statusCode, 200, res.body);
      const halt = (res.json() as { halt: Record<string, unknown> }).halt;
      assert.equal(halt.cancelledNotifications, 7, '6 notified + 1 queued');
      assert.equal(halt.toldToStop, 2);
      assert.equal(halt.devicesReached, 9);
      const after = fleet.published.slice(mark);
      for (const j of w1.filter((_, i) => i !== 3)) {
        const mine = after.filter((p) => p.topic === `$fleet/${j.deviceId}/ota`);
        assert.deepEqual(
          mine.map((p) => [p.payload === '' ? 'clear' : JSON.parse(p.payload).halt, p.retain]),
          [
            ['clear', true],
            [true, false],
          ],
          j.deviceId,
        );
        assert.equal(JSON.parse(mine[1]!.payload).jobId, j.jobId);
        assert.equal(fleet.retained.has(`$fleet/${j.deviceId}/ota`), false);
      }
      assert.equal(
        after.filter((p) => p.payload !== '' && JSON.parse(p.payload).halt !== true).length,
        0,
        'no job published by the halt',
      );
      const d = await detail(h, id);
      assert.equal(d.campaign.state, 'halted');
      assert.equal(d.campaign.haltReason, 'bad build');
      // The SDK answers the cancel with failed/BW_ERR_DEVICE_OTA_CANCELLED.
      fleet.report(w1[0]!.deviceId, w1[0]!.jobId!, 'failed', {
        error: { code: 'BW_ERR_DEVICE_OTA_CANCELLED', message: 'cancelled' },
      });
      await waitFor('cancel confirmed', async () => (await detail(h, id)).waves[0]!.states.cancelled === 8);
      assert.equal((await h.call('POST', `/api/v1/campaigns/${id}/halt`)).statusCode, 409);

      const resumed = await h.call('POST', `/api/v1/campaigns/${id}/resume`, {
        body: { reason: 'fixed URL' },
      });
      assert.equal(resumed.statusCode, 200, resumed.body);
      assert.equal((resumed.json() as { notified: number }).notified, 9);
      const again = await notifiedWave(h, id, 1);
      const redone = again.filter((j) => j.deviceId !== w1[3]!.deviceId);
      assert.ok(redone.every((j) => j.attempt === 2 && j.jobId === `${id}.2`));
      assert.equal(again.find((j) => j.deviceId === w1[3]!.deviceId)?.state, 'succeeded');
      // A stale report for the old job id changes nothing.
      fleet.report(w1[2]!.deviceId, w1[2]!.jobId!, 'succeeded');
      succeedAll(fleet, redone);
      await waitFor('wave 2 out', async () => (await detail(h, id)).campaign.currentWave === 2);
    });

    it('OTA halt kill switch: every running campaign in one call, audited; 404/400/409 cases', async (t) => {
      const s = await setup(t, driver);
      if (!s) return;
      const { h, fleet } = s;
      const a = await create(h, {
        selector: { ids: ['dev-00', 'dev-01', 'dev-02', 'dev-03'] },
        waves: [{ percent: 100 }],
      });
      const b = await create(h, { selector: { ids: ['dev-10', 'dev-11'] }, waves: [{ percent: 100 }] });
      const idle = await create(h, { selector: { ids: ['dev-15'] } });
      await h.call('POST', `/api/v1/campaigns/${a}/start`);
      await h.call('POST', `/api/v1/campaigns/${b}/start`);
      const clash = await h.call('POST', `/api/v1/campaigns/${idle}/start`, { body: {} });
      assert.equal(clash.statusCode, 200, 'no overlap with the others');
      await notifiedWave(h, a, 1);
      const wb = await notifiedWave(h, b, 1);
      fleet.report(wb[0]!.deviceId, wb[0]!.jobId!, 'downloading');
      await waitFor('downloading', async () => (await detail(h, b)).states.downloading === 1);

      const missingReason = await h.call('POST', '/api/v1/killswitch/ota-halt', { body: {} });
      assert.equal(missingReason.statusCode, 400);
      assert.equal(errorOf(missingReason).field, 'reason');
      const unknown = await h.call('POST', '/api/v1/killswitch/ota-halt', {
        body: { campaignId: 'cmp_x', reason: 'r' },
      });
      assert.equal(unknown.statusCode, 404);

      const res = await h.call('POST', '/api/v1/killswitch/ota-halt', { body: { reason: 'bricking units' } });
      assert.equal(res.statusCode, 200, res.body);
      const body = res.json() as {
        action: string;
        campaigns: Array<{ campaignId: string; state: string }>;
        cancelledNotifications: number;
        toldToStop: number;
        devicesReached: number;
      };
      assert.equal(body.action, 'ota-halt');
      assert.deepEqual(body.campaigns.map((c) => c.campaignId).sort(), [a, b, idle].sort());
      assert.equal(body.toldToStop, 1);
      assert.equal(body.cancelledNotifications, 4 + 1 + 1);
      assert.equal(body.devicesReached, 7);
      for (const id of [a, b, idle]) assert.equal((await detail(h, id)).campaign.state, 'halted');
      const audit = (await h.call('GET', '/api/v1/audit?action=killswitch.ota-halt')).json() as {
        items: Array<{ reason: string; details: { devicesReached: number } }>;
      };
      assert.equal(audit.items[0]?.reason, 'bricking units');
      assert.equal(audit.items[0]?.details.devicesReached, 7);
      // Nothing running: a second call reaches nobody; a named halted campaign is a 409.
      const second = (
        await h.call('POST', '/api/v1/killswitch/ota-halt', { body: { reason: 'again' } })
      ).json() as {
        campaigns: unknown[];
      };
      assert.deepEqual(second.campaigns, []);
      const named = await h.call('POST', '/api/v1/killswitch/ota-halt', {
        body: { campaignId: a, reason: 'again' },
      });
      assert.equal(named.statusCode, 409);
    });

    it('rollback: a campaign back to the previous version for the devices that updated', async (t) => {
      const s = await setup(t, driver, 10);
      if (!s) return;
      const { h, fleet } = s;
      const id = await create(h, { waves: [{ percent: 100 }], gate: { maxFailureRatio: 1 } });
      await h.call('POST', `/api/v1/campaigns/${id}/start`);
      const w1 = await notifiedWave(h, id, 1);
      const updated = w1.slice(0, 6);
      succeedAll(fleet, updated);
      for (const j of w1.slice(6))
        fleet.report(j.deviceId, j.jobId!, 'failed', { error: { code: 'X', message: 'x' } });
      await waitState(h, id, 'completed');
      assert.equal((await h.call('POST', `/api/v1/campaigns/${id}/resume`)).statusCode, 409);
      const noArtifact = await h.call('POST', `/api/v1/campaigns/${id}/rollback`, { body: { reason: 'r' } });
      assert.equal(noArtifact.statusCode, 400);
      assert.equal(errorOf(noArtifact).field, 'artifacts');
      const res = await h.call('POST', `/api/v1/campaigns/${id}/rollback`, {
        body: {
          reason: 'regression',
          artifacts: [{ url: 'https://fw.example/1.0.0.bin', version: '1.0.0', sha256: 'cd'.repeat(32) }],
        },
      });
      assert.equal(res.statusCode, 201, res.body);
      const { campaigns } = res.json() as {
        campaigns: Array<{ id: string; rollbackOf: string; state: string }>;
      };
      assert.equal(campaigns.length, 1);
      assert.deepEqual((res.json() as { warnings: string[] }).warnings, []);
      assert.equal(campaigns[0]!.rollbackOf, id);
      assert.equal(campaigns[0]!.state, 'running');
      assert.equal((await detail(h, id)).campaign.state, 'rolled-back');
      const rb = await notifiedWave(h, campaigns[0]!.id, 1);
      assert.deepEqual(rb.map((j) => j.deviceId).sort(), updated.map((j) => j.deviceId).sort());
      for (const j of rb) {
        const last = fleet.jobsFor(j.deviceId).at(-1)!;
        assert.equal(last.version, '1.0.0');
        assert.equal(j.previousVersion, '2.0.0', 'the registry followed the update');
      }
      assert.equal((await h.call('POST', `/api/v1/campaigns/${id}/rollback`)).statusCode, 409);
    });

    it('a restarted control plane re-sends the notified jobs (same job ids) and carries on', async (t) => {
      const s = await setup(t, driver, 6);
      if (!s) return;
      const { h, fleet } = s;
      const id = await create(h, { waves: [{ percent: 100 }] });
      await h.call('POST', `/api/v1/campaigns/${id}/start`);
      const w1 = await notifiedWave(h, id, 1);
      await h.cp.close();
      const mark = fleet.published.length;
      const cp2 = await createControlPlane({ storage: h.storage, dataDir: h.dataDir, clock: h.clock, fleet });
      t.after(() => cp2.close());
      await cp2.start();
      const resent = await waitFor('jobs re-sent', async () => {
        const again = fleet.published.slice(mark).filter((p) => p.payload !== '');
        return again.length >= 6 ? again : undefined;
      });
      assert.deepEqual(
        resent.map((p) => (JSON.parse(p.payload) as { jobId: string }).jobId).sort(),
        w1.map((j) => j.jobId).sort(),
      );
      assert.ok(resent.every((p) => p.retain && p.qos === 1));
      succeedAll(fleet, w1);
      await waitState(h, id, 'completed');
    });

    it('ignores reports published by another client; no broker → start is 409', async (t) => {
      const s = await setup(t, driver, 4);
      if (!s) return;
      const { h, fleet } = s;
      const id = await create(h, { waves: [{ percent: 100 }] });
      await h.call('POST', `/api/v1/campaigns/${id}/start`);
      const w1 = await notifiedWave(h, id, 1);
      const target = w1[0]!;
      fleet.deviceSays(
        `$fleet/${target.deviceId}/ota/status`,
        { jobId: target.jobId, status: 'failed', error: { code: 'X', message: 'spoof' } },
        'dev-03-impostor',
      );
      fleet.report(w1[1]!.deviceId, w1[1]!.jobId!, 'downloading');
      await waitFor('real report applied', async () => (await detail(h, id)).states.downloading === 1);
      assert.equal((await jobs(h, id)).find((j) => j.deviceId === target.deviceId)?.state, 'notified');

      const bare = await startControlPlane(t, driver);
      const c = await bare.call('POST', '/api/v1/campaigns', {
        body: campaignBody({ selector: { all: true } }),
      });
      assert.equal(c.statusCode, 201);
      const cid = (c.json() as { campaign: { id: string } }).campaign.id;
      const refused = await bare.call('POST', `/api/v1/campaigns/${cid}/start`);
      assert.equal(refused.statusCode, 409);
      assert.match(errorOf(refused).message, /no broker attached/);

      const nobody = await create(h, { selector: { tags: ['nowhere'] } });
      const empty = await h.call('POST', `/api/v1/campaigns/${nobody}/start`);
      assert.equal(empty.statusCode, 409);
      assert.match(errorOf(empty).message, /matches no registered device/);
      assert.equal((await detail(h, nobody)).campaign.state, 'draft', 'nothing half-applied');
    });
  });
}
