import { type EventEmitter, once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import mqtt, { type MqttClient } from 'mqtt';
import { CliProcess } from './cli-process.js';

// Helpers of the `breakwater up` + control plane end-to-end tests (child process, port 0).

/** MqttClient is a typed emitter that `events.once` does not accept as such. */
export function events(client: MqttClient): EventEmitter {
  return client as unknown as EventEmitter;
}

export function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'bw-cli-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export const START_TIMEOUT_MS = 90_000;

/** `breakwater up` on 127.0.0.1, every port 0; resolves once the control API URL is printed. */
export async function startUp(dataDir: string, extra: string[] = []) {
  const cli = new CliProcess([
    'up',
    '--host',
    '127.0.0.1',
    '--mqtt-port',
    '0',
    '--ws-port',
    '0',
    '--http-port',
    '0',
    '--data-dir',
    dataDir,
    '--log-level',
    'warn',
    ...extra,
  ]);
  after(() => cli.stop());
  // Generous: from source (tsx) on a loaded 2-core machine a start can take well over 20 s.
  const [mqttUrl] = await cli.waitForStdout(/mqtt:\/\/127\.0\.0\.1:\d+/, START_TIMEOUT_MS);
  const [metricsUrl] = await cli.waitForStdout(/http:\/\/127\.0\.0\.1:\d+\/metrics/, START_TIMEOUT_MS);
  const [, controlBase] = await cli.waitForStdout(
    /control\s+(http:\/\/127\.0\.0\.1:\d+)\/api\/v1/,
    START_TIMEOUT_MS,
  );
  return {
    cli,
    mqttUrl: mqttUrl!,
    httpBase: metricsUrl!.replace(/\/metrics$/, ''),
    controlBase: controlBase!,
  };
}

export async function connect(url: string, options: mqtt.IClientOptions = {}): Promise<MqttClient> {
  const client = mqtt.connect(url, { reconnectPeriod: 0, connectTimeout: 10_000, ...options });
  after(() => client.end(true));
  await once(events(client), 'connect');
  return client;
}

/** Polls `probe` until it returns a value; fails with `what` after a generous deadline. */
export async function waitFor<T>(
  probe: () => Promise<T | null>,
  what: string,
  timeoutMs = 20_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== null) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
