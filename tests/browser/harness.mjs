// What every browser test of the built-in page shares: its arguments
// (<base-url> <screenshot-path>), the system Chromium (playwright-core from
// ui/node_modules: `npm --prefix ui ci`), a page that keeps the console's
// errors, and the one JSON line it prints: exit 0 on success, 1 on failure.
import { createRequire } from 'node:module';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const require = createRequire(resolve(root, 'ui/package.json'));
const { chromium } = require('playwright-core');

// Runs `test({ page, url, shot, consoleErrors })` on a fresh page; what it
// returns is printed with `ok: true`, the console's error count and the
// screenshot's path; what it throws, with `ok: false`.
export async function runPageTest(script, test) {
  const [base, shot] = process.argv.slice(2);
  if (!base || !shot) {
    console.error(`usage: node tests/browser/${script} <base-url> <screenshot-path>`);
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
    const summary = await test({ page, url, shot, consoleErrors });
    console.log(JSON.stringify({ ok: true, ...summary, console_errors: consoleErrors.length, screenshot: shot }));
    await browser.close();
    process.exit(0);
  } catch (e) {
    console.log(JSON.stringify({ ok: false, error: String(e?.message || e), console_errors: consoleErrors.slice(0, 5) }));
    if (browser) await browser.close().catch(() => {});
    process.exit(1);
  }
}
