/**
 * Config push end to end: a real Breakwater broker on port 0 (testkit), the control plane on a
 * real HTTP socket with SQLite storage, and devices from the device SDK (packages/device).
 *
 * Push through the API → an online device's onConfig runs with it at once, a device that
 * restarts gets it again from the retained message, a device offline at push time gets it on its
 * next connect; devices report what they run → the drift view says in sync.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { createDevice, type DesiredConfig, type Device, type ReconnectPolicy } from '@breakwater/device';
import { startBroker } from '@breakwater/testkit';
import Fastify from 'fastify';
import { brokerFleet } from '../src/fleet-broker.js';
import { createControlPlane } from '../src/http/app.js';
import { SqliteControlStorage } from '../src/storage/sqlite.js';

const quick: ReconnectPolicy = { name: 'test-quick', nextDelayMs: () => 20 };
// Generous: other test files load the machine at the same time.
const DEADLINE_MS = 15_000;

async function waitFor<T>(what: string, probe: () => Promise<T | undefined> | T | undefined): Promise<T> {
  const deadline = Date.now() + DEADLINE_MS;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

interface Applied {
  version: string;
  config: DesiredConfig;
}

const started: Device[] = [];

/** A device that applies its config and reports it back, as the SDK README suggests. */
function startDevice(url: string, deviceId: string): { device: Device; applied: Applied[] } {
  const applied: Applied[] = [];
  const device = createDevice({ servers: url, deviceId, policy: quick });
  device.on('error', () => {});
  device.onConfig(async (config, { version }) => {
    applied.push({ version, config });
    await device.reportConfig(config);
  });
  started.push(device);
  device.start();
  return { device, applied };
}

test('config push: live, after a restart, and for a device that was offline; drift ends in sync', async () => {
  const tb = await startBroker();
  const dataDir = await mkdtemp(join(tmpdir(), 'bw-config-e2e-'));
  const storage = SqliteControlStorage.open({ file: join(dataDir, 'control.db') });
  const cp = await createControlPlane({ storage, dataDir, fleet: brokerFleet(tb.broker) });
  const app = Fastify();
  await app.register(cp.plugin);
  await app.listen({ port: 0, host: '127.0.0.1' });
  await cp.start();
  after(async () => {
    // Devices first, so none is left reconnecting to a closed broker.
    await Promise.all(started.map((d) => d.stop()));
    await cp.close();
    await app.close();
    await tb.close();
    await storage.close();
    await rm(dataDir, { recursive: true, force: true });
  });
  const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}/api/v1`;
  const key = cp.initialAdminKey!;
  async function api<T = Record<string, unknown>>(method: string, path: string, body?: unknown): Promise<T> {
    const res = await fetch(`${base}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${key}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const json = (await res.json()) as T;
    assert.ok(res.ok, `${method} ${path}: ${res.status} ${JSON.stringify(json)}`);
    return json;
  }
  const status = async (id: string) =>
    (await api<{ status: string; reported: { version: string } | null }>('GET', `/devices/${id}/config`))
      .status;

  for (const id of ['sensor-1', 'sensor-2']) await api('POST', '/devices', { id, tags: ['field'] });

  // 1. Online device: the push reaches it live (it is subscribed to its config topic).
  const first = startDevice(tb.url, 'sensor-1');
  await waitFor('sensor-1 connected', () =>
    tb.broker.connectedClientIds().includes('sensor-1') ? true : undefined,
  );
  const v1 = await api<{ version: number; published: number; online: number }>(
    'PUT',
    '/devices/sensor-1/config',
    {
      config: { interval: 10, mode: 'normal' },
      reason: 'e2e',
    },
  );
  assert.equal(v1.published, 1);
  assert.equal(v1.online, 1);
  const live = await waitFor('live config on sensor-1', () => first.applied.at(-1));
  assert.equal(live.version, String(v1.version));
  assert.deepEqual(live.config, { version: v1.version, interval: 10, mode: 'normal' });
  await waitFor('sensor-1 in sync', async () =>
    (await status('sensor-1')) === 'in-sync' ? true : undefined,
  );

  // 2. A restart (new process: nothing applied in memory) gets the config from the retained message.
  await first.device.stop();
  const rebooted = startDevice(tb.url, 'sensor-1');
  const again = await waitFor('retained config after a restart', () => rebooted.applied.at(-1));
  assert.equal(again.version, String(v1.version));
  assert.deepEqual(again.config, live.config);
  await rebooted.device.stop();
  await waitFor('sensor-1 gone', () =>
    tb.broker.connectedClientIds().includes('sensor-1') ? undefined : true,
  );

  // 3. Both offline: push to the selector; each gets it on its next connect.
  const v2 = await api<{ version: number; matchedDevices: number; published: number; online: number }>(
    'POST',
    '/killswitch/config-push',
    { selector: { tags: ['field'] }, config: { interval: 60, mode: 'safe' }, reason: 'e2e: safe mode' },
  );
  assert.deepEqual(
    { matched: v2.matchedDevices, published: v2.published, online: v2.online },
    { matched: 2, published: 2, online: 0 },
  );
  assert.ok(v2.version > v1.version);
  const before = await api<{ summary: Record<string, number> }>('GET', '/config/drift?tag=field');
  assert.deepEqual(before.summary, {
    matched: 2,
    inSync: 0,
    pending: 1,
    neverReported: 1,
    differs: 0,
    noDesired: 0,
  });

  const back = startDevice(tb.url, 'sensor-1');
  const newcomer = startDevice(tb.url, 'sensor-2');
  for (const [id, d] of [
    ['sensor-1', back],
    ['sensor-2', newcomer],
  ] as const) {
    const got = await waitFor(`${id} gets v2 on connect`, () =>
      d.applied.find((a) => a.version === String(v2.version)),
    );
    assert.deepEqual(got.config, { version: v2.version, interval: 60, mode: 'safe' });
  }
  const drift = await waitFor('drift in sync', async () => {
    const d = await api<{
      summary: Record<string, number>;
      items: Array<{ deviceId: string; reportedVersion: string }>;
    }>('GET', '/config/drift?tag=field');
    return d.summary.inSync === 2 ? d : undefined;
  });
  assert.deepEqual(
    drift.items.map((i) => [i.deviceId, i.reportedVersion]),
    [
      ['sensor-1', String(v2.version)],
      ['sensor-2', String(v2.version)],
    ],
  );
  // Presence came through the same broker seam.
  const device = await api<{ connectionState: string }>('GET', '/devices/sensor-2');
  assert.equal(device.connectionState, 'online');
});
