// Helpers of the HR scenarios (people, review, delivery): a month whose days are all complete, a terminal that
// pushes punches as a real one would (registered, approved and put on a site through the UI), and an XLSX reader
// built on node:zlib (an XLSX file is a zip of XML parts), so the download is checked cell by cell.
//
// This directory holds no scenario: run.mjs runs only the *.mjs files directly in scenarios/.

import { inflateRawSync } from 'node:zlib';

/** `YYYY-MM` of the month `n` months before now (UTC). Two months back, every day is long complete. */
export function monthBack(n) {
  const d = new Date();
  d.setUTCDate(1);
  d.setUTCMonth(d.getUTCMonth() - n);
  return d.toISOString().slice(0, 7);
}

/** The `count` first Monday-to-Friday dates (`YYYY-MM-DD`) of a month from day 2 on. */
export function workdays(month, count) {
  const out = [];
  for (let day = 2; out.length < count && day <= 28; day++) {
    const d = new Date(`${month}-${String(day).padStart(2, '0')}T12:00:00Z`);
    if (d.getUTCDay() >= 1 && d.getUTCDay() <= 5) {
      out.push(d.toISOString().slice(0, 10));
    }
  }
  return out;
}

/** One ATTLOG line as a push terminal sends it: PIN, local time, punch state, verify mode, work code, … */
export function attlog(pin, date, time, state) {
  return `${pin}\t${date} ${time}\t${state}\t1\t0\t0\t0`;
}

/**
 * A push terminal `sn` on `site`: it greets the server (and waits for approval), an admin approves it and sets its
 * site and zone in the UI, then it uploads `lines` (ATTLOG) and polls once, as a terminal does. Returns the admin's
 * page (on the terminal's page).
 */
export async function terminal(t, sn, site, lines) {
  const greet = await fetch(`${t.base}/iclock/cdata?SN=${sn}&options=all&pushver=2.4.1&language=69`);
  t.assert.ok(greet.status < 500, `the greeting of ${sn} answered ${greet.status}`);
  const admin = await t.as('admin');
  await admin.goto(`${t.base}/ui/terminals/${sn}`);
  const approved = await t.post(admin, `/ui/terminals/${sn}/approve`, {});
  t.assert.ok(approved.status === 0 || approved.status < 400, `approving ${sn}: ${approved.status}`);
  await admin.goto(`${t.base}/ui/terminals/${sn}`);
  const set = await t.post(admin, `/ui/terminals/${sn}/settings`, {
    alias: `${site} door`, site, time_zone: 'UTC', poll_delay_secs: '10',
  });
  t.assert.ok(set.status === 0 || set.status < 400, `settings of ${sn}: ${set.status} ${set.text}`);
  const upload = await fetch(`${t.base}/iclock/cdata?SN=${sn}&table=ATTLOG&Stamp=1`, {
    method: 'POST',
    body: `${lines.join('\n')}\n`,
  });
  const reply = await upload.text();
  t.assert.equal(upload.status, 200, `ATTLOG upload of ${sn}: ${reply}`);
  t.assert.match(reply, new RegExp(`^OK:${lines.length}`), `ATTLOG upload of ${sn}`);
  await fetch(`${t.base}/iclock/getrequest?SN=${sn}`);
  // last_seen (the watermark) reaches the store with the next housekeeping pass (every 2 s).
  await new Promise((resolve) => setTimeout(resolve, 2500));
  return admin;
}

/** The files of a zip archive (stored or deflated entries), by name. */
export function unzip(buffer) {
  const files = {};
  // The end of central directory record: its signature within the last 64 KiB + 22 bytes.
  let eocd = -1;
  for (let i = buffer.length - 22; i >= Math.max(0, buffer.length - 65557); i--) {
    if (buffer.readUInt32LE(i) === 0x06054b50) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) {
    throw new Error('not a zip archive');
  }
  const entries = buffer.readUInt16LE(eocd + 10);
  let at = buffer.readUInt32LE(eocd + 16);
  for (let n = 0; n < entries; n++) {
    if (buffer.readUInt32LE(at) !== 0x02014b50) {
      throw new Error('bad central directory');
    }
    const method = buffer.readUInt16LE(at + 10);
    const compressed = buffer.readUInt32LE(at + 20);
    const nameLen = buffer.readUInt16LE(at + 28);
    const extraLen = buffer.readUInt16LE(at + 30);
    const commentLen = buffer.readUInt16LE(at + 32);
    const local = buffer.readUInt32LE(at + 42);
    const name = buffer.toString('utf8', at + 46, at + 46 + nameLen);
    const dataAt = local + 30 + buffer.readUInt16LE(local + 26) + buffer.readUInt16LE(local + 28);
    const data = buffer.subarray(dataAt, dataAt + compressed);
    files[name] = method === 0 ? Buffer.from(data) : inflateRawSync(data);
    at += 46 + nameLen + extraLen + commentLen;
  }
  return files;
}

function xmlText(s) {
  return s.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"').replace(/&apos;/g, "'")
    .replace(/&amp;/g, '&');
}

/** Column letters → 0-based index (`A` 0, `AA` 26). */
function column(letters) {
  let n = 0;
  for (const c of letters) {
    n = n * 26 + (c.charCodeAt(0) - 64);
  }
  return n - 1;
}

/** The sheets of an XLSX file as `{ name: rows }`, each row an array of cell texts (numbers as written). */
export function readXlsx(buffer) {
  const files = unzip(buffer);
  const text = (name) => (files[name] ? files[name].toString('utf8') : '');
  const shared = [...text('xl/sharedStrings.xml').matchAll(/<si>([\s\S]*?)<\/si>/g)]
    .map((m) => xmlText([...m[1].matchAll(/<t[^>]*>([\s\S]*?)<\/t>/g)].map((t) => t[1]).join('')));
  const rels = Object.fromEntries([...text('xl/_rels/workbook.xml.rels').matchAll(/<Relationship [^>]*>/g)]
    .map((m) => [m[0].match(/Id="([^"]+)"/)[1], m[0].match(/Target="([^"]+)"/)[1]]));
  const sheets = {};
  for (const m of text('xl/workbook.xml').matchAll(/<sheet [^>]*>/g)) {
    const name = xmlText(m[0].match(/name="([^"]+)"/)[1]);
    const target = rels[m[0].match(/r:id="([^"]+)"/)[1]].replace(/^\/?(xl\/)?/, 'xl/');
    const rows = [];
    for (const row of text(target).matchAll(/<row [^>]*>([\s\S]*?)<\/row>/g)) {
      const cells = [];
      for (const c of row[1].matchAll(/<c ([^>]*?)(?:\/>|>([\s\S]*?)<\/c>)/g)) {
        const ref = c[1].match(/r="([A-Z]+)\d+"/)[1];
        const type = (c[1].match(/t="([^"]+)"/) || [])[1];
        const inner = c[2] || '';
        const v = (inner.match(/<v>([\s\S]*?)<\/v>/) || [])[1];
        let value = '';
        if (type === 's') {
          value = shared[Number(v)];
        } else if (type === 'inlineStr') {
          value = xmlText([...inner.matchAll(/<t[^>]*>([\s\S]*?)<\/t>/g)].map((t) => t[1]).join(''));
        } else if (v !== undefined) {
          value = xmlText(v);
        }
        cells[column(ref)] = value;
      }
      rows.push(Array.from(cells, (x) => (x === undefined ? '' : x)));
    }
    sheets[name] = rows;
  }
  return sheets;
}
