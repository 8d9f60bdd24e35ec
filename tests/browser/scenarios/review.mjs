// The monthly review (issue 11): a day with a forgotten check-out shows as an open exception in the grid; HR
// opens the day (punches with the raw line the terminal sent), adds the missing punch with a reason (refused
// without one), signs the month off, downloads the XLSX and checks its cells, then reopens the month with a
// reason and revokes the added punch (refused without a reason). The audit log shows who did what. axe and 375 px
// on every page.
import { monthBack, workdays, attlog, terminal, readXlsx } from './lib/hr.mjs';
import { readFileSync } from 'node:fs';

export default async function (t) {
  const { assert } = t;
  const month = monthBack(2);
  const [forgot, full] = workdays(month, 2);
  const sn = 'UIPREV001';
  const hr = await t.as('hr');

  // Site REV (no weekly offs), employee R1 on it (a PIN equal to the code maps itself on the site).
  await hr.goto(`${t.base}/ui/sites`);
  await hr.getByLabel('Name', { exact: true }).fill('REV');
  await hr.getByLabel('Time zone').fill('UTC');
  for (const day of ['Sat', 'Sun']) {
    await hr.getByRole('checkbox', { name: day }).uncheck();
  }
  await hr.getByRole('button', { name: 'Save site' }).click();
  await hr.getByRole('status').filter({ hasText: 'Site REV saved' }).waitFor();
  await t.visit(hr, '/ui/people/edit');
  await hr.getByLabel('Code').fill('R1');
  await hr.getByLabel('Name').fill('Rita Review');
  await hr.getByLabel('Site').selectOption('REV');
  await hr.getByRole('button', { name: 'Save' }).click();
  await hr.getByRole('status').filter({ hasText: 'Employee R1 saved' }).waitFor();

  await terminal(t, sn, 'REV', [
    attlog('R1', forgot, '09:00:00', 0),
    attlog('R1', full, '09:00:00', 0),
    attlog('R1', full, '17:00:00', 1),
  ]);

  // The grid: the day without a check-out is present with an open exception.
  await t.visit(hr, `/ui/review?site=REV&month=${month}`, 'review');
  const open = hr.getByRole('link', { name: new RegExp(`^R1 ${forgot}: [a-z ]+, \\d+ open exceptions$`) });
  await open.waitFor();
  await hr.getByRole('link', { name: `R1 ${full}: present` }).waitFor();
  await t.shot(hr, 'review-grid', true);

  // The day: its punch with the raw line; a punch without a reason is refused beside the field.
  await open.click();
  await hr.getByText(new RegExp(`^R1\\s+${forgot} 09:00:00\\s+0\\s+1\\s+0\\s+0\\s+0$`)).waitFor();
  await hr.getByRole('heading', { name: /missing-out/ }).waitFor();
  await t.axe(hr, 'review day');
  await t.narrow(hr, 'review day');
  await t.shot(hr, 'review-day', true);
  const add = hr.locator('form').filter({ has: hr.getByRole('heading', { name: 'Add a punch' }) });
  await add.getByLabel('Time (site local)').fill(`${forgot}T17:30`);
  await add.getByLabel('Punch state').selectOption('1');
  await add.getByRole('button', { name: 'Add punch' }).click();
  await hr.getByText('say why (kept in the audit log)').waitFor();
  await t.axe(hr, 'review day with an error');
  const again = hr.locator('form').filter({ has: hr.getByRole('heading', { name: 'Add a punch' }) });
  await again.getByLabel('Reason').fill('badge forgotten at the gate');
  await again.getByRole('button', { name: 'Add punch' }).click();
  await hr.getByRole('status').filter({ hasText: /Correction #\d+ \(add-punch\) recorded/ }).waitFor();
  await hr.getByText('8:30').first().waitFor();
  await hr.getByRole('row').filter({ hasText: 'badge forgotten at the gate' }).waitFor();

  // Back to the grid: corrected, no open exception; sign the month off.
  await hr.goto(`${t.base}/ui/review?site=REV&month=${month}`);
  await hr.getByRole('link', { name: `R1 ${forgot}: present, corrected` }).waitFor();
  await hr.getByRole('button', { name: `Sign off REV ${month}` }).click();
  await hr.getByRole('status').filter({ hasText: `REV ${month} signed off` }).waitFor();
  await hr.getByText('signed off', { exact: true }).waitFor();
  await t.axe(hr, 'review signed off');
  await t.shot(hr, 'review-signed-off');

  // The XLSX download: sheet Grid, R1's row with the corrected day (`Pc`) and the full one (`P`).
  const [download] = await Promise.all([
    hr.waitForEvent('download'),
    hr.getByRole('link', { name: 'XLSX' }).click(),
  ]);
  assert.equal(download.suggestedFilename(), `attendance-REV-${month}.xlsx`);
  const sheets = readXlsx(readFileSync(await download.path()));
  assert.deepEqual(Object.keys(sheets), ['Grid', 'Exceptions']);
  const grid = sheets.Grid;
  assert.deepEqual(grid[0].slice(0, 3), ['code', 'name', '01']);
  const r1 = grid.find((row) => row[0] === 'R1');
  assert.ok(r1, `R1 in ${JSON.stringify(grid)}`);
  assert.equal(r1[1], 'Rita Review');
  const col = (date) => 1 + Number(date.slice(8, 10));
  assert.equal(r1[col(forgot)], 'Pc');
  assert.equal(r1[col(full)], 'P');
  const presentAt = grid[0].indexOf('present');
  assert.equal(r1[presentAt], '2');
  assert.equal(r1[grid[0].indexOf('worked h')], '16.5');

  // A signed-off month refuses a correction until reopened; reopening needs a reason.
  await hr.getByRole('button', { name: `Reopen ${month}` }).click();
  await hr.getByText('say why the month is reopened (kept in the audit log)').waitFor();
  await t.axe(hr, 'reopen with an error');
  await hr.getByLabel('Why reopen').fill('a late sick note');
  await hr.getByRole('button', { name: `Reopen ${month}` }).click();
  await hr.getByRole('status').filter({ hasText: `REV ${month} reopened` }).waitFor();

  // The reopened month: HR takes the added punch back (a reason is required); the day counts without it again
  // and the table says who revoked it and why.
  await t.visit(hr, `/ui/review/day?site=REV&month=${month}&employee=R1&date=${forgot}`);
  const added = () => hr.getByRole('row').filter({ hasText: 'badge forgotten at the gate' });
  await added().getByRole('button', { name: /^Revoke correction #\d+/ }).click();
  await hr.getByText('say why it is revoked (kept in the audit log)').waitFor();
  await t.axe(hr, 'revoke with an error');
  await added().getByLabel('Reason').fill('the badge log shows no exit');
  await added().getByRole('button', { name: /^Revoke correction #\d+/ }).click();
  await hr.getByRole('status').filter({ hasText: /Correction #\d+ \(add-punch\) revoked/ }).waitFor();
  await added().filter({ hasText: /revoked \d{4}-\d\d-\d\d \d\d:\d\d by ui:hilde: the badge log shows no exit/ }).waitFor();
  assert.equal(await added().getByRole('button').count(), 0);
  await hr.getByRole('heading', { name: /missing-out/ }).waitFor();
  await t.axe(hr, 'review day with a revoked correction');
  await hr.goto(`${t.base}/ui/review?site=REV&month=${month}`);
  await hr.getByRole('link', { name: new RegExp(`^R1 ${forgot}: [a-z ]+, \\d+ open exceptions$`) }).waitFor();

  // The audit log names HR for each change.
  await t.visit(hr, '/ui/audit', 'audit');
  for (const action of ['correction.revoke', 'reopen', 'signoff', 'correction.add']) {
    await hr.getByRole('row').filter({ hasText: 'ui:hilde' }).filter({ hasText: action }).first().waitFor();
  }

  // A viewer sees the month but no sign-off button, and a forged sign-off is refused.
  const viewer = await t.as('viewer');
  await t.visit(viewer, `/ui/review?site=REV&month=${month}`);
  assert.equal(await viewer.getByRole('button', { name: /Sign off/ }).count(), 0);
  const forged = await t.post(viewer, '/ui/review/signoff', { site: 'REV', month });
  assert.equal(forged.status, 403);
}
