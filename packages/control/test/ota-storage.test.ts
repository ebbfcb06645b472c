/** Storage contract of the OTA campaign repository, against both drivers. */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { ApiError, DuplicateKeyError } from '../src/errors.js';
import type { CampaignRecord, DeviceJobRecord } from '../src/ota/types.js';
import type { ControlStorage } from '../src/storage/types.js';
import { type Driver, postgresDriver, sqliteDriver } from './harness.js';

function campaign(id: string, extra: Partial<CampaignRecord> = {}): CampaignRecord {
  return {
    id,
    name: `campaign ${id}`,
    state: 'draft',
    artifact: { url: 'https://fw.example/2.0.bin', version: '2.0.0', sha256: 'a'.repeat(64), size: 1234 },
    selector: { tags: ['eu'] },
    waves: [
      { percent: 10, minDevices: 1, soakMs: 1000, gate: {} },
      { percent: 100, minDevices: 0, soakMs: 0, gate: { maxFailureRatio: 0.2 } },
    ],
    gate: { maxFailureRatio: 0.05, maxOfflineRatio: 0.1, reportTimeoutMs: 60_000 },
    currentWave: null,
    waveStartedAt: null,
    waveSettledAt: null,
    gateOverrideWave: null,
    targetCount: 0,
    haltReason: null,
    haltedBy: null,
    haltedAt: null,
    rollbackOf: null,
    createdAt: 1000,
    createdBy: 'k1',
    startedAt: null,
    completedAt: null,
    updatedAt: 1000,
    ...extra,
  };
}

function job(
  campaignId: string,
  deviceId: string,
  wave: number,
  rank: string,
  extra: Partial<DeviceJobRecord> = {},
): DeviceJobRecord {
  return {
    campaignId,
    deviceId,
    wave,
    rank,
    state: 'pending',
    jobId: null,
    attempt: 0,
    previousVersion: '1.0.0',
    notifiedAt: null,
    lastReportAt: null,
    progress: null,
    errorCode: null,
    errorMessage: null,
    updatedAt: 1000,
    ...extra,
  };
}

