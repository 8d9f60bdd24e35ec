// Accounts (admin only): a form error beside its field, then the admin adds an HR account that signs in with
// its new password. A viewer has no Accounts link and is refused the page and a forged POST (403). The Rust
// test then checks the account in the store and the audit log. axe and 375 px on the accounts pages.
export default async function (t) {
  const admin = await t.as('admin');
  await t.visit(admin, '/ui/accounts', 'accounts');
  await admin.getByLabel('Name', { exact: true }).fill('hanna');
  await admin.getByLabel('Role', { exact: true }).selectOption('hr');
  await admin.getByLabel('Initial password', { exact: true }).fill('short');
  await admin.getByLabel('Password again', { exact: true }).fill('short');
  await admin.getByRole('button', { name: 'Add account' }).click();
  await admin.locator('#f-password-error').filter({ hasText: 'at least 10 characters' }).waitFor();
  t.assert.equal(await admin.getByLabel('Initial password', { exact: true }).getAttribute('aria-invalid'), 'true');
  await t.axe(admin, 'accounts form with an error');

  await admin.getByLabel('Initial password', { exact: true }).fill('hanna-hr-password');
  await admin.getByLabel('Password again', { exact: true }).fill('hanna-hr-password');
  await Promise.all([admin.waitForURL(/\/ui\/accounts\/hanna$/), admin.getByRole('button', { name: 'Add account' }).click()]);
  await admin.getByRole('status').filter({ hasText: 'Account hanna (hr) added.' }).waitFor();
  await t.axe(admin, '/ui/accounts/hanna');
  await t.narrow(admin, '/ui/accounts/hanna');
  await t.shot(admin, 'account');

  const hanna = await t.page();
  await hanna.goto(`${t.base}/ui/login`);
  await hanna.getByLabel('Account name').fill('hanna');
  await hanna.getByLabel('Password').fill('hanna-hr-password');
  await Promise.all([hanna.waitForURL(/\/ui\/?$/), hanna.getByRole('button', { name: 'Sign in' }).click()]);
  await hanna.getByText('(hr)').waitFor();

  const viewer = await t.as('viewer');
  t.assert.equal(await viewer.getByRole('navigation', { name: 'Sections' }).getByRole('link', { name: 'Accounts' }).count(), 0);
  // The forged POST carries the viewer's own CSRF token (from the dashboard's sign-out form).
  const forged = await t.post(viewer, '/ui/accounts',
    { name: 'eve', role: 'admin', password: 'eve-admin-password', password2: 'eve-admin-password' });
  t.assert.equal(forged.status, 403, forged.text);
  t.assert.match(forged.text, /it needs scope admin/);
  const page = await viewer.goto(`${t.base}/ui/accounts`);
  t.assert.equal(page.status(), 403);
}
