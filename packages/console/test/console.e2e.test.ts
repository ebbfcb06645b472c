/**
 * The web console end to end (issue 14): `breakwater up` in-process with the built bundle,
 * headless system Chromium through playwright-core. Logs in with the admin API key, watches the
 * connected-devices metric move when an MQTT client connects, runs three kill switches from the
 * pages (revoke, OTA halt, break-glass bypass) and checks the API state each one changed, checks
 * every page with axe-core (no serious or critical violations), and restarts the broker under
 * the open tab: the badge goes RECONNECTING, then LIVE again.
 *
 * Skips when Chromium or the bundle is missing (fails under CI=true). With
 * CONSOLE_SCREENSHOTS=<dir> it also saves a screenshot of every page there (docs/console).
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { cpSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import mqtt from 'mqtt';
import type { Browser, Page } from 'playwright-core';
import {
  consoleBuilt,
  Deployment,
  deviceRows,
  findChromium,
  launchBrowser,
  logIn,
  type RunningUp,
} from './harness.js';

const chromiumFound = findChromium();
const built = consoleBuilt();
if (!built && process.env.CI === 'true')
  assert.fail('packages/console/dist is missing: npm install builds it');
const skip =
  'skip' in chromiumFound
    ? chromiumFound.skip
    : built
      ? false
      : 'the console bundle is not built (npm run build -w @breakwater/console): skipped';

const PAGES = ['overview', 'guard', 'devices', 'campaigns', 'incidents', 'gamedays'] as const;
// Opens what a page shows in detail (for axe and the screenshot).
const OPEN: Partial<Record<(typeof PAGES)[number], (page: Page) => Promise<void>>> = {
  campaigns: (page) => page.getByRole('button', { name: 'fw 2.0 canary' }).click(),
  devices: async (page) => {
    await page.getByTestId('device-row').first().waitFor();
    await page.getByRole('button', { name: 'sensor-00001' }).click();
  },
  incidents: (page) => page.getByRole('button', { name: /^INC-/ }).first().click(),
  gamedays: (page) => page.getByRole('button', { name: 'sink-outage' }).click(),
};
const axeSource = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
const shots = process.env.CONSOLE_SCREENSHOTS;

interface AxeResult {
  violations: Array<{ id: string; impact: string | null; help: string; nodes: Array<{ target: string[] }> }>;
}

async function axe(page: Page): Promise<AxeResult['violations']> {
  // evaluate() runs through the DevTools protocol: the console's CSP (script-src 'self') stays on.
  await page.evaluate(`${axeSource}\n;void 0`);
  const result = (await page.evaluate(`axe.run(document, { resultTypes: ['violations'] })`)) as AxeResult;
  return result.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
}

describe('web console (headless Chromium)', { skip, timeout: 120_000 }, () => {
  const d = new Deployment();
  let up: RunningUp;
  let browser: Browser;
  let page: Page;
  let campaignId = '';

  before(async () => {
    await d.init();
    // A real game-day report for the Game days page (committed bench result).
    const sample = new URL('../../../bench/results/sink-outage/', import.meta.url);
    if (existsSync(sample)) cpSync(sample, join(d.reportsDir, 'sink-outage'), { recursive: true });
    up = await d.start();
    browser = await launchBrowser((chromiumFound as { path: string }).path);
    page = await browser.newPage({ viewport: { width: 1440, height: 1000 } });
    await d.api('POST', '/api/v1/devices/import', deviceRows(40, 'sensor', ['eu']));
    await d.api('POST', '/api/v1/devices', { id: 'e2e-device', tags: ['e2e'] });
    const created = await d.api<{ campaign: { id: string } }>('POST', '/api/v1/campaigns', {
      name: 'fw 2.0 canary',
      artifact: { url: 'https://fw.example/2.0.bin', version: '2.0.0', sha256: 'a'.repeat(64) },
      selector: { tags: ['eu'] },
      waves: [{ percent: 10 }, { percent: 100 }],
    });
    campaignId = created.campaign.id;
    await d.api('POST', `/api/v1/campaigns/${campaignId}/start`, { reason: 'e2e' });
    await d.api('POST', '/api/v1/incidents', {
      type: 'mass-disconnect',
      title: 'Devices in eu-west reconnect in a storm',
      severity: 'critical',
    });
  });
  after(async () => {
    await browser?.close();
    await up?.stop().catch(() => {});
    d.cleanup();
  });

  it('logs in with an API key and goes LIVE; a bad key is refused with a message', async () => {
    await page.goto(`${d.base}/console/`);
    await page.getByLabel('API key').fill('bwk_not-a-key');
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.getByRole('alert').filter({ hasText: 'unknown API key' }).waitFor();
    await logIn(page, d.base, d.adminKey());
    // Only the session token is kept, never the key.
    const stored = (await page.evaluate(`sessionStorage.getItem('breakwater.console.session')`)) as
      | string
      | null;
    assert.ok(stored?.includes('bwc_'));
    assert.ok(!stored?.includes(d.adminKey()));
  });

  it('the connected-devices metric moves when a test client connects; its detail shows the broker session', async (t) => {
    const stat = page.getByTestId('stat-connections');
    const initial = Number((await stat.locator('.stat-value').textContent()) ?? 'NaN');
    assert.ok(Number.isFinite(initial), 'the stat shows a number');
    const client = mqtt.connect(up.mqttUrl, {
      clientId: 'e2e-device',
      protocolVersion: 5,
      reconnectPeriod: 0,
    });
    t.after(() => client.end(true));
    await once(client as unknown as NodeJS.EventEmitter, 'connect');
    await stat
      .locator('.stat-value')
      .filter({ hasText: String(initial + 1) })
      .waitFor({ timeout: 10_000 });

    // Some traffic for the charts and the Guard page: messages in and out, drops, and connects
    // refused on `secure` (its auth backend is down: 0x88, counted as auth errors).
    // The default authz rules confine a client to devices/{clientId}/#: the last 50 are denied (drops).
    client.subscribe('devices/e2e-device/#');
    for (let i = 0; i < 200; i++) client.publish('devices/e2e-device/temp', String(20 + (i % 5)));
    for (let i = 0; i < 50; i++) client.publish('devices/someone-else/temp', 'x');
    // Refusals are answered by the tarpit's 1 s sweep: the three run side by side.
    await Promise.all(
      [0, 1, 2].map(
        (i) =>
          new Promise((resolve) => {
            const refused = mqtt.connect(up.secureMqttUrl, {
              clientId: `storm-${i}`,
              username: `storm-${i}`,
              password: 'pw',
              protocolVersion: 5,
              reconnectPeriod: 0,
              connectTimeout: 5000,
            });
            // events.once() would reject on the 'error' (the refusal) that comes before 'close'.
            refused.on('error', () => {});
            refused.on('close', () => resolve(null));
          }),
      ),
    );
    await page.waitForTimeout(1500); // the next two samples carry the traffic

    // Device detail while it is connected: the broker's session, with its subscription.
    await page.goto(`${d.base}/console/#/devices`);
    await page.getByRole('button', { name: 'e2e-device', exact: true }).click();
    await page.getByRole('list', { name: 'Subscriptions' }).getByText('devices/e2e-device/#').waitFor();
    // …and its session history (GET /api/v1/devices/:id/events) with this connect.
    await page
      .getByRole('list', { name: 'Session history' })
      .getByText('connected', { exact: true })
      .waitFor();
  });

  it('kill switch 1: revoke a device from the device list', async () => {
    await page.goto(`${d.base}/console/#/devices`);
    await page.getByLabel('Search id').fill('e2e-dev');
    await page
      .getByTestId('device-count')
      .filter({ hasText: /^1 device\(s\)/ })
      .waitFor();
    await page.getByLabel('select e2e-device').check();
    await page.getByRole('button', { name: 'Revoke selected' }).click();
    assert.match((await page.getByTestId('confirm-effect').textContent()) ?? '', /reconnect is refused/);
    await page.getByLabel(/Reason/).fill('e2e: leaked credentials');
    await page.getByTestId('confirm-submit').click();
    await page.getByRole('dialog').waitFor({ state: 'detached' });
    const list = await d.api<{ items: Array<{ active: boolean; reason: string | null }> }>(
      'GET',
      '/api/v1/revocations?deviceId=e2e-device&active=true',
    );
    assert.equal(list.items.length, 1, 'one active revocation for the device');
    const audit = await d.api<{ items: Array<{ action: string; actor: { name: string } }> }>(
      'GET',
      '/api/v1/audit?action=revocation.create&limit=5',
    );
    assert.equal(audit.items.length, 1, 'the kill switch is in the audit log');
  });

  it('kill switch 3: HALT the running campaign behind a confirmation', async () => {
    await page.goto(`${d.base}/console/#/campaigns`);
    await page.getByRole('button', { name: 'fw 2.0 canary' }).click();
    await page.getByRole('button', { name: 'HALT', exact: true }).click();
    assert.match((await page.getByTestId('confirm-effect').textContent()) ?? '', /no device .* is notified/);
    await page.getByLabel(/Reason/).fill('e2e: bad build');
    await page.getByTestId('confirm-submit').click();
    await page.getByRole('dialog').waitFor({ state: 'detached' });
    const detail = await d.api<{ campaign: { state: string; haltReason: string } }>(
      'GET',
      `/api/v1/campaigns/${campaignId}`,
    );
    assert.equal(detail.campaign.state, 'halted');
    assert.equal(detail.campaign.haltReason, 'e2e: bad build');
    await page.getByTestId(`campaign-${campaignId}`).getByText('halted').waitFor();
  });

  it('break-glass: bypass authentication on a listener, with a countdown', async () => {
    await page.goto(`${d.base}/console/#/guard`);
    await page.getByTestId('listener-secure').getByRole('button', { name: 'Bypass…' }).click();
    await page.getByLabel(/Reason/).fill('e2e: auth backend down');
    await page.getByTestId('confirm-submit').click();
    await page
      .getByTestId('bypass-secure')
      .filter({ hasText: /BYPASSED, ends in 14 min/ })
      .waitFor();
    const state = await d.api<{ bypass: { reason: string } | null }>('GET', '/api/v1/listeners/secure/authn');
    assert.equal(state.bypass?.reason, 'e2e: auth backend down');
    const log = readFileSync(join(d.dataDir, 'audit.log'), 'utf8');
    assert.match(log, /"actor":"apikey:bootstrap admin","action":"bypass-authn"/);
  });

  it('every page passes axe-core (no serious or critical violations)', async () => {
    if (shots) mkdirSync(shots, { recursive: true });
    for (const name of PAGES) {
      await page.goto(`${d.base}/console/#/${name}`);
      await page.locator('main.page h1').waitFor();
      await OPEN[name]?.(page);
      if (name === 'overview') await page.getByLabel('Chart window').selectOption('300');
      await page.waitForTimeout(400);
      const violations = await axe(page);
      assert.deepEqual(
        violations.map(
          (v) => `${v.id} (${v.impact}): ${v.help} at ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`,
        ),
        [],
        `axe on ${name}`,
      );
      if (shots) await page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
    }
  });

  it('a broker restart turns the badge RECONNECTING, then LIVE again (same session)', async () => {
    await page.goto(`${d.base}/console/#/overview`);
    const badge = page.getByTestId('link-badge');
    await badge.filter({ hasText: 'LIVE' }).waitFor();
    await up.stop();
    await badge.filter({ hasText: 'RECONNECTING' }).waitFor({ timeout: 10_000 });
    up = await d.start();
    await badge.filter({ hasText: 'LIVE' }).waitFor({ timeout: 20_000 });
    assert.equal(await page.getByLabel('API key').count(), 0, 'still logged in after the restart');
  });
});
