/**
 * The public status page rendered by a real browser: headless Chromium (`--dump-dom`) loads
 * /status over a socket, with no API key, and the incident's public title and update appear in
 * the DOM it built. Skips when Chromium is not installed; fails under CI=true (.ci/run installs
 * the Debian `chromium` package).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { it, type TestContext } from 'node:test';
import { promisify } from 'node:util';
import { sqliteDriver, startControlPlane } from './harness.js';

const run = promisify(execFile);

function chromium(t: TestContext): string | null {
  const found = ['/usr/bin/chromium', '/usr/bin/chromium-browser', process.env.CHROMIUM ?? ''].find(
    (p) => p !== '' && existsSync(p),
  );
  if (found) return found;
  const message = 'headless Chromium not found (apt-get install chromium); status page browser test skipped';
  if (process.env.CI === 'true') assert.fail(`${message}: CI must install it`);
  t.skip(message);
  return null;
}

it('/status renders the active incident in headless Chromium', async (t) => {
  const browser = chromium(t);
  if (browser === null) return;
  const h = await startControlPlane(t, sqliteDriver);
  const created = await h.call('POST', '/api/v1/incidents', {
    body: { type: 'mass-disconnect', title: 'Fleet drops in eu-west', severity: 'critical' },
  });
  assert.equal(created.statusCode, 201, created.body);
  const id = (created.json() as { id: number }).id;
  const update = await h.call('POST', `/api/v1/incidents/${id}/updates`, {
    body: {
      status: 'investigating',
      message: 'Devices in eu-west reconnect slowly; no data is lost.',
      title: 'Devices in eu-west cannot connect',
    },
  });
  assert.equal(update.statusCode, 201, update.body);
  const address = await h.app.listen({ port: 0, host: '127.0.0.1' });
  const profile = await mkdtemp(join(tmpdir(), 'bw-chromium-'));
  t.after(() => rm(profile, { recursive: true, force: true }));
  const { stdout } = await run(
    browser,
    [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-dev-shm-usage',
      '--no-first-run',
      `--user-data-dir=${profile}`,
      '--dump-dom',
      `${address}/status`,
    ],
    { timeout: 120_000, maxBuffer: 16 * 1024 * 1024 },
  );
  assert.match(
    stdout,
    /<h3>Devices in eu-west cannot connect<\/h3>/,
    'the public incident title is in the DOM',
  );
  assert.match(stdout, /Devices in eu-west reconnect slowly; no data is lost\./);
  assert.match(stdout, /id="overall">Major outage in progress</);
  assert.match(stdout, new RegExp(`data-incident="INC-${id}"`));
});
