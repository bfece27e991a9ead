// Browser test of the built-in page.
//   node tests/browser/ui-test.mjs <base-url> <screenshot-path>
// Loads the page in the system Chromium, inserts the sample payload through the
// HTTP API, waits for the temperature chart to show its 6 rows, then searches
// the device picker (which must never ask /fetch/devices for more than a page,
// nor without a `limit`), and saves a full-page screenshot. Prints one JSON
// line; exits 0 on success, 1 on failure.
// With CROMFLAG_READ_TOKEN set, the host requires tokens: the page must ask for
// one, and is signed in through its form; the insert then sends
// CROMFLAG_DEVICE_TOKEN (a token for `sample` alone: no other device is added).
// playwright-core comes from ui/node_modules (`npm --prefix ui ci`).
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { root, runPageTest } from './harness.mjs';

await runPageTest('ui-test.mjs', async ({ page, url, shot }) => {
  // Every device-list request the page makes: none may list the whole fleet.
  const listRequests = [];
  page.on('request', (r) => {
    const u = new URL(r.url());
    if (u.pathname === '/fetch/devices') listRequests.push(u.searchParams);
  });

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
  const deviceToken = process.env.CROMFLAG_DEVICE_TOKEN;
  if (deviceToken) headers.authorization = `Bearer ${deviceToken}`;
  const insertAs = async (id) => {
    const doc = JSON.parse(body);
    doc.deviceinfo.deviceid = id;
    const ins = await fetch(url(`/insert/${encodeURIComponent(id)}`), { method: 'POST', headers, body: JSON.stringify(doc) });
    if (!ins.ok) throw new Error(`insert ${id} failed: HTTP ${ins.status} ${await ins.text()}`);
  };
  await insertAs('sample');

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

  // 4. The device picker searches on the host as one types.
  const waitFor = async (what, predicate, arg) => {
    await page.waitForFunction(predicate, arg, { timeout: 20000 }).catch(async () => {
      const st = await page.evaluate(() => JSON.stringify({ ...window.cromflagState, series: undefined })).catch(() => '?');
      throw new Error(`${what}; state=${st}`);
    });
  };
  const search = async (text, expected) => {
    await page.fill('#device-search', text);
    await waitFor(`the search ${JSON.stringify(text)} never listed ${JSON.stringify(expected)}`,
      ([t, e]) => window.cromflagState.deviceSearch === t && window.cromflagState.deviceList.join('\n') === e.join('\n'),
      [text, expected]);
  };
  const options = () => page.$$eval('#device option', (os) => os.map((o) => o.value).filter(Boolean));
  const searched = {};
  if (!deviceToken) {
    // More devices than the picker lists at once (50), and ids a URL or LIKE treat specially.
    const bulk = Array.from({ length: 60 }, (_, i) => `bulk-${String(i).padStart(2, '0')}`);
    const ids = ['kitchen-1', 'kitchen-2', '100%_x', '100x', ...bulk];
    for (let i = 0; i < ids.length; i += 10) await Promise.all(ids.slice(i, i + 10).map(insertAs));

    await search('kitchen', ['kitchen-1', 'kitchen-2']);
    // The selected device stays listed, first.
    const listed = await options();
    if (listed.join() !== 'sample,kitchen-1,kitchen-2') throw new Error(`picker lists ${listed}`);
    await page.selectOption('#device', 'kitchen-2');
    await waitFor('kitchen-2 was never charted with its metadata', () => {
      const st = window.cromflagState;
      return st.device === 'kitchen-2' && st.series?.temperature?.values?.length === 6 && st.meta?.deviceid === 'kitchen-2';
    });
    await search('100%', ['100%_x']);
    await search('bulk-1', bulk.slice(10, 20));
    // Without a search: the first page only, and a note that more exist.
    await search('', ['100%_x', '100x', ...bulk.slice(0, 48)]);
    if (!(await page.evaluate(() => window.cromflagState.devicesMore))) throw new Error('no "more" after 50 devices');
    // Enter picks the first match.
    await page.fill('#device-search', 'bulk-59');
    await page.press('#device-search', 'Enter');
    await waitFor('Enter never picked bulk-59', () => window.cromflagState.device === 'bulk-59');
    searched.picked = 'bulk-59';
  } else {
    await search('sam', ['sample']);
  }
  await search('no such device', []);
  searched.requests = listRequests.length;
  const unbounded = listRequests.filter((p) => !(Number(p.get('limit')) >= 1 && Number(p.get('limit')) <= 100));
  if (unbounded.length) throw new Error(`/fetch/devices asked without a small limit: ${unbounded.map(String)}`);
  await page.fill('#device-search', '');

  // 4. Screenshot and summary.
  await page.screenshot({ path: shot, fullPage: true });

  return {
    device: state.device,
    columns: Object.keys(state.series),
    temperature: state.series.temperature.values,
    latest_ts: state.latest?.timestamp ?? null,
    device_search: searched,
    charts: await page.$$eval('.chart canvas', (c) => c.length),
  };
});
