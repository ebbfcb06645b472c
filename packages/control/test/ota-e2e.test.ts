/**
 * OTA campaigns end to end: a real broker on port 0 (testkit), the control plane with SQLite
 * storage and the real clock, and 50 simulated devices (one MQTT.js client each) that subscribe
 * to `$fleet/{id}/ota`, answer jobs with statuses on `$fleet/{id}/ota/status` like the device SDK
 * does, and honour `{"halt": true, "jobId"}`.
 *
 * 1. A 3-wave campaign whose wave 2 fails its gate (some devices report `failed`): it halts by
 *    itself and no wave-3 device is ever notified — checked at the broker (every publish the
 *    control plane made), in the retained store, and at the devices.
 * 2. A second campaign halted by the kill switch while its first wave is downloading: nothing is
 *    published as a job after the call returns, the working devices are told to stop and confirm.
 *
 * 3. Wire compatibility with the real device SDK (packages/device): two SDK devices download a
 *    real artifact over HTTP and install it; a halt aborts an install in progress and the SDK's
 *    cancel report lands as `cancelled`.
 *
 * No timing assertions: every wait is for a condition, with a generous deadline.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { createDevice, type Device, type OtaStatusReport } from '@breakwater/device';
import { startBroker, type TestBroker } from '@breakwater/testkit';
import Fastify, { type FastifyInstance } from 'fastify';
import mqtt, { type MqttClient } from 'mqtt';
import { brokerFleet, type FleetBroker } from '../src/fleet-broker.js';
import { type ControlPlane, createControlPlane } from '../src/http/app.js';
import { assignWaves } from '../src/ota/assignment.js';
import { SqliteControlStorage } from '../src/storage/sqlite.js';

const DEVICES = 50;
const DEADLINE_MS = 30_000;
const SHA = 'ef'.repeat(32);

async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined | false> | T | undefined | false,
): Promise<T> {
  const deadline = Date.now() + DEADLINE_MS;
  for (;;) {
    const v = await check();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

type Behaviour = 'succeed' | 'fail' | 'hang';

interface Received {
  topic: string;
  payload: string;
  at: number;
}

/** One simulated device: MQTT.js client + a tiny OTA runner speaking the SDK's wire format. */
class SimDevice {
  readonly received: Received[] = [];
  readonly jobs: Array<{ jobId: string; campaignId: string }> = [];
  readonly #cancelled = new Set<string>();
  client!: MqttClient;

  constructor(
    readonly id: string,
    readonly behaviour: (campaignId: string) => Behaviour,
  ) {}

  async connect(url: string): Promise<void> {
    this.client = mqtt.connect(url, {
      clientId: this.id,
      protocolVersion: 5,
      clean: true,
      reconnectPeriod: 0,
    });
    await new Promise<void>((resolve, reject) => {
      this.client.once('connect', () => resolve());
      this.client.once('error', reject);
    });
    this.client.on('message', (topic, payload) => this.#onMessage(topic, payload));
    await this.client.subscribeAsync(`$fleet/${this.id}/ota`, { qos: 1 });
  }

  #status(
    job: { jobId: string; campaignId: string },
    status: string,
    extra: Record<string, unknown> = {},
  ): void {
    this.client.publish(
      `$fleet/${this.id}/ota/status`,
      JSON.stringify({
        jobId: job.jobId,
        campaignId: job.campaignId,
        version: '2.0.0',
        status,
        at: new Date().toISOString(),
        ...extra,
      }),
      { qos: 1 },
    );
  }

  #onMessage(topic: string, payload: Buffer): void {
    this.received.push({ topic, payload: payload.toString(), at: Date.now() });
    if (payload.length === 0) return; // retained job cleared
    const msg = JSON.parse(payload.toString()) as {
      jobId: string;
      campaignId: string;
      halt?: boolean;
      cancel?: boolean;
    };
    if (msg.halt === true || msg.cancel === true) {
      if (this.#cancelled.has(msg.jobId)) return;
      this.#cancelled.add(msg.jobId);
      if (this.jobs.some((j) => j.jobId === msg.jobId)) {
        this.#status(msg, 'failed', { error: { code: 'BW_ERR_DEVICE_OTA_CANCELLED', message: 'cancelled' } });
      }
      return;
    }
    if (this.jobs.some((j) => j.jobId === msg.jobId)) return; // redelivery
    this.jobs.push(msg);
    void this.#run(msg);
  }