for (const driver of [sqliteDriver, postgresDriver] as Driver[]) {
  describe(`ota campaign storage (${driver.name})`, () => {
    async function withStorage(t: TestContext, fn: (s: ControlStorage) => Promise<void>): Promise<void> {
      if (!(await driver.available(t))) return;
      const dir = await mkdtemp(join(tmpdir(), 'bw-ota-storage-'));
      const { storage, drop } = await driver.open(dir);
      try {
        await fn(storage);
      } finally {
        await storage.close();
        await drop();
        await rm(dir, { recursive: true, force: true });
      }
    }

    it('campaigns round-trip (JSON fields included), refuse duplicate ids, list newest first with a cursor', (t) =>
      withStorage(t, async (s) => {
        await s.campaigns.insert(campaign('c1', { createdAt: 1000 }));
        await s.campaigns.insert(campaign('c2', { createdAt: 2000 }));
        await s.campaigns.insert(campaign('c3', { createdAt: 3000, state: 'running' }));
        assert.deepEqual(await s.campaigns.get('c1'), campaign('c1', { createdAt: 1000 }));
        assert.equal(await s.campaigns.get('nope'), null);
        await assert.rejects(s.campaigns.insert(campaign('c1')), DuplicateKeyError);
        const first = await s.campaigns.list({}, 2, null);
        assert.deepEqual(
          first.items.map((c) => c.id),
          ['c3', 'c2'],
        );
        assert.ok(first.nextCursor);
        const second = await s.campaigns.list({}, 2, first.nextCursor);
        assert.deepEqual(
          second.items.map((c) => c.id),
          ['c1'],
        );
        assert.equal(second.nextCursor, null);
        assert.deepEqual(
          (await s.campaigns.list({ state: 'running' }, 10, null)).items.map((c) => c.id),
          ['c3'],
        );
        assert.deepEqual(await s.campaigns.idsInState('running'), ['c3']);
        await assert.rejects(s.campaigns.list({}, 2, 'garbage'), ApiError);
      }));

    it('transition is a compare-and-set on the state', (t) =>
      withStorage(t, async (s) => {
        await s.campaigns.insert(campaign('c1'));
        assert.equal(await s.campaigns.transition('c1', ['running'], { state: 'halted' }, 5000), false);
        assert.equal(
          await s.campaigns.transition(
            'c1',
            ['draft'],
            { state: 'running', currentWave: 0, startedAt: 5000 },
            5000,
          ),
          true,
        );
        const c = await s.campaigns.get('c1');
        assert.equal(c?.state, 'running');
        assert.equal(c?.currentWave, 0);
        assert.equal(c?.startedAt, 5000);
        assert.equal(c?.updatedAt, 5000);
        assert.equal(await s.campaigns.update('c1', { haltReason: 'x' }, 6000), true);
        assert.equal((await s.campaigns.get('c1'))?.haltReason, 'x');
        assert.equal(await s.campaigns.update('nope', { haltReason: 'x' }, 6000), false);
      }));

    it('jobs: ordered by wave then rank, filtered, paged, found by device + job id, counted', (t) =>
      withStorage(t, async (s) => {
        await s.campaigns.insert(campaign('c1'));
        const jobs = Array.from({ length: 700 }, (_, i) =>
          job(
            'c1',
            `d${String(i).padStart(3, '0')}`,
            i < 70 ? 0 : 1,
            (1000 - i).toString(16).padStart(16, '0'),
          ),
        );
        await s.campaigns.insertJobs(jobs); // more than one insert chunk
        const all = await s.campaigns.allJobs('c1', {});
        assert.equal(all.length, 700);
        assert.equal(all[0]?.wave, 0);
        assert.equal(all[0]?.deviceId, 'd069', 'lowest rank of wave 0 first');
        assert.equal(all.at(-1)?.deviceId, 'd070');
        let cursor: string | null = null;
        const seen: string[] = [];
        do {
          const page = await s.campaigns.jobs('c1', { wave: 1 }, 100, cursor);
          seen.push(...page.items.map((j) => j.deviceId));
          cursor = page.nextCursor;
        } while (cursor !== null);
        assert.equal(seen.length, 630);
        assert.equal(new Set(seen).size, 630);
        await s.campaigns.updateJob(
          'c1',
          'd001',
          { state: 'notified', jobId: 'c1.1', attempt: 1, notifiedAt: 2000 },
          2000,
        );
        await s.campaigns.updateJob(
          'c1',
          'd002',
          { state: 'downloading', jobId: 'c1.1', attempt: 1, notifiedAt: 1500, lastReportAt: 2500 },
          2500,
        );
        await s.campaigns.updateJob(
          'c1',
          'd003',
          { state: 'failed', jobId: 'c1.1', errorCode: 'E', errorMessage: 'm' },
          2500,
        );
        const found = await s.campaigns.findJob('d001', 'c1.1');
        assert.equal(found?.state, 'notified');
        assert.equal(found?.attempt, 1);
        assert.equal(found?.previousVersion, '1.0.0');
        assert.equal(await s.campaigns.findJob('d001', 'c1.2'), null);
        assert.equal((await s.campaigns.allJobs('c1', { states: ['failed'] }))[0]?.errorMessage, 'm');
        assert.equal((await s.campaigns.allJobs('c1', { maxWave: 0 })).length, 70);
        assert.equal((await s.campaigns.allJobs('c1', { states: [] })).length, 0);
        const counts = await s.campaigns.counts('c1');
        assert.deepEqual(
          counts.filter((r) => r.wave === 0),
          [
            { wave: 0, state: 'downloading', count: 1 },
            { wave: 0, state: 'failed', count: 1 },
            { wave: 0, state: 'notified', count: 1 },
            { wave: 0, state: 'pending', count: 67 },
          ],
        );
        // Oldest activity: max(notified, last report) per active job, then the minimum.
        assert.equal(await s.campaigns.oldestActivity('c1', 0), 2000);
      }));

    it('busyDevices: every job of a running campaign, only active jobs of a halted one', (t) =>
      withStorage(t, async (s) => {
        await s.campaigns.insert(campaign('run', { state: 'running' }));
        await s.campaigns.insert(campaign('halt', { state: 'halted' }));
        await s.campaigns.insert(campaign('done', { state: 'completed' }));
        await s.campaigns.insert(campaign('me', { state: 'draft' }));
        await s.campaigns.insertJobs([
          job('run', 'a', 0, '01'),
          job('halt', 'b', 0, '01', { state: 'downloading' }),
          job('halt', 'c', 0, '02', { state: 'pending' }),
          job('done', 'd', 0, '01', { state: 'succeeded' }),
          job('me', 'e', 0, '01'),
        ]);
        assert.deepEqual((await s.campaigns.busyDevices('me')).sort(), ['a', 'b']);
        assert.deepEqual((await s.campaigns.busyDevices('run')).sort(), ['b']);
      }));
  });
}
