// The live page under load (issue 11, "the live feed keeps up with 1,000 punches/s without growing the page's
// memory"): Chromium (playwright-core) signs in, opens /ui/live and stays on it for a while; every few seconds
// it reads the punches the page was told about (the table's data-live-received: shown + dropped), the rows in
// the DOM, and the JS heap (CDP Runtime.getHeapUsage, and again after a forced garbage collection).
//
//   node tests/browser/live-feed.mjs <base-url> <account> <password> <seconds> [every-seconds]
//
// scripts/bench/live-feed.sh runs punchd and the simulated terminals around it. Prints one TSV line per sample
//   t_s  received  dom_rows  heap_used_kb  heap_used_after_gc_kb  heap_total_kb
// then `start` and `end` summary lines. Exits 1 if the page received nothing or kept more rows than it says.
import { chromium } from 'playwright-core';

const [base, account, password, secondsArg, everyArg] = process.argv.slice(2);
if (!base || !account || !password || !secondsArg) {
  console.error('usage: node tests/browser/live-feed.mjs <base-url> <account> <password> <seconds> [every-seconds]');
  process.exit(2);
}
const seconds = Number(secondsArg);
const every = Number(everyArg || 10);

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu'],
});
let failed = false;
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  page.setDefaultTimeout(30000);
  page.on('pageerror', (err) => { console.error(`script error: ${err.message}`); failed = true; });
  await page.goto(`${base}/ui/login?next=%2Fui%2Flive`);
  await page.getByLabel('Account name').fill(account);
  await page.getByLabel('Password').fill(password);
  await Promise.all([page.waitForURL(/\/ui\/live/), page.getByRole('button', { name: 'Sign in' }).click()]);
  await page.locator('#live-status').filter({ hasText: 'Connected' }).waitFor();
  const cdp = await context.newCDPSession(page);
  await cdp.send('HeapProfiler.enable');
  const max = Number(await page.locator('#live').getAttribute('data-live-max'));

  const sample = async (t) => {
    const dom = await page.evaluate(() => {
      const table = document.getElementById('live');
      return {
        received: Number(table.getAttribute('data-live-received') || 0),
        rows: table.tBodies[0].rows.length,
      };
    });
    const before = await cdp.send('Runtime.getHeapUsage');
    await cdp.send('HeapProfiler.collectGarbage');
    const after = await cdp.send('Runtime.getHeapUsage');
    const s = {
      t,
      received: dom.received,
      rows: dom.rows,
      heapKb: Math.round(before.usedSize / 1024),
      heapGcKb: Math.round(after.usedSize / 1024),
      totalKb: Math.round(after.totalSize / 1024),
    };
    console.log([s.t, s.received, s.rows, s.heapKb, s.heapGcKb, s.totalKb].join('\t'));
    if (s.rows > max) {
      console.error(`the table holds ${s.rows} rows, more than its cap ${max}`);
      failed = true;
    }
    return s;
  };

  console.log(['t_s', 'received', 'dom_rows', 'heap_used_kb', 'heap_used_after_gc_kb', 'heap_total_kb'].join('\t'));
  const started = Date.now();
  const first = await sample(0);
  let last = first;
  for (;;) {
    const left = seconds * 1000 - (Date.now() - started);
    if (left <= 0) {
      break;
    }
    await page.waitForTimeout(Math.min(every * 1000, left));
    last = await sample(Math.round((Date.now() - started) / 1000));
  }
  const rate = (last.received - first.received) / Math.max(1, last.t - first.t);
  console.log(`start\treceived=${first.received}\trows=${first.rows}\theap_kb=${first.heapKb}\theap_after_gc_kb=${first.heapGcKb}`);
  console.log(`end\treceived=${last.received}\trows=${last.rows}\theap_kb=${last.heapKb}\theap_after_gc_kb=${last.heapGcKb}\tpunches_per_s=${rate.toFixed(0)}`);
  if (last.received === 0) {
    console.error('the page received no punch');
    failed = true;
  }
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