  async #run(job: { jobId: string; campaignId: string }): Promise<void> {
    const behaviour = this.behaviour(job.campaignId);
    const step = async (status: string, extra: Record<string, unknown> = {}): Promise<boolean> => {
      await sleep(5);
      if (this.#cancelled.has(job.jobId)) return false;
      this.#status(job, status, extra);
      return true;
    };
    if (!(await step('queued'))) return;
    if (!(await step('downloading', { progress: 0 }))) return;
    if (behaviour === 'hang') return; // until a cancel arrives
    if (behaviour === 'fail') {
      await step('failed', { error: { code: 'BW_ERR_DEVICE_OTA_APPLY', message: 'simulated bad flash' } });
      return;
    }
    if (!(await step('installing'))) return;
    await step('succeeded');
  }

  /** Job messages (not clears, not cancels) this device received for a campaign. */
  jobMessages(campaignId: string): Received[] {
    return this.received.filter((r) => {
      if (r.payload === '') return false;
      const m = JSON.parse(r.payload) as { campaignId?: string; halt?: boolean; cancel?: boolean };
      return m.halt !== true && m.cancel !== true && m.campaignId === campaignId;
    });
  }
}

interface Detail {
  campaign: {
    id: string;
    state: string;
    currentWave: number | null;
    haltReason: string | null;
    haltedBy: string | null;
  };
  waves: Array<{ wave: number; devices: number; states: Record<string, number> }>;
  states: Record<string, number>;
}

