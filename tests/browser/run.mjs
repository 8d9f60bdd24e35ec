// Browser tests of the punchd web UI.
//
//   node tests/browser/run.mjs <base-url> <screenshots-dir>
//
// Drives Debian's Chromium (/usr/bin/chromium, or $CHROMIUM) with playwright-core and runs every scenario file
// in scenarios/ in name order. A scenario exports `default async function (t)` and uses the helpers on `t`
// (below): pages signed in as an account, axe-core checks (no serious or critical violation), a check that the
// page reads at 375 px without sideways scrolling, screenshots. Accounts come from $PUNCHD_UI_ACCOUNTS
// (`name:password:role,…`, created by the Rust test through the CLI); other facts the Rust test knows (the
// simulated terminals' serial numbers, …) come as $PUNCHD_UI_* variables, read with t.env(NAME).
//
// Prints one line per scenario (`ok - NAME` / `not ok - NAME: why`) and closes with `N passed, N failed`;
// exits 1 when a scenario failed. A page that breaks the Content-Security-Policy (an inline script, a style
// attribute, a resource from elsewhere) fails its scenario too.

import { readFileSync, readdirSync, mkdirSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
const axeSource = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

const [base, shotsDir] = process.argv.slice(2);
if (!base || !shotsDir) {
  console.error('usage: node tests/browser/run.mjs <base-url> <screenshots-dir>');
  process.exit(2);
}
mkdirSync(shotsDir, { recursive: true });

const accounts = {};
for (const entry of (process.env.PUNCHD_UI_ACCOUNTS || '').split(',').filter(Boolean)) {
  const [name, password, role] = entry.split(':');
  accounts[role || name] = { name, password, role };
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu'],
});

/** Helpers handed to every scenario. */
function helpers(scenario, contexts, problems) {
  const t = {
    base,
    assert,
    accounts,
    /** A $PUNCHD_UI_<NAME> variable; fails the scenario when it is missing. */
    env(name) {
      const value = process.env[`PUNCHD_UI_${name}`];
      assert.ok(value !== undefined, `PUNCHD_UI_${name} is not set`);
      return value;
    },
    /** A new page in a fresh browser context (its own cookies), 1280×800 unless told otherwise. */
    async page(viewport = { width: 1280, height: 800 }) {
      const context = await browser.newContext({ viewport, locale: 'en-GB', timezoneId: 'UTC' });
      contexts.push(context);
      const page = await context.newPage();
      page.setDefaultTimeout(15000);
      page.on('console', (msg) => {
        const text = msg.text();
        if (/Content Security Policy|Refused to (load|execute|apply)/i.test(text)) {
          problems.push(`CSP violation on ${page.url()}: ${text}`);
        }
      });
      page.on('pageerror', (err) => problems.push(`script error on ${page.url()}: ${err.message}`));
      return page;
    },
    /** Sign in through the form as the account of `role` (admin, hr, viewer); lands on the dashboard. */
    async signIn(page, role) {
      const account = accounts[role];
      assert.ok(account, `no account for role ${role} in PUNCHD_UI_ACCOUNTS`);
      await page.goto(`${base}/ui/login`);
      await page.getByLabel('Account name').fill(account.name);
      await page.getByLabel('Password').fill(account.password);
      await Promise.all([page.waitForURL(/\/ui\/?$/), page.getByRole('button', { name: 'Sign in' }).click()]);
      return page;
    },
    /** A new page signed in as `role`. */
    async as(role, viewport) {
      return t.signIn(await t.page(viewport), role);
    },
    /** Run axe-core on the page: a serious or critical violation fails the scenario (all are printed). */
    async axe(page, label = page.url()) {
      await page.evaluate(axeSource);
      const result = await page.evaluate(() =>
        // eslint-disable-next-line no-undef
        axe.run(document, { resultTypes: ['violations'] }));
      for (const v of result.violations) {
        const where = v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join('; ');
        const line = `axe ${v.impact} ${v.id} on ${label}: ${v.help} (${where})`;
        if (v.impact === 'serious' || v.impact === 'critical') {
          problems.push(line);
        } else {
          console.log(`# ${line}`);
        }
      }
    },
    /** The page at 375 px wide must not scroll sideways (wide tables scroll inside their own box). */
    async narrow(page, label = page.url()) {
      const before = page.viewportSize();
      await page.setViewportSize({ width: 375, height: 740 });
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      if (overflow > 1) {
        problems.push(`${label} is ${overflow}px wider than a 375px screen`);
      }
      await page.setViewportSize(before);
    },
    /** Save a screenshot `<name>.png` (the viewport; `full` for the whole page). */
    async shot(page, name, full = false) {
      await page.screenshot({ path: join(shotsDir, `${name}.png`), fullPage: full });
    },
    /**
     * Follow a page that is still being computed (the review grid of a month not computed yet says so and loads
     * itself again by `<meta http-equiv="refresh">`) until the page itself is there, at most 60 s.
     */
    async settle(page) {
      const until = Date.now() + 60000;
      for (;;) {
        await page.waitForLoadState('load');
        let refreshing;
        try {
          refreshing = await page.evaluate(() => document.querySelector('meta[http-equiv="refresh"]') !== null);
        } catch {
          continue; // it was loading itself again meanwhile
        }
        if (!refreshing) {
          return;
        }
        assert.ok(Date.now() < until, `${page.url()} was still being computed after 60 s`);
        await page.waitForEvent('load');
      }
    },
    /** Open `path`, wait for it (and for what it computes), check it with axe and at 375 px, and save a screenshot named `name`. */
    async visit(page, path, name) {
      const response = await page.goto(`${base}${path}`);
      assert.ok(response && response.status() < 400, `${path} answered ${response && response.status()}`);
      await t.settle(page);
      await t.axe(page, path);
      await t.narrow(page, path);
      if (name) {
        await t.shot(page, name);
      }
      return response;
    },
    /** POST a form from inside the page (with its CSRF token, as a forged or scripted request would). */
    async post(page, path, fields) {
      return page.evaluate(async ({ path, fields }) => {
        const csrf = document.querySelector('input[name=_csrf]');
        const body = new URLSearchParams({ ...fields, _csrf: csrf ? csrf.value : '' });
        const r = await fetch(path, { method: 'POST', body, redirect: 'manual' });
        return { status: r.status, text: await r.text() };
      }, { path, fields });
    },
  };
  return t;
}

const files = readdirSync(join(here, 'scenarios')).filter((f) => f.endsWith('.mjs')).sort();
const only = process.env.PUNCHD_UI_ONLY;
let passed = 0;
let failed = 0;
for (const file of files) {
  if (only && !file.includes(only)) {
    continue;
  }
  const name = file.replace(/\.mjs$/, '');
  const contexts = [];
  const problems = [];
  try {
    const scenario = await import(join(here, 'scenarios', file));
    await scenario.default(helpers(name, contexts, problems));
    if (problems.length) {
      throw new Error(problems.join('\n  '));
    }
    console.log(`ok - ${name}`);
    passed++;
  } catch (e) {
    console.log(`not ok - ${name}: ${e && e.stack ? e.stack : e}`);
    for (const [i, context] of contexts.entries()) {
      for (const [j, p] of context.pages().entries()) {
        await p.screenshot({ path: join(shotsDir, `FAILED-${name}-${i}-${j}.png`), fullPage: true }).catch(() => {});
      }
    }
    failed++;
  } finally {
    for (const context of contexts) {
      await context.close().catch(() => {});
    }
  }
}
await browser.close();
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
