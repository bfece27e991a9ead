// Browser test of the page's device health and alarms.
//   node tests/browser/alarms-test.mjs <base-url> <screenshot-path>
// The host runs with a 2 s inactivity timeout and has the sample inserted and
// its inactivity alarm raised (tests/live.rs does that first). The page must
// show the device as inactive with when it was last seen, a badge with its one
// open alarm (also in the picker), and the alarm in the list (rule, severity,
// state, raised time); clicking Acknowledge must acknowledge it, on the page
// and on the host (GET /alarms). Prints one JSON line; exits 0 on success, 1
// on failure. playwright-core comes from ui/node_modules (`npm --prefix ui ci`).
import { runPageTest } from './harness.mjs';

await runPageTest('alarms-test.mjs', async ({ page, url, shot }) => {
  const waitFor = async (what, predicate, arg) => {
    await page.waitForFunction(predicate, arg, { timeout: 20000 }).catch(async () => {
      const st = await page.evaluate(() => JSON.stringify({ ...window.cromflagState, series: undefined })).catch(() => '?');
      throw new Error(`${what}; state=${st}`);
    });
  };

  await page.goto(url('/'), { waitUntil: 'load', timeout: 20000 });
  await waitFor('the page never showed the sample with its open alarm', () => {
    const st = window.cromflagState;
    return st?.ready && st.device === 'sample' && st.alarms.length === 1 && st.meta?.active === false;
  });

  // The device's health and its badge.
  const text = (selector) => page.$eval(selector, (el) => el.textContent.trim());
  const visible = (selector) => page.$eval(selector, (el) => !el.hidden && el.offsetParent !== null);
  const health = await page.$$eval('#latest .health', (els) => els.map((e) => [e.querySelector('.k').textContent, e.querySelector('.v').textContent, e.className]));
  const status = health.find(([k]) => k === 'status');
  if (!status || status[1] !== 'inactive' || !status[2].includes('inactive')) throw new Error(`no inactive status: ${JSON.stringify(health)}`);
  const lastSeen = await page.evaluate(() => window.cromflagState.meta.last_seen);
  if (!(lastSeen > 0)) throw new Error(`no last-seen time: ${lastSeen}`);
  const seenShown = await page.$$eval('#latest .health-seen .v', (els) => els.map((e) => e.textContent));
  const expectedSeen = await page.evaluate((ms) => new Date(ms).toLocaleString(), lastSeen);
  if (seenShown.join() !== expectedSeen) throw new Error(`last seen shows ${seenShown}, not ${expectedSeen}`);
  if (!(await visible('#alarm-badge')) || (await text('#alarm-badge')) !== '1') {
    throw new Error(`the badge shows ${JSON.stringify(await text('#alarm-badge'))}`);
  }
  const option = await page.$eval('#device option[value="sample"]', (o) => o.textContent);
  if (option !== 'sample (1 alarm)') throw new Error(`the picker lists ${JSON.stringify(option)}`);

  // The list: one row, raised, with an Acknowledge button.
  const rows = () => page.$$eval('#alarm-list tr', (trs) => trs.map((tr) => ({
    id: tr.dataset.alarmId,
    cells: [...tr.querySelectorAll('td')].map((td) => td.textContent),
    ack: Boolean(tr.querySelector('button.ack')),
  })));
  const listed = await rows();
  const alarm = (await page.evaluate(() => window.cromflagState.alarms))[0];
  const raisedText = await page.evaluate((ms) => new Date(ms).toLocaleString(), alarm.raised);
  const expected = ['sample', 'inactivity', 'warning', 'raised', raisedText, 'Acknowledge'];
  if (listed.length !== 1 || listed[0].id !== alarm.id || listed[0].cells.join('|') !== expected.join('|') || !listed[0].ack) {
    throw new Error(`the list shows ${JSON.stringify(listed)}, expected ${JSON.stringify(expected)}`);
  }
  await page.screenshot({ path: shot, fullPage: true });

  // Acknowledge: the row says so, the button is gone, the badge stays (still open).
  await page.click(`#alarm-list tr[data-alarm-id="${alarm.id}"] button.ack`);
  await waitFor('the alarm never showed as acknowledged', (id) => {
    const tr = document.querySelector(`#alarm-list tr[data-alarm-id="${CSS.escape(id)}"]`);
    return tr?.querySelector('.state')?.textContent === 'acknowledged' && !tr.querySelector('button.ack');
  }, alarm.id);
  const res = await fetch(url('/alarms?state=open'));
  const onHost = await res.json();
  if (onHost.count !== 1 || onHost.alarms[0].id !== alarm.id || onHost.alarms[0].state !== 'acknowledged') {
    throw new Error(`the host lists ${JSON.stringify(onHost)}`);
  }
  if ((await text('#alarm-badge')) !== '1') throw new Error('an acknowledged alarm is still open: the badge stays');

  return {
    alarm: alarm.id,
    last_seen: lastSeen,
    listed: listed[0].cells,
    acknowledged: onHost.alarms[0].acknowledged,
  };
});
