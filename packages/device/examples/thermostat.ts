/**
 * A complete device: publishes telemetry, applies pushed config, installs OTA jobs.
 *
 *   BROKER_URL=mqtt://127.0.0.1:1883 DEVICE_ID=thermo-1 DEVICE_TOKEN=... \
 *     node --conditions=source --import tsx packages/device/examples/thermostat.ts
 */
import { copyFile } from 'node:fs/promises';
import { createDevice } from '@breakwater/device';

const deviceId = process.env.DEVICE_ID ?? 'thermo-1';
const device = createDevice({
  servers: (process.env.BROKER_URL ?? 'mqtt://127.0.0.1:1883').split(','),
  deviceId,
  credentials: { token: process.env.DEVICE_TOKEN ?? 'dev-token' },
  firmware: '1.4.2',
  // Out-of-band reports (auth breaker) go to the control plane, not through the broker.
  ...(process.env.OOB_URL ? { oob: { url: process.env.OOB_URL } } : {}),
});

// Desired config, delivered retained on $fleet/{id}/config; applied once per version.
let settings = { intervalSec: 10, unit: 'C' };
device.onConfig(async (config, { version }) => {
  settings = { ...settings, ...(config.settings as object) };
  await device.reportConfig({ version, settings }); // $fleet/{id}/config/reported, retained
});

// Commands on $fleet/{id}/commands/#; the result goes to the command's response topic.
device.onCommand((cmd) => (cmd.name === 'ping' ? { pong: Date.now() } : { unknown: cmd.name }));

// OTA jobs on $fleet/{id}/ota: download + sha256 check are done by the SDK.
device.onOta({
  maxBytes: 64 * 1024 * 1024,
  async apply(job, artifact) {
    await copyFile(artifact.path, `/tmp/${deviceId}-firmware-${job.version}.bin`);
    // A real device would flash the inactive slot here and schedule a reboot into it.
  },
  async rollback(job, error) {
    console.error(`rolling back ${job.version}: ${error.message}`);
  },
});

device.on('connected', (e) => console.log(`connected to ${e.url} (session present: ${e.sessionPresent})`));
device.on('reconnecting', (e) => console.log(`retry #${e.attempt} in ${e.delayMs} ms (${e.cause})`));
device.on('auth-breaker-open', (e) => console.error(`credential refused 3 times; pausing ${e.openForMs} ms`));
device.on('ota', (s) =>
  console.log(`ota ${s.jobId}: ${s.status}${s.progress !== undefined ? ` ${s.progress}%` : ''}`),
);
device.on('error', (err) => console.error('device error:', err.message));

device.start();

// Telemetry: only while connected (the SDK does not queue QoS 0 data across reconnects).
const telemetry = setInterval(() => {
  if (device.state !== 'connected') return;
  const reading = { t: 20 + Math.random() * 2, unit: settings.unit, at: new Date().toISOString() };
  device.publish(`devices/${deviceId}/telemetry`, JSON.stringify(reading), { qos: 0 }).catch(() => {});
}, settings.intervalSec * 1000);

process.once('SIGINT', async () => {
  clearInterval(telemetry);
  await device.stop(); // clean DISCONNECT: the broker discards the will
  console.log('counters', device.counters);
});
