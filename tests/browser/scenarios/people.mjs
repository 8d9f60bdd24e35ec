// People and the unmapped queue (issue 11): HR adds a site, imports employees from a CSV file (a bad row is
// reported by number), sees a terminal's PIN in the unmapped queue, maps it to an employee with one click — and
// the employee's day, absent before, is present in the month grid right after. A second PIN creates its
// employee in the same click. Forms refuse bad input beside the field. axe and 375 px on every page.
import { monthBack, workdays, attlog, terminal } from './lib/hr.mjs';

export default async function (t) {
  const { assert } = t;
  const month = monthBack(2);
  const [day] = workdays(month, 1);
  const sn = 'UIPPL0001';

  // A site, through its form: a zone that does not exist is refused beside the field.
  const hr = await t.as('hr');
  await t.visit(hr, '/ui/sites');
  await hr.getByLabel('Name', { exact: true }).fill('PPL');
  await hr.getByLabel('Time zone').fill('Mars/Base');
  await hr.getByRole('button', { name: 'Save site' }).click();
  await hr.locator('.field.invalid').filter({ hasText: 'is not an IANA zone' }).waitFor();
  await t.axe(hr, 'site form with an error');
  await hr.getByLabel('Time zone').fill('UTC');
  await hr.getByRole('button', { name: 'Save site' }).click();
  await hr.getByRole('status').filter({ hasText: 'Site PPL saved' }).waitFor();
  await t.shot(hr, 'sites');

  // A terminal on the site; PIN 4711 punches in and out on a working day, PIN 4712 once.
  await terminal(t, sn, 'PPL', [
    attlog('4711', day, '08:55:00', 0),
    attlog('4711', day, '17:05:00', 1),
    attlog('4712', day, '09:10:00', 0),
  ]);

  // Employees from a file: one good row, one naming a site that does not exist.
  await t.visit(hr, '/ui/people');
  await hr.locator('#f-file').setInputFiles({
    name: 'people.csv',
    mimeType: 'text/csv',
    buffer: Buffer.from('code,name,site,department\nP100,Paula Import,PPL,Stores\nP101,Bad Site,NOPE,Stores\n'),
  });
  await hr.getByRole('button', { name: 'Import' }).click();
  await hr.getByRole('status').filter({ hasText: '1 employees imported (1 good rows), 1 bad rows.' }).waitFor();
  await hr.getByRole('row').filter({ hasText: 'site "NOPE" is unknown' }).filter({ hasText: '3' }).waitFor();
  await t.axe(hr, 'import report');
  await t.narrow(hr, 'import report');
  await t.shot(hr, 'people-import', true);

  // Before the mapping, P100's day is absent: the punches belong to nobody.
  const cell = (status) => hr.getByRole('link', { name: `P100 ${day}: ${status}` });
  await hr.goto(`${t.base}/ui/review?site=PPL&month=${month}&q=P100`);
  await cell('absent').waitFor();

  // The unmapped queue: a code that does not exist (and no name) is refused beside the field.
  await t.visit(hr, '/ui/unmapped');
  const row = hr.getByRole('row').filter({ hasText: sn }).filter({ hasText: '4711' });
  await row.getByRole('cell', { name: '2', exact: true }).waitFor();
  await row.getByLabel('Employee code').fill('NOPE');
  await row.getByRole('button', { name: `Map PIN 4711 on ${sn}` }).click();
  await hr.getByText('no employee NOPE; give a name to create one, or an existing code').waitFor();
  await t.axe(hr, 'unmapped with an error');
  await t.shot(hr, 'unmapped');

  // One click maps it; the flash counts the punches that now count.
  const again = hr.getByRole('row').filter({ hasText: sn }).filter({ hasText: '4711' });
  await again.getByLabel('Employee code').fill('P100');
  await again.getByRole('button', { name: `Map PIN 4711 on ${sn}` }).click();
  await hr.getByRole('status').filter({ hasText: 'PIN 4711 on site PPL → employee P100: 2 stored punches now count' }).waitFor();
  assert.equal(await hr.getByRole('row').filter({ hasText: sn }).filter({ hasText: '4711' }).count(), 0);

  // The second PIN creates its employee in the same click.
  const second = hr.getByRole('row').filter({ hasText: sn }).filter({ hasText: '4712' });
  await second.getByLabel('Employee code').fill('P4712');
  await second.getByLabel('Name, to create a new employee').fill('Pia New');
  await second.getByRole('button', { name: `Map PIN 4712 on ${sn}` }).click();
  await hr.getByRole('status').filter({ hasText: 'employee P4712 created; PIN 4712 on site PPL → employee P4712: 1 stored punches now count' }).waitFor();

  // The day is recomputed: present, 8:10 worked.
  await hr.goto(`${t.base}/ui/review?site=PPL&month=${month}&q=P100`);
  await cell('present').waitFor();
  await t.axe(hr, 'review after the mapping');
  await t.shot(hr, 'review-after-mapping');
  await cell('present').click();
  await hr.getByText('8:10').first().waitFor();

  // The mapping is listed; P100's page shows it; a bad edit is refused beside its field.
  await t.visit(hr, '/ui/mappings', 'mappings');
  await hr.getByRole('row').filter({ hasText: '4711' }).filter({ hasText: 'P100' }).waitFor();
  await t.visit(hr, '/ui/people/edit?code=P100');
  await hr.getByLabel('Status').selectOption('left');
  await hr.getByRole('button', { name: 'Save' }).click();
  await hr.getByText('an employee who left needs the last working day').waitFor();
  await t.axe(hr, 'employee form with an error');
  await hr.getByLabel('Status').selectOption('active');
  await hr.getByLabel('Department').fill('Logistics');
  await hr.getByRole('button', { name: 'Save' }).click();
  await hr.getByRole('status').filter({ hasText: 'Employee P100 saved' }).waitFor();
  await t.shot(hr, 'employee', true);
  await t.visit(hr, '/ui/people?q=logist', 'people');
  await hr.getByRole('link', { name: 'P100' }).waitFor();

  // Shifts, the roster and the policy preview.
  await t.visit(hr, '/ui/shifts');
  await hr.getByLabel('Name', { exact: true }).fill('Early');
  await hr.getByLabel('Start', { exact: true }).fill('06:00');
  await hr.getByLabel('End', { exact: true }).fill('06:00');
  await hr.getByRole('button', { name: 'Save shift' }).click();
  await hr.getByText('starts and ends at the same time').waitFor();
  await t.axe(hr, 'shift form with an error');
  await hr.getByLabel('End', { exact: true }).fill('14:00');
  await hr.getByLabel('Grace in (min)').fill('10');
  await hr.getByRole('button', { name: 'Save shift' }).click();
  await hr.getByRole('status').filter({ hasText: 'Shift Early saved' }).waitFor();
  await t.shot(hr, 'shifts', true);
  await t.visit(hr, `/ui/roster?month=${month}`, 'roster');
  await t.visit(hr, `/ui/policy?preview=1&scope=site&scope_key=PPL&policy=first-last&site=PPL&month=${month}`, 'policy-preview');
  await hr.getByRole('heading', { name: new RegExp(`Preview: first-last instead of device on PPL ${month}`) }).waitFor();
}
