#!/usr/bin/env bash
# Issue 6, load-independent: the user-space instructions punchd spends per push request, counted by callgrind over
# a whole `punchd serve` (HTTP workers, SQLite writer, checkpointer) under a devload scenario. On a shared VM whose
# CPU time per request varies by ±15 % from run to run, this is the figure that tells two builds apart; it does
# not count the kernel's work (sockets, WAL writes, fsync), so it complements the CPU µs of guarantee-costs.sh.
#
#   scripts/bench/instructions-per-request.sh SCENARIO NAME:BINARY...
#     SCENARIO  attlog1 | attlog10 | attlog100 (punches per POST; common.sh devload_args)
#
# Prints per variant: requests acknowledged (the 50 handshakes included), instructions per request, and per
# punch. The server runs under valgrind (≈ 50× slower), so groups of the SQLite writer are larger than at full
# speed; compare variants within one run of this script, not with the CPU µs of the other scripts. Needs valgrind
# and devload (side-by-side.sh).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
. "$here/common.sh"
SCENARIO=$1
shift
DEVLOAD=${DEVLOAD:-/tmp/benchsrc/devload/target/release/devload}
WORK=${WORK:-/tmp/punchd-instructions}
PORT=${PORT:-18092}
SECONDS_LOAD=${SECONDS_LOAD:-20}
mkdir -p "$WORK"
printf '[limits]\nnew_sns_per_address_per_minute = 100000\n' >"$WORK/bench.toml"
load=$(devload_args "$SCENARIO")
for variant in "$@"; do
    name=${variant%%:*}
    bin=${variant#*:}
    rm -f "$WORK"/db* "$WORK/cg-$name.out"
    valgrind --tool=callgrind --callgrind-out-file="$WORK/cg-$name.out" "$bin" --config "$WORK/bench.toml" serve \
        --listen "127.0.0.1:$PORT" --database "$WORK/db" --durability crash-safe >"$WORK/server.log" 2>&1 &
    pid=$!
    wait_listening "$PORT" "$pid" "$WORK/server.log" 60 # valgrind starts slowly
    sleep 1
    callgrind_control --zero "$pid" >/dev/null 2>&1 # start-up (migrations, caches) is not the requests' cost
    # shellcheck disable=SC2086
    "$DEVLOAD" --url "http://127.0.0.1:$PORT" --threads 1 --duration "$SECONDS_LOAD" --progress 0 \
        --json "$WORK/load.json" $load >"$WORK/load.out" 2>&1
    kill -TERM "$pid"
    wait "$pid" 2>/dev/null || true
    python3 - "$WORK/load.json" "$WORK/cg-$name.out" "$name" <<'PY'
import json, re, sys
load, cg, name = sys.argv[1:4]
r = json.load(open(load))
total = 0
for line in open(cg):
    m = re.match(r"(summary|totals):\s+(\d+)", line)
    if m:
        total = int(m.group(2))
req = max(r["requests"], 1)
punches = max(r["records_acked_per_s"] * r["elapsed_s"], 1)
print(f"{name}\trequests {r['requests']}\tinstructions/req {total / req:,.0f}\tinstructions/punch {total / punches:,.0f}"
      f"\terrors {r['non_ok']}/{r['errors']}")
PY
done