describe('OTA campaigns end to end (broker + control plane + 50 MQTT.js devices)', () => {
  let tb: TestBroker;
  let cp: ControlPlane;
  let app: FastifyInstance;
  let storage: SqliteControlStorage;
  let dataDir: string;
  let adminKey: string;
  const devices: SimDevice[] = [];
  const ids = Array.from({ length: DEVICES }, (_, i) => `sim-${String(i).padStart(2, '0')}`);
  /** Every publish the control plane made through the broker, in order. */
  const published: Array<{ topic: string; payload: string; retain: boolean }> = [];
  /** campaign id → device id → behaviour */
  const behaviours = new Map<string, Map<string, Behaviour>>();

  async function call(
    method: 'GET' | 'POST',
    url: string,
    body?: unknown,
  ): Promise<{ status: number; json: unknown }> {
    const res = await app.inject({
      method,
      url: `/api/v1${url}`,
      headers: { authorization: `Bearer ${adminKey}` },
      ...(body === undefined ? {} : { payload: body as object }),
    });
    return { status: res.statusCode, json: res.json() };
  }

  async function detail(id: string): Promise<Detail> {
    const res = await call('GET', `/campaigns/${id}`);
    assert.equal(res.status, 200);
    return res.json as Detail;
  }

  before(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'bw-ota-e2e-'));
    tb = await startBroker();
    const base = brokerFleet(tb.broker);
    const fleet: FleetBroker = {
      ...base,
      publish: (m) => {
        published.push({
          topic: m.topic,
          payload: typeof m.payload === 'string' ? m.payload : m.payload.toString(),
          retain: m.retain === true,
        });
        return base.publish(m);
      },
    };
    storage = SqliteControlStorage.open({ file: join(dataDir, 'control.db') });
    cp = await createControlPlane({ storage, dataDir, fleet });
    adminKey = cp.initialAdminKey!;
    app = Fastify();
    await app.register(cp.plugin);
    await app.ready();
    await cp.start();
    const imported = await call(
      'POST',
      '/devices/import',
      ids.map((id) => ({ id, tags: ['sim'], firmwareVersion: '1.0.0' })),
    );
    assert.equal(imported.status, 201);
    for (const id of ids) {
      devices.push(new SimDevice(id, (campaignId) => behaviours.get(campaignId)?.get(id) ?? 'succeed'));
    }
    await Promise.all(devices.map((d) => d.connect(tb.url)));
    await waitFor('50 devices online', async () => {
      const list = await call('GET', '/devices?connectionState=online&limit=100');
      return (list.json as { items: unknown[] }).items.length === DEVICES;
    });
  });

  after(async () => {
    await Promise.all(devices.map((d) => d.client?.endAsync(true)));
    await cp?.close();
    await app?.close();
    await tb?.close();
    await storage?.close();
    await rm(dataDir, { recursive: true, force: true });
  });

  it('wave 2 fails its gate: the campaign halts by itself and no wave-3 device is ever notified', async () => {
    const waves = [
      { percent: 10, soakMs: 200 },
      { percent: 40, soakMs: 200 },
      { percent: 100, soakMs: 0 },
    ];
    const created = await call('POST', '/campaigns', {
      name: 'fw 2.0 (bad in wave 2)',
      artifact: { url: 'https://fw.example/2.0.0.bin', version: '2.0.0', sha256: SHA },
      selector: { tags: ['sim'] },
      waves,
      gate: { maxFailureRatio: 0.1, maxOfflineRatio: 0.1, reportTimeoutMs: 60_000 },
      reason: 'e2e',
    });
    assert.equal(created.status, 201);
    const id = (created.json as { campaign: { id: string } }).campaign.id;
    // The assignment is a pure function of the campaign id: the test knows the waves up front.
    const assignment = assignWaves(
      id,
      ids,
      waves.map((w) => ({ percent: w.percent, minDevices: 0 })),
    );
    const waveOf = new Map(assignment.map((a) => [a.deviceId, a.wave + 1]));
    const inWave = (n: number) => ids.filter((d) => waveOf.get(d) === n);
    assert.deepEqual(
      [1, 2, 3].map((n) => inWave(n).length),
      [5, 15, 30],
    );
    // 4 of the 15 wave-2 devices fail the install (27 % > 10 %).
    behaviours.set(
      id,
      new Map(
        inWave(2)
          .slice(0, 4)
          .map((d) => [d, 'fail']),
      ),
    );

    const started = await call('POST', `/campaigns/${id}/start`, { reason: 'e2e' });
    assert.equal(started.status, 200);
    const jobs = (await call('GET', `/campaigns/${id}/devices?limit=100`)).json as {
      items: Array<{ deviceId: string; wave: number }>;
    };
    for (const j of jobs.items)
      assert.equal(j.wave, waveOf.get(j.deviceId), `engine and test agree on ${j.deviceId}`);

    const halted = await waitFor('automatic halt', async () => {
      const d = await detail(id);
      return d.campaign.state === 'halted' ? d : undefined;
    });
    assert.equal(halted.campaign.haltedBy, 'system');
    assert.equal(halted.campaign.currentWave, 2);
    assert.match(halted.campaign.haltReason!, /^wave 2: failure ratio/);
    assert.equal(halted.waves[0]!.states.succeeded, 5, 'wave 1 passed');
    assert.deepEqual(halted.waves[2]!.states, { pending: 30 });

    // Let everything in flight land: each wave-2 device's job has either finished or its
    // cancellation was confirmed.
    await waitFor('wave 2 quiet', async () => {
      const d = await detail(id);
      const s = d.waves[1]!.states;
      return (s.notified ?? 0) + (s.queued ?? 0) + (s.downloading ?? 0) + (s.installing ?? 0) === 0;
    });
    const wave3 = new Set(inWave(3));
    const toWave3 = published.filter((p) => wave3.has(p.topic.split('/')[1]!));
    assert.deepEqual(toWave3, [], 'the control plane never published anything to a wave-3 device');
    for (const d of devices.filter((x) => wave3.has(x.id))) {
      assert.deepEqual(d.jobMessages(id), [], `${d.id} (wave 3) received no job`);
    }
    for (const d of wave3) {
      assert.equal(
        tb.broker.retained.get(`$fleet/${d}/ota`),
        undefined,
        'no retained job waits for a wave-3 device',
      );
    }
    // Every wave-1 and wave-2 device was notified exactly once.
    for (const d of devices.filter((x) => !wave3.has(x.id))) assert.equal(d.jobMessages(id).length, 1, d.id);
    const audit = (await call('GET', `/audit?action=campaign.halt&targetId=${id}`)).json as {
      items: Array<{ actor: { id: string } }>;
    };
    assert.equal(audit.items[0]?.actor.id, 'system');
  });

  it('a kill-switch halt mid-wave: no job is published after the call returns, working devices stop', async () => {
    const created = await call('POST', '/campaigns', {
      name: 'fw 2.1 (halted by hand)',
      artifact: { url: 'https://fw.example/2.1.0.bin', version: '2.1.0', sha256: SHA, size: 4096 },
      selector: { tags: ['sim'] },
      waves: [{ percent: 20 }, { percent: 100 }],
      gate: { maxFailureRatio: 0.5, reportTimeoutMs: 60_000 },
    });
    assert.equal(created.status, 201);
    const id = (created.json as { campaign: { id: string } }).campaign.id;
    behaviours.set(id, new Map(ids.map((d) => [d, 'hang'])));
    const started = await call('POST', `/campaigns/${id}/start`, {});
    assert.equal(started.status, 200, JSON.stringify(started.json));
    const firstWave = await waitFor('wave 1 downloading', async () => {
      const d = await detail(id);
      return d.waves[0]!.states.downloading === 10 ? d : undefined;
    });
    assert.equal(firstWave.campaign.currentWave, 1);

    const t0 = performance.now();
    const res = await call('POST', '/killswitch/ota-halt', { campaignId: id, reason: 'e2e: bricking' });
    const mark = published.length;
    const haltMs = performance.now() - t0;
    assert.equal(res.status, 200, JSON.stringify(res.json));
    const body = res.json as {
      action: string;
      toldToStop: number;
      cancelledNotifications: number;
      devicesReached: number;
    };
    assert.equal(body.action, 'ota-halt');
    assert.equal(body.toldToStop, 10);
    assert.equal(body.cancelledNotifications, 0);
    assert.equal(body.devicesReached, 10);

    // The devices confirm the stop (failed / BW_ERR_DEVICE_OTA_CANCELLED → cancelled).
    await waitFor('cancels confirmed', async () => (await detail(id)).waves[0]!.states.cancelled === 10);
    // Printed, not asserted (loaded machines vary): how long the kill switch took.
    console.log(
      `ota-halt: call returned in ${haltMs.toFixed(0)} ms; all 10 devices confirmed the stop after ${(performance.now() - t0).toFixed(0)} ms`,
    );
    const after = published.slice(mark);
    const jobsAfter = after.filter((p) => {
      if (p.payload === '') return false;
      const m = JSON.parse(p.payload) as { halt?: boolean };
      return m.halt !== true;
    });
    assert.deepEqual(jobsAfter, [], 'no job published after the halt returned');
    const jobDevices = devices.filter((d) => d.jobMessages(id).length > 0).map((d) => d.id);
    assert.equal(jobDevices.length, 10, 'only the first wave ever got the job');
    const d = await detail(id);
    assert.equal(d.campaign.state, 'halted');
    assert.deepEqual(d.waves[1]!.states, { pending: 40 });
  });
  it('speaks the device SDK wire format: real download + install, and a halt aborts an install', async () => {
    const artifact = Buffer.alloc(64 * 1024, 7);
    const sha256 = createHash('sha256').update(artifact).digest('hex');
    const server = http.createServer((_req, res) => res.end(artifact));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/fw.bin`;
    const sdkIds = ['sdk-a', 'sdk-b'];
    const imported = await call(
      'POST',
      '/devices/import',
      sdkIds.map((id) => ({ id, tags: ['sdk'], firmwareVersion: '1.0.0' })),
    );
    assert.equal(imported.status, 201);
    /** What apply does: install at once, or hang until the job is cancelled. */
    let applyMode: 'ok' | 'hang' = 'ok';
    const reports: OtaStatusReport[] = [];
    const sdk: Device[] = sdkIds.map((deviceId) => {
      const d = createDevice({
        servers: tb.url,
        deviceId,
        firmware: '1.0.0',
        policy: { name: 'test-quick', nextDelayMs: () => 50 },
      });
      d.on('error', () => {});
      d.on('ota', (r) => reports.push(r));
      d.onOta({
        apply: (_job, _artifact, { signal }) =>
          applyMode === 'ok'
            ? undefined
            : new Promise<void>((_, reject) =>
                signal.addEventListener('abort', () => reject(new Error('aborted'))),
              ),
      });
      return d;
    });
    try {
      await Promise.all(
        sdk.map((d) => {
          const connected = once(d, 'connected');
          d.start();
          return connected;
        }),
      );
      const create = async (version: string) => {
        const res = await call('POST', '/campaigns', {
          name: `sdk ${version}`,
          artifact: { url, version, sha256, size: artifact.length },
          selector: { tags: ['sdk'] },
          waves: [{ percent: 100 }],
          gate: { maxFailureRatio: 0, reportTimeoutMs: 60_000 },
        });
        assert.equal(res.status, 201);
        const id = (res.json as { campaign: { id: string } }).campaign.id;
        assert.equal((await call('POST', `/campaigns/${id}/start`, {})).status, 200);
        return id;
      };

      const ok = await create('2.0.0');
      await waitFor('SDK campaign completed', async () => (await detail(ok)).campaign.state === 'completed');
      assert.equal((await detail(ok)).states.succeeded, 2);
      for (const id of sdkIds) {
        const dev = (await call('GET', `/devices/${id}`)).json as { firmwareVersion: string };
        assert.equal(dev.firmwareVersion, '2.0.0');
      }
      assert.deepEqual(
        [...new Set(reports.filter((r) => r.campaignId === ok).map((r) => r.status))],
        ['queued', 'downloading', 'installing', 'succeeded'],
      );

      applyMode = 'hang';
      const halting = await create('3.0.0');
      await waitFor('SDK devices installing', async () => (await detail(halting)).states.installing === 2);
      const res = await call('POST', '/killswitch/ota-halt', { campaignId: halting, reason: 'e2e sdk' });
      assert.equal(res.status, 200);
      assert.equal((res.json as { toldToStop: number }).toldToStop, 2);
      await waitFor('SDK cancels confirmed', async () => (await detail(halting)).states.cancelled === 2);
      const cancelReports = reports.filter((r) => r.campaignId === halting && r.status === 'failed');
      assert.ok(cancelReports.every((r) => r.error?.code === 'BW_ERR_DEVICE_OTA_CANCELLED'));
    } finally {
      await Promise.all(sdk.map((d) => d.stop()));
      server.close();
    }
  });
});
