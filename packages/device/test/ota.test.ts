/**
 * OTA jobs end to end on the device side: a real local HTTP server serves the artifact, the job
 * arrives as a message on `$fleet/{id}/ota`, statuses go to `$fleet/{id}/ota/status`.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { existsSync, readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, describe, test } from 'node:test';
import { createDevice, type OtaHandler, type OtaJob, type OtaStatusReport } from '../src/index.js';
import { type FakeClient, fakeFactory, flush, until } from './helpers/fake-mqtt.js';
import { ManualScheduler } from './helpers/manual-scheduler.js';

const artifact = Buffer.alloc(256 * 1024, 7);
const sha = createHash('sha256').update(artifact).digest('hex');

async function artifactServer() {
  let stall: (() => void) | null = null;
  const server = http.createServer((req, res) => {
    if (req.url === '/fw.bin') {
      res.writeHead(200, { 'content-length': artifact.length });
      res.end(artifact);
    } else if (req.url === '/chunked.bin') {
      res.writeHead(200); // no content-length: only the running count can enforce the limit
      res.end(artifact);
    } else if (req.url === '/slow.bin') {
      res.writeHead(200, { 'content-length': artifact.length });
      res.write(artifact.subarray(0, 1024));
      stall = () => res.destroy();
    } else {
      res.writeHead(404).end();
    }
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  after(async () => {
    stall?.();
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  });
  return base;
}

async function otaDevice(handler: OtaHandler, firmware = '1.0.0') {
  const fake = fakeFactory();
  const device = createDevice({
    servers: 'mqtt://broker.example',
    deviceId: 'dev-ota',
    credentials: { token: 't' },
    firmware,
    scheduler: new ManualScheduler(),
    clientFactory: fake.factory,
  });
  const statuses: OtaStatusReport[] = [];
  device.on('ota', (s) => statuses.push(s));
  device.onOta(handler);
  device.start();
  await flush();
  fake.last().accept();
  after(() => device.stop());
  return { device, fake, statuses, client: fake.last() as FakeClient };
}

function job(base: string, over: Partial<OtaJob> = {}): string {
  return JSON.stringify({
    jobId: 'job-1',
    campaignId: 'camp-1',
    version: '2.0.0',
    url: `${base}/fw.bin`,
    sha256: sha,
    size: artifact.length,
    ...over,
  });
}

const statusList = (s: OtaStatusReport[]) =>
  s.map((x) => (x.progress === undefined ? x.status : `${x.status}@${x.progress}`));

describe('OTA', () => {
  test('download, sha256 check, apply, progress and status reports, firmware updated', async () => {
    const base = await artifactServer();
    const seen: { path: string; bytes: Buffer }[] = [];
    const { device, client, statuses } = await otaDevice({
      apply: async (_job, a) => {
        seen.push({ path: a.path, bytes: readFileSync(a.path) });
      },
    });
    assert.ok(client.subscriptions.includes('$fleet/dev-ota/ota'));
    client.message('$fleet/dev-ota/ota', job(base));
    await flush();
    await device.otaIdle();
    assert.equal(seen.length, 1, 'apply was called once');
    assert.ok(seen[0]!.bytes.equals(artifact));
    assert.ok(!existsSync(seen[0]!.path), 'the artifact file is removed after apply');
    const list = statusList(statuses);
    assert.equal(list[0], 'queued');
    assert.equal(list[1], 'downloading@0');
    assert.equal(list.at(-2), 'installing');
    assert.equal(list.at(-1), 'succeeded');
    const progress = statuses.filter((s) => s.status === 'downloading').map((s) => s.progress!);
    assert.ok(progress.length >= 3, `progress reports: ${progress}`);
    assert.deepEqual(
      progress,
      [...progress].sort((a, b) => a - b),
    );
    assert.equal(progress.at(-1), 100);
    assert.equal(device.firmware, '2.0.0');
    const published = client.published.filter((p) => p.topic === '$fleet/dev-ota/ota/status');
    assert.equal(published.length, statuses.length);
    assert.deepEqual(JSON.parse(published.at(-1)!.payload).status, 'succeeded');
    assert.equal(JSON.parse(published[0]!.payload).campaignId, 'camp-1');
    // Redelivery of the same (retained) job does nothing.
    client.message('$fleet/dev-ota/ota', job(base));
    await flush();
    await device.otaIdle();
    assert.equal(statuses.length, list.length);
  });

  test('sha256 mismatch: failed, apply never called, no rollback', async () => {
    const base = await artifactServer();
    let applied = false;
    let rolledBack = false;
    const { device, client, statuses } = await otaDevice({
      apply: () => {
        applied = true;
      },
      rollback: () => {
        rolledBack = true;
      },
    });
    client.message('$fleet/dev-ota/ota', job(base, { sha256: 'a'.repeat(64) }));
    await flush();
    await device.otaIdle();
    assert.equal(applied, false);
    assert.equal(rolledBack, false);
    assert.equal(statuses.at(-1)!.status, 'failed');
    assert.equal(statuses.at(-1)!.error?.code, 'BW_ERR_DEVICE_OTA_CHECKSUM');
    assert.equal(device.firmware, '1.0.0');
  });

  test('apply fails: failed, then the rollback callback, then rolled-back', async () => {
    const base = await artifactServer();
    const calls: string[] = [];
    const { device, client, statuses } = await otaDevice({
      apply: () => {
        calls.push('apply');
        throw new Error('flash write error');
      },
      rollback: (_job, err) => {
        calls.push(`rollback:${err.code}`);
      },
    });
    client.message('$fleet/dev-ota/ota', job(base));
    await flush();
    await device.otaIdle();
    assert.deepEqual(calls, ['apply', 'rollback:BW_ERR_DEVICE_OTA_APPLY']);
    assert.deepEqual(statusList(statuses).slice(-3), ['installing', 'failed', 'rolled-back']);
    assert.match(statuses.at(-2)!.error!.message, /flash write error/);
    assert.equal(device.firmware, '1.0.0');
  });

  test('size limit: a stream longer than maxBytes is cut off even without content-length', async () => {
    const base = await artifactServer();
    const { device, client, statuses } = await otaDevice({ apply: () => {}, maxBytes: 64 * 1024 });
    client.message('$fleet/dev-ota/ota', job(base, { url: `${base}/chunked.bin`, size: undefined }));
    await flush();
    await device.otaIdle();
    assert.equal(statuses.at(-1)!.status, 'failed');
    assert.equal(statuses.at(-1)!.error?.code, 'BW_ERR_DEVICE_OTA_TOO_LARGE');
  });

  test('a cancel (halt) message stops the download in progress', async () => {
    const base = await artifactServer();
    const { device, client, statuses } = await otaDevice({ apply: () => {} });
    client.message('$fleet/dev-ota/ota', job(base, { url: `${base}/slow.bin` }));
    await until(() => statuses.some((s) => s.status === 'downloading'), 'download start');
    client.message('$fleet/dev-ota/ota', JSON.stringify({ halt: true, jobId: 'job-1' }));
    await device.otaIdle();
    assert.equal(statuses.at(-1)!.status, 'failed');
    assert.equal(statuses.at(-1)!.error?.code, 'BW_ERR_DEVICE_OTA_CANCELLED');
  });

  test('a job for the version already running succeeds without downloading', async () => {
    const { device, client, statuses } = await otaDevice(
      { apply: () => assert.fail('must not apply') },
      '2.0.0',
    );
    client.message('$fleet/dev-ota/ota', job('http://127.0.0.1:9', {}));
    await flush();
    await device.otaIdle();
    assert.deepEqual(statusList(statuses), ['queued', 'succeeded']);
  });

  test('an invalid job is reported as an error, not run', async () => {
    const { device, client, statuses } = await otaDevice({ apply: () => {} });
    const errors: Array<{ code?: string }> = [];
    device.on('error', (e) => errors.push(e as { code?: string }));
    client.message(
      '$fleet/dev-ota/ota',
      JSON.stringify({ jobId: 'x', version: '2', url: 'file:///etc/passwd', sha256: sha }),
    );
    await flush();
    assert.equal(statuses.length, 0);
    assert.equal(errors[0]?.code, 'BW_ERR_DEVICE_OTA_JOB_INVALID');
  });
});
