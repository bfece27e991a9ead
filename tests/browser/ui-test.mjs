// Browser test of the built-in page.
//   node tests/browser/ui-test.mjs <base-url> <screenshot-path>
// Loads the page in the system Chromium, inserts the sample payload through the
// HTTP API, waits for the temperature chart to show its 6 rows, and saves a
// full-page screenshot. Prints one JSON line; exits 0 on success, 1 on failure.
// With CROMFLAG_READ_TOKEN set, the host requires tokens: the page must ask for
// one, and is signed in through its form; the insert then sends
// CROMFLAG_DEVICE_TOKEN.
// playwright-core comes from ui/node_modules (`npm --prefix ui ci`).
import { createRequire } from 'node:module';
import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const require = createRequire(resolve(root, 'ui/package.json'));
const { chromium } = require('playwright-core');

const [base, shot] = process.argv.slice(2);
if (!base || !shot) {
  console.error('usage: node tests/browser/ui-test.mjs <base-url> <screenshot-path>');
  process.exit(2);
}
const url = (p) => new URL(p, base.endsWith('/') ? base : base + '/').href;

let browser;
const consoleErrors = [];
try {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox'],
  });
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.on('pageerror', (e) => consoleErrors.push(String(e)));
  page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });

  // 1. Load the page (signing in if the host asks) and wait until it says it is ready.
  await page.goto(url('/'), { waitUntil: 'load', timeout: 20000 });
  const readToken = process.env.CROMFLAG_READ_TOKEN;
  if (readToken) {
    await page.waitForSelector('#login:not([hidden])', { timeout: 20000 });
    await page.fill('#token', readToken);
    await Promise.all([
      page.waitForNavigation({ waitUntil: 'load', timeout: 20000 }),
      page.click('#login button'),
    ]);
  }
  await page.waitForFunction(() => window.cromflagState?.ready === true, null, { timeout: 20000 });

  // 2. Insert the sample payload from Node (not the page).
  const body = await readFile(resolve(root, 'tests/fixtures/sample-insert.json'), 'utf8');
  const headers = { 'content-type': 'application/json' };
  if (process.env.CROMFLAG_DEVICE_TOKEN) headers.authorization = `Bearer ${process.env.CROMFLAG_DEVICE_TOKEN}`;
  const ins = await fetch(url('/insert/sample'), { method: 'POST', headers, body });
  if (!ins.ok) throw new Error(`insert failed: HTTP ${ins.status} ${await ins.text()}`);

  // 3. The page picks up the new device/rows: 6 temperature points and a chart canvas.
  await page.waitForFunction(
    () => window.cromflagState?.series?.temperature?.values?.length === 6, null, { timeout: 20000 },
  ).catch(async () => {
    const st = await page.evaluate(() => JSON.stringify(window.cromflagState)).catch(() => '?');
    throw new Error(`temperature series never reached 6 values; state=${st}`);
  });
  const canvas = await page.$('.chart[data-column="temperature"] canvas');
  if (!canvas) throw new Error('no canvas for the temperature chart');
  const state = await page.evaluate(() => window.cromflagState);

  // 4. Screenshot and summary.
  await page.screenshot({ path: shot, fullPage: true });
  console.log(JSON.stringify({
    ok: true,
    device: state.device,
    columns: Object.keys(state.series),
    temperature: state.series.temperature.values,
    latest_ts: state.latest?.timestamp ?? null,
    charts: await page.$$eval('.chart canvas', (c) => c.length),
    console_errors: consoleErrors.length,
    screenshot: shot,
  }));
  await browser.close();
  process.exit(0);
} catch (e) {
  console.log(JSON.stringify({ ok: false, error: String(e?.message || e), console_errors: consoleErrors.slice(0, 5) }));
  if (browser) await browser.close().catch(() => {});
  process.exit(1);
}
