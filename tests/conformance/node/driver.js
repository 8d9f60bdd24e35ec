#!/usr/bin/env node
// Reads a pull terminal with an unmodified Node client, as its users do: free sizes, users, the attendance
// log, free sizes again (a reply left over from the bulk reads would answer this one and show as wrong
// counts). Prints one line `NODE_ZK_JSON {...}` with counts and the first and last records, normalised so
// the Rust test (crates/zk-sim/tests/it/node.rs) can compare them with the simulator's model.
//
//   node driver.js --client node-zklib|zkteco-js --transport tcp|udp --port N [--host 127.0.0.1]
//                  [--timeout-ms 10000] [--inport N]
//
// TCP goes through each library's main class (which tries TCP first, as users call it); UDP through the
// library's UDP class directly (its TCP-to-UDP fallback only triggers on a refused TCP connection).
// Times are the terminal's wall-clock time: the libraries build a local-time Date from it, so run with TZ=UTC
// or read the local fields, as done here. Exit 0 when every step ran, 1 when one threw, 2 when the library is
// not installed (npm ci in this folder).
'use strict';

const MARKER = 'NODE_ZK_JSON ';

function args() {
  const out = { host: '127.0.0.1', timeoutMs: 10000, inport: 0, client: null, transport: 'tcp', port: 4370 };
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i += 2) {
    const [key, value] = [argv[i], argv[i + 1]];
    switch (key) {
      case '--client': out.client = value; break;
      case '--transport': out.transport = value; break;
      case '--host': out.host = value; break;
      case '--port': out.port = Number(value); break;
      case '--timeout-ms': out.timeoutMs = Number(value); break;
      case '--inport': out.inport = Number(value); break;
      default: throw new Error(`unknown argument ${key}`);
    }
  }
  if (!['node-zklib', 'zkteco-js'].includes(out.client)) throw new Error('--client node-zklib|zkteco-js');
  if (!['tcp', 'udp'].includes(out.transport)) throw new Error('--transport tcp|udp');
  return out;
}

function pad(n, width = 2) {
  return String(n).padStart(width, '0');
}

// The terminal's wall-clock time as the library decoded it (a Date built from local fields, or its
// toString()).
function wallClock(value) {
  const d = value instanceof Date ? value : new Date(value);
  if (Number.isNaN(d.getTime())) return String(value);
  return `${pad(d.getFullYear(), 4)}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

function user(u) {
  if (!u) return null;
  const out = { uid: u.uid, user_id: String(u.userId), name: u.name, role: u.role };
  if (u.cardno !== undefined) out.card = u.cardno;
  if (u.password !== undefined) out.password = u.password;
  return out;
}

function record(r) {
  if (!r) return null;
  const out = {
    user_id: String(r.deviceUserId !== undefined ? r.deviceUserId : r.user_id),
    time: wallClock(r.recordTime !== undefined ? r.recordTime : r.record_time),
  };
  if (r.userSn !== undefined) out.uid = r.userSn;
  if (r.sn !== undefined) out.uid = r.sn;
  // zkteco-js names byte 26 `type` and byte 31 `state`: pyzk's status and punch (pull.md §8.3).
  if (r.type !== undefined) out.status = r.type;
  if (r.state !== undefined) out.punch = r.state;
  return out;
}

function errorText(err) {
  if (!err) return null;
  if (err.err) return errorText(err.err);
  return err.message || String(err);
}

function open(opts) {
  const udp = opts.transport === 'udp';
  if (opts.client === 'node-zklib') {
    if (udp) {
      const ZKLibUDP = require('node-zklib/zklibudp');
      const zk = new ZKLibUDP(opts.host, opts.port, opts.timeoutMs, opts.inport);
      return { zk, connect: async () => { await zk.createSocket(); await zk.connect(); } };
    }
    const ZKLib = require('node-zklib');
    const zk = new ZKLib(opts.host, opts.port, opts.timeoutMs, opts.inport);
    return { zk, connect: () => zk.createSocket() };
  }
  if (udp) {
    const ZUDP = require('zkteco-js/src/zudp');
    const zk = new ZUDP(opts.host, opts.port, opts.timeoutMs, opts.inport);
    return { zk, connect: async () => { await zk.createSocket(); await zk.connect(); } };
  }
  const Zkteco = require('zkteco-js');
  const zk = new Zkteco(opts.host, opts.port, opts.timeoutMs, opts.inport);
  return { zk, connect: () => zk.createSocket() };
}

async function main() {
  const opts = args();
  const summary = { ok: false, client: opts.client, transport: opts.transport, timings_ms: {} };
  const step = async (name, f) => {
    summary.step = name;
    const started = Date.now();
    const value = await f();
    summary.timings_ms[name] = Date.now() - started;
    return value;
  };
  let client;
  try {
    client = open(opts);
  } catch (err) {
    if (err.code === 'MODULE_NOT_FOUND') {
      console.log(MARKER + JSON.stringify({ ok: false, error: `not installed: ${err.message}` }));
      process.exit(2);
    }
    throw err;
  }
  const { zk, connect } = client;
  try {
    await step('connect', connect);
    summary.info_before = await step('info_before', () => zk.getInfo());
    const users = await step('users', () => zk.getUsers());
    summary.users = {
      count: users.data.length,
      first: user(users.data[0]),
      last: user(users.data[users.data.length - 1]),
      error: errorText(users.err),
    };
    const logs = await step('attendance', () => zk.getAttendances());
    summary.attendance = {
      count: logs.data.length,
      first: record(logs.data[0]),
      last: record(logs.data[logs.data.length - 1]),
      error: errorText(logs.err),
    };
    summary.info_after = await step('info_after', () => zk.getInfo());
    await step('disconnect', () => zk.disconnect());
    summary.ok = true;
    delete summary.step;
  } catch (err) {
    summary.error = errorText(err);
  }
  console.log(MARKER + JSON.stringify(summary));
  process.exit(summary.ok ? 0 : 1);
}

main().catch((err) => {
  console.log(MARKER + JSON.stringify({ ok: false, error: String(err && err.stack || err) }));
  process.exit(1);
});
