/**
 * Shared by the console's browser test and its measurement scripts: `breakwater up` in-process
 * (restartable on the same HTTP port and data dir), headless system Chromium through
 * playwright-core, and the API-key login.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { runUp } from '@breakwater/cli';
import { type Browser, chromium, type Page } from 'playwright-core';

export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-dev-shm-usage',
];

/** The system Chromium, or a reason to skip (a failure under CI=true). */
export function findChromium(): { path: string } | { skip: string } {
  const path = [process.env.CHROMIUM ?? '', '/usr/bin/chromium', '/usr/bin/chromium-browser'].find(
    (p) => p !== '' && existsSync(p),
  );
  if (path) return { path };
  const message = 'headless Chromium not found (apt-get install chromium): console browser test skipped';
  if (process.env.CI === 'true') assert.fail(`${message}; CI must install it`);
  return { skip: message };
}

export function consoleBuilt(): boolean {
  return existsSync(new URL('../dist/index.html', import.meta.url));
}

export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

class Capture extends Writable {
  text = '';
  override _write(chunk: Buffer, _enc: string, done: () => void): void {
    this.text += chunk.toString();
    done();
  }
}

export interface RunningUp {
  mqttUrl: string;
  secureMqttUrl: string;
  stop(): Promise<void>;
}

/** A test deployment: two listeners, `mqtt` (anonymous authenticator) and `secure` (its auth backend is down). */
export class Deployment {
  readonly dir = mkdtempSync(join(tmpdir(), 'bw-console-'));
  readonly dataDir = join(this.dir, 'data');
  readonly configFile = join(this.dir, 'breakwater.yaml');
  readonly reportsDir = join(this.dir, 'gameday-reports');
  httpPort = 0;

  async init(): Promise<void> {
    this.httpPort = await freePort();
    writeFileSync(
      this.configFile,
      JSON.stringify({
        listeners: [
          { name: 'mqtt', type: 'tcp', host: '127.0.0.1', port: 0 },
          { name: 'secure', type: 'tcp', host: '127.0.0.1', port: 0 },
        ],
        http: { host: '127.0.0.1', port: this.httpPort },
        storage: { driver: 'memory' },
        dataDir: this.dataDir,
        control: { gamedayReports: this.reportsDir },
        log: { level: 'error' },
        guard: {
          // Nothing listens on port 1: the `secure` listener's backend is down (break-glass).
          authenticators: { http: { down: { url: 'http://127.0.0.1:1/auth' } }, anonymous: { open: {} } },
          listeners: { mqtt: { authn: ['open'] }, secure: { authn: ['down'] } },
        },
      }),
    );
  }

  get base(): string {
    return `http://127.0.0.1:${this.httpPort}`;
  }

  adminKey(): string {
    return readFileSync(join(this.dataDir, 'admin.key'), 'utf8').trim();
  }

  async start(): Promise<RunningUp> {
    const stdout = new Capture();
    const stderr = new Capture();
    let stop!: (signal: string) => void;
    const shutdownSignal = new Promise<string>((resolve) => {
      stop = resolve;
    });
    const exited = runUp({ config: this.configFile }, { stdout, stderr, shutdownSignal });
    const deadline = Date.now() + 60_000;
    while (!/console\s+http/.test(stdout.text)) {
      const early = await Promise.race([exited, new Promise((r) => setTimeout(() => r(null), 50))]);
      if (early !== null) throw new Error(`breakwater up exited ${early}: ${stderr.text}`);
      if (Date.now() > deadline) throw new Error(`breakwater up did not start: ${stdout.text}${stderr.text}`);
    }
    const urls = [...stdout.text.matchAll(/(mqtt|secure)\s+(mqtt:\/\/127\.0\.0\.1:\d+)/g)];
    const url = (name: string) => urls.find((m) => m[1] === name)?.[2] ?? '';
    return {
      mqttUrl: url('mqtt'),
      secureMqttUrl: url('secure'),
      stop: async () => {
        stop('test');
        const code = await exited;
        assert.equal(code, 0, stderr.text);
      },
    };
  }

  async api<T>(method: string, path: string, body?: unknown, key = this.adminKey()): Promise<T> {
    const res = await fetch(`${this.base}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${key}`,
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
    return JSON.parse(text) as T;
  }

  cleanup(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export async function launchBrowser(path: string): Promise<Browser> {
  return chromium.launch({ executablePath: path, args: CHROMIUM_ARGS, headless: true });
}

/** Opens the console, logs in with `key`, waits for the LIVE badge. */
export async function logIn(page: Page, base: string, key: string): Promise<void> {
  await page.goto(`${base}/console/`);
  await page.getByLabel('API key').fill(key);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.getByTestId('link-badge').filter({ hasText: 'LIVE' }).waitFor({ timeout: 15_000 });
}

export function deviceRows(n: number, prefix: string, tags: string[] = []) {
  return Array.from({ length: n }, (_, i) => ({
    id: `${prefix}-${String(i).padStart(5, '0')}`,
    tags,
    cohort: i % 10 === 0 ? 'canary' : 'main',
    firmwareVersion: '1.0.0',
  }));
}
