// A punch from the terminal just approved appears on the live page while it is open (server-sent events).
export default async function (t) {
  const sn = t.env('PENDING_SN');
  const page = await t.as('viewer');
  await t.visit(page, `/ui/live?device=${sn}`);
  await page.getByText('Connected: new punches appear at the top.').waitFor();
  const rowsBefore = await page.locator('#live tbody tr').count();
  // The simulator sends a batch every second or so; a new row for this terminal arrives without a reload.
  await page.locator('#live tbody tr.fresh').filter({ hasText: sn }).first().waitFor({ timeout: 30000 });
  const rowsAfter = await page.locator('#live tbody tr').count();
  t.assert.ok(rowsAfter > rowsBefore, `rows ${rowsBefore} → ${rowsAfter}`);
  t.assert.ok(rowsAfter <= 200, `the page keeps at most 200 rows, has ${rowsAfter}`);
  await t.axe(page, 'live punches');
  await t.shot(page, 'live');
}
