import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { ConnectRequest } from '@breakwater/broker';
import { startBroker, type TestBroker } from '@breakwater/testkit';
import { Fleet, type FleetStats } from '../src/index.js';

const DEADLINE = 60_000;

async function metricSum(
  metric: { get(): Promise<{ values: { value: number; labels: Record<string, unknown> }[] }> },
  labels: Record<string, string> = {},
): Promise<number> {
  const { values } = await metric.get();
  return values
    .filter((v) => Object.entries(labels).every(([k, want]) => String(v.labels[k]) === want))
    .reduce((a, v) => a + v.value, 0);
}

async function until(
  what: string,
  check: () => boolean | Promise<boolean>,
  timeoutMs = DEADLINE,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe('Fleet against a Breakwater broker', () => {
  let broker: TestBroker;
  let fleet: Fleet;
  const N = 200;

  before(async () => {
    broker = await startBroker();
    fleet = new Fleet({
      target: { host: '127.0.0.1', port: broker.port },
      devices: N,
      timeScale: 0.01,
      rampPerSec: 2000,
      sourceAddresses: ['127.0.0.1', '127.0.0.2'],
    });
  });

  after(async () => {
    await fleet.stop();
    await broker.close();
  });

  it('connects every device, and its counts agree with the broker', async () => {
    await fleet.start();
    const s = await fleet.waitFor((x) => x.connected === N, DEADLINE);
    assert.equal(s.devices, N);
    assert.equal(s.connacksOk, N);
    assert.equal(s.attempts, N);
    assert.deepEqual(s.refusals, {});
    assert.equal(fleet.ids().length, N);
    assert.equal(fleet.ids()[0], 'sim-00001');
    await until('broker sees every client', () => broker.broker.connectedClients === N);
    assert.equal(await metricSum(broker.metrics.connectionAttempts), s.attempts);
  });

  it('publishes QoS 1 telemetry that the broker acknowledges and counts', async () => {
    const seen = new Set<string>();
    const untap = broker.broker.tap('devices/+/telemetry', (topic) => seen.add(topic));
    fleet.setTelemetry({ intervalMs: 100, qos: 1 });
    await fleet.waitFor((x) => x.published >= 2 * N, DEADLINE);
    fleet.setTelemetry(null);
    const s = await fleet.waitFor((x) => x.qos1Acked === x.published, DEADLINE);
    untap();
    assert.ok(s.published >= 2 * N);
    assert.equal(await metricSum(broker.metrics.messagesIn, { qos: '1' }), s.published);
    assert.ok(seen.size > N / 2, `telemetry from ${seen.size} devices`);
  });

  it('reboots devices without DISCONNECT and brings them back', async () => {
    const before: FleetStats = fleet.stats();
    const ids = fleet.reboot(50, [20, 100]);
    assert.equal(ids.length, 50);
    assert.equal(new Set(ids).size, 50);
    const s = await fleet.waitFor(
      (x) => x.connected === N && x.connacksOk === before.connacksOk + 50,
      DEADLINE,
    );
    assert.equal(s.reboots, 50);
    assert.equal(s.attempts, before.attempts + 50);
    await until('broker sees every client again', () => broker.broker.connectedClients === N);
    // The broker saw the reboots as lost connections, not DISCONNECTs.
    assert.equal(await metricSum(broker.metrics.disconnects, { reason: 'client_disconnect' }), 0);
    assert.ok((await metricSum(broker.metrics.disconnects, { reason: 'peer_closed' })) >= 50);
  });

  it('flaps a fraction of the fleet until told to stop', async () => {
    const before = fleet.stats();
    const stop = fleet.flap(0.1, [20, 60], [20, 60]);
    await fleet.waitFor((x) => (x.reboots ?? 0) >= (before.reboots ?? 0) + 60, DEADLINE);
    stop();
    const s = await fleet.waitFor((x) => x.connected === N, DEADLINE);
    assert.ok((s.reboots ?? 0) - (before.reboots ?? 0) >= 60);
  });

  it('stop() closes every socket', async () => {
    await fleet.stop();
    assert.ok((await metricSum(broker.metrics.disconnects, { reason: 'client_disconnect' })) >= N);
    assert.equal(fleet.openSockets(), 0);
    assert.equal(fleet.stats().connected, 0);
    await until('broker has no sockets', () => broker.openSockets() === 0);
    assert.equal(broker.broker.connectedClients, 0);
  });
});

describe('Fleet reconnect policies against a refusing broker', () => {
  it('the naive policy makes far more attempts than the fleet policy', async () => {
    // 0x89 Server Busy: a refusal that is not an auth failure, so only the policy paces retries.
    const broker = await startBroker({
      hooks: { authenticate: () => ({ ok: false, reasonCode: 0x89, reasonString: 'busy' }) },
    });
    const target = { host: '127.0.0.1', port: broker.port };
    const common = { target, devices: 20, timeScale: 0.05, rampPerSec: 1000 };
    const naive = new Fleet({ ...common, policy: 'naive', idPrefix: 'naive-' });
    const fleet = new Fleet({ ...common, policy: 'fleet', idPrefix: 'fleet-' });
    try {
      await Promise.all([naive.start(), fleet.start()]);
      // naive: 50 ms between tries; fleet: 250-750 ms, then 1.5-6 s, then 15-30 s.
      const n = await naive.waitFor((s) => s.attempts >= 20 * 10, DEADLINE);
      const f = fleet.stats();
      assert.equal(n.connected, 0);
      assert.ok((n.refusals['server-busy'] ?? 0) >= 20 * 9);
      assert.ok(f.attempts >= 20, 'every fleet device tried once');
      assert.ok(f.attempts <= 20 * 3, `fleet policy made ${f.attempts} attempts`);
      assert.ok(n.attempts >= 3 * f.attempts, `naive ${n.attempts} vs fleet ${f.attempts}`);
    } finally {
      await Promise.all([naive.stop(), fleet.stop()]);
      await broker.close();
    }
  });

  it('opens the auth circuit breaker after 3 auth failures and stops trying', async () => {
    const seen: string[] = [];
    const broker = await startBroker({
      hooks: {
        authenticate: (req: ConnectRequest) => {
          seen.push(req.clientId);
          return { ok: false, reasonCode: 0x86, reasonString: 'bad password' };
        },
      },
    });
    const fleet = new Fleet({
      target: { host: '127.0.0.1', port: broker.port },
      devices: 10,
      timeScale: 0.01,
      credentials: (id) => ({ username: id, password: 'wrong' }),
    });
    const opened: string[] = [];
    fleet.on('auth-breaker-open', (id: string) => opened.push(id));
    try {
      await fleet.start();
      const s = await fleet.waitFor((x) => x.authStopped === 10, DEADLINE);
      assert.equal(s.authFailures, 30);
      assert.equal(s.attempts, 30);
      assert.equal(s.refusals['bad-username-or-password'], 30);
      assert.equal(s.authBreakerOpened, 10);
      assert.equal(new Set(opened).size, 10);
      assert.equal(seen.length, 30);
    } finally {
      await fleet.stop();
      await broker.close();
    }
  });

  it('counts connect failures as network errors when nothing listens', async () => {
    const broker = await startBroker();
    const port = broker.port;
    await broker.close();
    const fleet = new Fleet({ target: { host: '127.0.0.1', port }, devices: 5, timeScale: 0.001 });
    try {
      await fleet.start();
      const s = await fleet.waitFor((x) => x.networkErrors >= 10, DEADLINE);
      assert.equal(s.connected, 0);
      assert.equal(s.connacksOk, 0);
    } finally {
      await fleet.stop();
    }
    assert.equal(fleet.openSockets(), 0);
  });
});

describe('Fleet devices obey config pushes and OTA jobs', () => {
  it('applies config, reports it retained, runs OTA jobs through a reboot, rolls back a crash loop', async () => {
    const broker = await startBroker();
    const fleet = new Fleet({
      target: { host: '127.0.0.1', port: broker.port },
      devices: 10,
      timeScale: 0.01,
      subscribeFleetTopics: true,
      protocolVersion: 5,
      firmware: '1.0.0',
    });
    const statuses = new Map<string, string[]>();
    const reported = new Map<string, string>();
    const untapStatus = broker.broker.tap('$fleet/+/ota/status', (topic, payload) => {
      const id = topic.split('/')[1]!;
      const report = JSON.parse(payload.toString()) as { status: string };
      statuses.set(id, [...(statuses.get(id) ?? []), report.status]);
    });
    const untapReported = broker.broker.tap('$fleet/+/config/reported', (topic, payload) => {
      reported.set(topic.split('/')[1]!, payload.toString());
    });
    try {
      await fleet.start();
      await fleet.waitFor((s) => s.connected === 10, DEADLINE);
      // Config and jobs are retained: a device whose SUBSCRIBE is still on its way gets them too.
      const ids = fleet.ids();
      for (const id of ids) {
        const payload = Buffer.from(JSON.stringify({ version: 'c1', rate: 5 }));
        await broker.broker.publish({ topic: `$fleet/${id}/config`, payload, qos: 1, retain: true });
      }
      await fleet.waitFor((s) => s.configApplied === 10, DEADLINE);
      await until('config reported', () => reported.size === 10);
      assert.deepEqual(JSON.parse(reported.get(ids[0]!)!), { version: 'c1', rate: 5 });

      const job = (version: string, jobId: string) =>
        Buffer.from(
          JSON.stringify({
            jobId,
            campaignId: 'camp',
            version,
            url: 'http://127.0.0.1:1/fw.bin',
            sha256: 'a'.repeat(64),
          }),
        );
      const first = ids.slice(0, 4);
      for (const id of first)
        await broker.broker.publish({
          topic: `$fleet/${id}/ota`,
          payload: job('2.0.0', 'j1'),
          qos: 1,
          retain: true,
        });
      await fleet.waitFor((s) => s.otaStatus.succeeded === 4 && s.connected === 10, DEADLINE);
      await until('status reports delivered', () =>
        first.every((id) => statuses.get(id)?.includes('succeeded')),
      );
      for (const id of first) {
        assert.deepEqual(statuses.get(id), [
          'queued',
          'downloading',
          'downloading',
          'installing',
          'succeeded',
        ]);
        assert.equal(fleet.deviceState(id)?.firmware, '2.0.0');
      }
      assert.equal(fleet.stats().reboots, 4);

      // Firmware 3.0.0 crash-loops: two crashes, then the bootloader rolls back to 2.0.0.
      fleet.setCrashLoop({ versions: ['3.0.0'], upMs: [100, 200], downMs: [100, 200], rollbackAfter: 2 });
      const bad = ids.slice(0, 2);
      for (const id of bad)
        await broker.broker.publish({
          topic: `$fleet/${id}/ota`,
          payload: job('3.0.0', 'j2'),
          qos: 1,
          retain: true,
        });
      const s = await fleet.waitFor((x) => x.otaStatus['rolled-back'] === 2 && x.connected === 10, DEADLINE);
      assert.equal(s.otaStatus.failed, 2);
      assert.equal(s.otaStatus.succeeded, 4);
      for (const id of bad) assert.equal(fleet.deviceState(id)?.firmware, '2.0.0');
      // One OTA reboot + two crashes per bad device, on top of the four good activations.
      assert.equal(s.reboots, 4 + 2 * 3);
    } finally {
      untapStatus();
      untapReported();
      await fleet.stop();
      await broker.close();
    }
  });
});

describe('Fleet devices that join later', () => {
  it('start() launches initialDevices; join() brings the others in, once each', async () => {
    const broker = await startBroker();
    const fleet = new Fleet({
      target: { host: '127.0.0.1', port: broker.port },
      devices: 30,
      initialDevices: 20,
      timeScale: 0.01,
      rampPerSec: 2000,
    });
    try {
      assert.equal(fleet.initialDevices, 20);
      assert.throws(() => fleet.join(), /before start/);
      await fleet.start();
      await fleet.waitFor((x) => x.connected === 20, DEADLINE);
      // The ten others never tried: the broker has not seen them.
      assert.equal(fleet.stats().attempts, 20);
      assert.equal(fleet.deviceState('sim-00021')?.state, 'idle');
      // A reboot wave never picks a device that has not booted yet.
      assert.equal(fleet.reboot(25, [10, 20]).length, 20);
      await fleet.waitFor((x) => x.connected === 20, DEADLINE);
      const joined = fleet.join(4, [0, 50]);
      assert.deepEqual(joined, ['sim-00021', 'sim-00022', 'sim-00023', 'sim-00024']);
      await fleet.waitFor((x) => x.connected === 24, DEADLINE);
      assert.equal(fleet.join().length, 6);
      // Already joining or joined: not again.
      assert.equal(fleet.join().length, 0);
      const s = await fleet.waitFor((x) => x.connected === 30, DEADLINE);
      assert.equal(s.attempts, 20 + 20 + 10);
      await until('broker sees every client', () => broker.broker.connectedClients === 30);
    } finally {
      await fleet.stop();
      await broker.close();
    }
  });
});
