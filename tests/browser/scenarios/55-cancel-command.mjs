// A queued command is cancelled from the terminal's page. The admin queues a restart for the terminal that is
// still pending (a pending terminal is answered UNKNOWN DEVICE, so the command stays queued); a viewer sees it
// in the queue without a Cancel button, and a forged cancel (with the viewer's CSRF token) is refused with 403.
// The admin cancels it; the list of recent commands shows it cancelled. axe on both views.
export default async function (t) {
  const sn = t.env('OTHER_SN');
  const admin = await t.as('admin');
  await admin.goto(`${t.base}/ui/terminals/${sn}`);
  await admin.getByLabel('Command', { exact: true }).selectOption('reboot');
  await Promise.all([admin.waitForURL(/follow=\d+/), admin.getByRole('button', { name: 'Send command' }).click()]);
  const id = admin.url().match(/follow=(\d+)/)[1];

  const viewer = await t.as('viewer');
  await t.visit(viewer, `/ui/terminals/${sn}`);
  await viewer.getByRole('table', { name: /Queued commands/ }).getByText('reboot').waitFor();
  t.assert.equal(await viewer.getByRole('button', { name: `Cancel command ${id}` }).count(), 0);
  const forged = await t.post(viewer, `/ui/terminals/${sn}/commands/${id}/cancel`, {});
  t.assert.equal(forged.status, 403, forged.text);
  t.assert.match(forged.text, /it needs scope operate/);
  // Nor may a viewer retry a sink: no button, and the forged POST is refused.
  await viewer.goto(`${t.base}/ui/delivery`);
  t.assert.equal(await viewer.getByRole('button', { name: /^Retry now/ }).count(), 0);
  const retry = await t.post(viewer, '/ui/delivery/action', { name: t.env('SINK'), action: 'retry' });
  t.assert.equal(retry.status, 403, retry.text);
  t.assert.match(retry.text, /it needs scope operate/);

  await admin.goto(`${t.base}/ui/terminals/${sn}`);
  await admin.getByRole('button', { name: `Cancel command ${id}` }).click();
  await admin.getByRole('status').filter({ hasText: `Command ${id} cancelled.` }).waitFor();
  await admin.getByRole('table', { name: /Recent commands/ }).getByRole('row').filter({ hasText: 'reboot' })
    .getByText('cancelled', { exact: true }).waitFor();
  t.assert.equal(await admin.getByRole('table', { name: /Queued commands/ }).count(), 0);
  await t.axe(admin, 'terminal with a cancelled command');
}
