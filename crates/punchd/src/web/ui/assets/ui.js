// punchd web UI: progressive enhancement only. Pages work without this file, except that the live feed
// then shows what was there when the page loaded. No inline scripts anywhere (CSP script-src 'self').
(function () {
  'use strict';

  // Forms with data-confirm ask before they post (block a terminal, clear its log, ...).
  document.addEventListener('submit', function (ev) {
    var form = ev.target;
    var question = form.getAttribute && form.getAttribute('data-confirm');
    if (question && !window.confirm(question)) { ev.preventDefault(); }
  });

  function cell(row, text, cls) {
    var td = document.createElement('td');
    td.textContent = text == null ? '' : String(text);
    if (cls) { td.className = cls; }
    row.appendChild(td);
  }

  // The live feed: <table data-live-events="URL" data-live-max="N">; the server sends at most one message
  // per 250 ms with every event since the last one, and the table keeps the newest N rows: only those of a
  // message are built, older rows are removed, so the page's memory stays flat at any rate. The table's
  // data-live-received attribute counts the punches announced so far (shown or dropped), for
  // scripts/bench/live-feed.sh.
  function liveFeed(table) {
    var url = table.getAttribute('data-live-events');
    var max = parseInt(table.getAttribute('data-live-max') || '200', 10);
    var body = table.querySelector('tbody');
    var status = document.getElementById('live-status');
    var empty = document.getElementById('live-empty');
    if (!url || !body || typeof EventSource === 'undefined') { return; }
    var source = new EventSource(url);
    var received = 0;
    var say = function (text) { if (status) { status.textContent = text; } };
    source.addEventListener('open', function () { say('Connected: new punches appear at the top.'); });
    source.addEventListener('error', function () { say('Connection lost; reconnecting…'); });
    source.addEventListener('punches', function (ev) {
      var data;
      try { data = JSON.parse(ev.data); } catch (e) { return; }
      var fresh = body.querySelectorAll('tr.fresh');
      for (var i = 0; i < fresh.length; i++) { fresh[i].classList.remove('fresh'); }
      var rows = data.punches || [];
      received += rows.length + (data.dropped || 0);
      table.setAttribute('data-live-received', String(received));
      var frag = document.createDocumentFragment();
      var oldest = Math.max(0, rows.length - max);
      for (var j = rows.length - 1; j >= oldest; j--) {
        var p = rows[j];
        var tr = document.createElement('tr');
        tr.className = 'fresh';
        cell(tr, p.punched_at);
        cell(tr, p.who);
        cell(tr, p.pin);
        cell(tr, p.state);
        cell(tr, p.verify);
        cell(tr, p.device);
        cell(tr, p.site);
        frag.appendChild(tr);
      }
      body.insertBefore(frag, body.firstChild);
      while (body.rows.length > max) { body.deleteRow(body.rows.length - 1); }
      if (empty && body.rows.length > 0) { empty.hidden = true; table.hidden = false; }
      if (data.dropped) { say(data.dropped + ' punches were too many to show; the table shows the newest.'); }
    });
    source.addEventListener('presence', function (ev) {
      var data;
      try { data = JSON.parse(ev.data); } catch (e) { return; }
      say(data.text || '');
    });
  }

  // A command's result: <div data-follow="URL">; URL answers {"done": bool}; when done, reload to show it.
  function follow(el) {
    var url = el.getAttribute('data-follow');
    var tries = 0;
    var tick = function () {
      tries++;
      fetch(url, { credentials: 'same-origin', headers: { 'Accept': 'application/json' } })
        .then(function (r) { return r.ok ? r.json() : { done: false }; })
        .then(function (d) {
          if (d.done) { window.location.reload(); } else if (tries < 150) { window.setTimeout(tick, 2000); }
        })
        .catch(function () { if (tries < 150) { window.setTimeout(tick, 4000); } });
    };
    window.setTimeout(tick, 1000);
  }

  document.addEventListener('DOMContentLoaded', function () {
    var live = document.querySelectorAll('table[data-live-events]');
    for (var i = 0; i < live.length; i++) { liveFeed(live[i]); }
    var followed = document.querySelectorAll('[data-follow]');
    for (var j = 0; j < followed.length; j++) { follow(followed[j]); }
  });
})();
