// Delivery and sources (issue 11): a webhook sink (made by the Rust driver with `punchd sinks add`) points at a
// receiver this scenario runs. Check-ins the sink cannot deliver (no receiver yet, then HTTP 422 from it) are
// parked with the reason; the page shows them. The receiver is fixed, an admin presses "Retry now", and the parked events are
// delivered. HR and viewers see the page without its buttons. axe and 375 px on every page.
import { createServer } from 'node:http';

async function until(what, check, seconds = 40) {
  const end = Date.now() + seconds * 1000;
  for (;;) {
    if (await check()) {
      return;
    }
    if (Date.now() > end) {
      throw new Error(`timed out waiting for ${what}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

export default async function (t) {
  const { assert } = t;
  const port = Number(t.env('HOOK_PORT'));
  const sink = t.env('SINK');
  let accept = false;
  let received = 0;
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk) => { body += chunk; });
    req.on('end', () => {
      if (accept) {
        received += JSON.parse(body).checkins.length;
        res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
      } else {
        res.writeHead(422, { 'content-type': 'application/json' }).end('{"error":"employee unknown here"}');
      }
    });
  });
  await new Promise((resolve) => server.listen(port, '127.0.0.1', resolve));
  try {
    const admin = await t.as('admin');
    const parkedCount = async () => {
      await admin.goto(`${t.base}/ui/delivery/sink?name=${encodeURIComponent(sink)}`);
      const text = await admin.locator('dl.facts').textContent();
      return Number((text.match(/Parked\s*(\d+)/) || [])[1] || 0);
    };
    // The simulated terminal approved earlier keeps punching: its check-ins are refused and parked.
    await until('parked events', async () => (await parkedCount()) > 0);
    // Oldest first: check-ins that failed while no receiver listened gave up; later ones the receiver rejected.
    await admin.getByRole('row').filter({ hasText: /rejected|gave up/ }).first().waitFor();
    await t.axe(admin, 'sink with parked events');
    await t.narrow(admin, 'sink with parked events');
    await t.shot(admin, 'sink-parked');
    await t.visit(admin, '/ui/delivery', 'delivery');
    await admin.getByRole('row').filter({ hasText: sink }).getByText('webhook').waitFor();

    // Fixed receiver, one click: the parked events go again and arrive.
    accept = true;
    await admin.getByRole('button', { name: `Retry now ${sink}` }).click();
    await admin.getByRole('status').filter({ hasText: new RegExp(`Sink ${sink}: [1-9]\\d* events set to go now`) }).waitFor();
    await until('parked events delivered', async () => (await parkedCount()) === 0 && received > 0);

    // Pause and resume, as `punchd sinks pause|resume`.
    await admin.getByRole('button', { name: `Pause ${sink}` }).click();
    await admin.getByRole('status').filter({ hasText: `Sink ${sink} paused` }).waitFor();
    await admin.getByText('paused', { exact: true }).waitFor();
    await admin.getByRole('button', { name: `Resume ${sink}` }).click();
    await admin.getByRole('status').filter({ hasText: `Sink ${sink} resumed` }).waitFor();

    // HR reads the page without buttons; a forged retry is refused (it needs scope operate).
    const hr = await t.as('hr');
    await t.visit(hr, '/ui/delivery');
    assert.equal(await hr.getByRole('button', { name: `Retry now ${sink}` }).count(), 0);
    const forged = await t.post(hr, '/ui/delivery/action', { name: sink, action: 'retry' });
    assert.equal(forged.status, 403);

    await t.visit(admin, '/ui/sources', 'sources');
  } finally {
    await new Promise((resolve) => server.close(resolve));
  }
}
