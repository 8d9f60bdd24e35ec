// An admin sends a command with a field error first (beside the field), then a valid one, and follows it to
// its result.
export default async function (t) {
  const sn = t.env('PENDING_SN');
  const page = await t.as('admin');
  await page.goto(`${t.base}/ui/terminals/${sn}`);
  await page.getByLabel('Command', { exact: true }).selectOption('delete_user');
  await page.getByRole('button', { name: 'Send command' }).click();
  await page.getByText('this command needs the user\'s PIN').waitFor();
  t.assert.equal(await page.getByLabel('PIN').getAttribute('aria-invalid'), 'true');
  await t.axe(page, 'command form with an error');

  await page.getByLabel('Command', { exact: true }).selectOption('fetch_info');
  await Promise.all([page.waitForURL(/follow=\d+/), page.getByRole('button', { name: 'Send command' }).click()]);
  await page.getByRole('status').filter({ hasText: /Command \d+ queued/ }).waitFor();
  // The simulated terminal answers on its next poll; the page reloads itself with the result.
  await page.getByRole('row').filter({ hasText: 'fetch_info' }).getByText('succeeded').waitFor({ timeout: 30000 });
}
