// A viewer sees a terminal but may not send it a command: the form is disabled, and a forged POST (with the
// viewer's own CSRF token) is answered 403. The Rust test then checks that no command was queued.
export default async function (t) {
  const sn = t.env('PENDING_SN');
  const page = await t.as('viewer');
  await t.visit(page, `/ui/terminals/${sn}`);
  await page.getByText('Sending commands needs role admin').waitFor();
  t.assert.ok(await page.getByRole('button', { name: 'Send command' }).isDisabled());
  t.assert.equal(await page.getByRole('button', { name: 'Approve' }).count(), 0);
  const forged = await t.post(page, `/ui/terminals/${sn}/commands`, { kind: 'reboot' });
  t.assert.equal(forged.status, 403, forged.text);
  t.assert.match(forged.text, /your role \(viewer\) may not do this: it needs scope operate/);
  // Without the CSRF token even an admin's POST is refused.
  const admin = await t.as('admin');
  await admin.goto(`${t.base}/ui/terminals/${sn}`);
  const noToken = await admin.evaluate(async (path) => {
    const r = await fetch(path, { method: 'POST', body: new URLSearchParams({ kind: 'reboot' }) });
    return r.status;
  }, `/ui/terminals/${sn}/commands`);
  t.assert.equal(noToken, 403);
}
