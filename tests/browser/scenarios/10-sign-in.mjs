// Sign in and out; a wrong password is refused with the message beside the field; pages need a session.
export default async function (t) {
  const page = await t.page();
  // Without a session every page leads to sign-in, and back after it.
  await page.goto(`${t.base}/ui/terminals`);
  t.assert.match(page.url(), /\/ui\/login\?next=%2Fui%2Fterminals$/);
  await t.axe(page, 'sign-in');
  await t.narrow(page, 'sign-in');
  await t.shot(page, 'sign-in');

  const admin = t.accounts.admin;
  await page.getByLabel('Account name').fill(admin.name);
  await page.getByLabel('Password').fill('not the password');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByText('the account name or password is wrong').waitFor();
  t.assert.equal(await page.getByLabel('Password').getAttribute('aria-invalid'), 'true');
  await t.axe(page, 'sign-in with an error');

  await page.getByLabel('Password').fill(admin.password);
  await Promise.all([page.waitForURL(/\/ui\/terminals$/), page.getByRole('button', { name: 'Sign in' }).click()]);
  await page.getByRole('status').filter({ hasText: `Signed in as ${admin.name}` }).waitFor();
  // The cookie is HttpOnly and SameSite=Lax.
  const cookie = (await page.context().cookies()).find((c) => c.name === 'pd_session');
  t.assert.ok(cookie && cookie.httpOnly && cookie.sameSite === 'Lax', JSON.stringify(cookie));

  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.waitForURL(/\/ui\/login$/);
  await page.goto(`${t.base}/ui`);
  t.assert.match(page.url(), /\/ui\/login$/);
}
