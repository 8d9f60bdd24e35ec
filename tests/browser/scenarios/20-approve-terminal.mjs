// An admin approves a pending terminal (a simulated push terminal that registered under manual approval).
export default async function (t) {
  const sn = t.env('PENDING_SN');
  const page = await t.as('admin');
  await t.visit(page, '/ui', 'dashboard');
  await page.getByRole('link', { name: /waiting for approval/ }).click();
  await page.waitForURL(/state=pending/);
  const row = page.getByRole('row').filter({ hasText: sn });
  await row.getByText('pending').waitFor();
  await t.axe(page, 'terminals (pending)');
  await Promise.all([page.waitForURL(new RegExp(`/ui/terminals/${sn}$`)), row.getByRole('button', { name: 'Approve' }).click()]);
  await page.getByRole('status').filter({ hasText: `Terminal ${sn} approved` }).waitFor();
  await page.getByText('approved', { exact: true }).first().waitFor();
  await t.axe(page, 'terminal page');
  await t.narrow(page, 'terminal page');
  await t.shot(page, 'terminal', true);
}
