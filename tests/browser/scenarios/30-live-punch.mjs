// A punch from the terminal just approved appears on the live page while it is open (server-sent events).
export default async function (t) {
  const sn = t.env('PENDING_SN');
  const page = await t.as('viewer');
  await t.visit(page, `/ui/live?device=${sn}`);
  await page.getByText('Connected: new punches appear at the top.').waitFor();
  // The simulator sends a batch every second or so; a new row for this terminal arrives without a reload (only
  // rows added by the event stream are marked `fresh`).
  await page.locator('#live tbody tr.fresh').filter({ hasText: sn }).first().waitFor({ timeout: 45000 });
  const rows = await page.locator('#live tbody tr').count();
  t.assert.ok(rows <= 200, `the page keeps at most 200 rows, has ${rows}`);
  await t.axe(page, 'live punches');
  await t.shot(page, 'live');
}
