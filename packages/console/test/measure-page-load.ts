/**
 * Page-load measurement (issue 14: "page load < 1 s with 10,000 devices registered"). Not a test
 * (timing has no place in a test assertion): starts `breakwater up`, registers 10,000 devices,
 * logs in once, then loads each console page cold (new tab, same session) N times and prints the
 * median and worst time from navigation to the page's data on screen:
 *   - Devices: the first rows and the "10,000 device(s)" total rendered;
 *   - Overview: the badge LIVE (snapshot received, charts drawn).
 *
 *   node --conditions=source --import tsx packages/console/test/measure-page-load.ts [runs]
 */
import type { Page } from 'playwright-core';
import { Deployment, deviceRows, findChromium, launchBrowser, logIn } from './harness.js';

const runs = Number(process.argv[2] ?? 7);
const found = findChromium();
if ('skip' in found) {
  console.error(found.skip);
  process.exit(1);
}
const d = new Deployment();
await d.init();
const up = await d.start();
try {
  let t = Date.now();
  await d.api('POST', '/api/v1/devices/import', deviceRows(10_000, 'fleet', ['eu']));
  console.log(`registered 10,000 devices in ${Date.now() - t} ms`);
  const browser = await launchBrowser(found.path);
  const context = await browser.newContext({ viewport: { width: 1440, height: 1000 } });
  const login = await context.newPage();
  await logIn(login, d.base, d.adminKey());
  const session = (await login.evaluate(`sessionStorage.getItem('breakwater.console.session')`)) as string;
  // The session lives in sessionStorage (per tab): seed each new tab before the app's script runs.
  const seed = `sessionStorage.setItem('breakwater.console.session', ${JSON.stringify(session)})`;
  await login.close();

  const measure = async (hash: string, ready: (p: Page) => Promise<unknown>) => {
    const times: number[] = [];
    for (let i = 0; i < runs; i++) {
      const page = await context.newPage();
      await page.addInitScript(seed);
      t = Date.now();
      await page.goto(`${d.base}/console/#/${hash}`);
      await ready(page);
      times.push(Date.now() - t);
      await page.close();
    }
    times.sort((a, b) => a - b);
    console.log(
      `${hash}: median ${times[Math.floor(times.length / 2)]} ms, worst ${times.at(-1)} ms over ${runs} cold loads (${times.join(', ')})`,
    );
  };
  await measure('devices', async (p) => {
    await p
      .getByTestId('device-count')
      .filter({ hasText: '10,001 device(s)' })
      .or(p.getByTestId('device-count').filter({ hasText: '10,000 device(s)' }))
      .waitFor();
    await p.getByTestId('device-row').first().waitFor();
  });
  await measure('overview', (p) => p.getByTestId('link-badge').filter({ hasText: 'LIVE' }).waitFor());
  const page = await context.newPage();
  await page.addInitScript(seed);
  await page.goto(`${d.base}/console/#/devices`);
  await page.getByTestId('device-row').first().waitFor();
  console.log(`device rows in the DOM with 10,000 listed: ${await page.getByTestId('device-row').count()}`);
  await browser.close();
} finally {
  await up.stop();
  d.cleanup();
}
