#!/usr/bin/env bash
# Issue 6, "close the gap to the reference server": punchd (crash-safe and power-safe) against the reference push
# server of shared/perf-limits.md (`srv --mode group`, SRV_INDEX=time: axum + one SQLite writer with group commit,
# synchronous=NORMAL), driven by the independent load generator `devload`, INTERLEAVED: every round runs each
# scenario on each server in turn, so the drift of a shared machine hits all of them alike. Server pinned to core
# $SERVER_CPU, devload (one thread) to core $LOAD_CPU, a fresh server and database file per run.
#
#   cargo build --release -p punchd
#   # devload and srv: copies outside the repository (shared/bench/README.md)
#   cp -r shared/bench/devload shared/bench/limits /tmp/benchsrc/
#   (cd /tmp/benchsrc/devload && cargo build --release); (cd /tmp/benchsrc/limits && cargo build --release --bin srv)
#   DEVLOAD=/tmp/benchsrc/devload/target/release/devload SRV=/tmp/benchsrc/limits/target/release/srv \
#       ROUNDS=3 scripts/bench/side-by-side.sh [scenario ...]
#
# Scenarios (default all): polls (500 terminals polling as fast as answered), attlog1 / attlog10 / attlog100
# (50 terminals posting batches back to back), attlog10dup (the same at 10 with 5 % of acknowledged batches sent
# again). Servers: punchd-crash (--durability crash-safe), punchd-power (the default, power-safe), reference.
#
# One TSV line per run in $WORK/runs.tsv (server, scenario, round, requests/s, punches acknowledged/s, p50, p99,
# server CPU seconds, CPU µs per request, peak RSS kB, load1), then the medians and the ratios
# punchd / reference are printed (scripts/bench/side_by_side_report.py).
#
# Environment: PUNCHD (default target/release/punchd), DEVLOAD, SRV, ROUNDS (default 3), DURATION (default 10),
# WORK (default /tmp/punchd-sbs), SERVERS (default "punchd-crash punchd-power reference"), SERVER_CPU / LOAD_CPU
# (default 1 / 0), PORT (default 18081).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
target=${CARGO_TARGET_DIR:-$here/../../target}
PUNCHD=${PUNCHD:-$target/release/punchd}
DEVLOAD=${DEVLOAD:-/tmp/benchsrc/devload/target/release/devload}
SRV=${SRV:-/tmp/benchsrc/limits/target/release/srv}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
WORK=${WORK:-/tmp/punchd-sbs}
SERVERS=${SERVERS:-punchd-crash punchd-power reference}
SERVER_CPU=${SERVER_CPU:-1}
LOAD_CPU=${LOAD_CPU:-0}
PORT=${PORT:-18081}
. "$here/common.sh"
mkdir -p "$WORK"
RUNS_TSV=$WORK/runs.tsv
for bin in "$PUNCHD" "$DEVLOAD" "$SRV"; do
    [ -x "$bin" ] || { echo "missing binary $bin (see the header)" >&2; exit 1; }
done
# devload sends every terminal from 127.0.0.1: allow its 50–500 new serial numbers per minute.
printf '[limits]\nnew_sns_per_address_per_minute = 100000\n' >"$WORK/bench.toml"

server_pid=""
stop_server() {
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid"
        wait "$server_pid" 2>/dev/null || true
    fi
    server_pid=""
}
trap stop_server EXIT

start_server() {
    local server=$1 db=$WORK/$1.db
    rm -f "$db" "$db-wal" "$db-shm" "$db.lock"
    case $server in
        punchd-crash | punchd-power)
            local durability=power-safe
            [ "$server" = punchd-crash ] && durability=crash-safe
            taskset -c "$SERVER_CPU" "$PUNCHD" --config "$WORK/bench.toml" serve --listen "127.0.0.1:$PORT" \
                --database "$db" --durability "$durability" >"$WORK/server.log" 2>&1 &
            ;;
        reference)
            SRV_INDEX=time taskset -c "$SERVER_CPU" "$SRV" --mode group --addr "127.0.0.1:$PORT" \
                --db "$db" >"$WORK/server.log" 2>&1 &
            ;;
    esac
    server_pid=$!
    wait_listening "$PORT" "$server_pid" "$WORK/server.log"
}

run_one() {
    local server=$1 scenario=$2 round=$3 args ticks0 ticks1 hwm load1
    args=$(devload_args "$scenario")
    start_server "$server"
    sleep 0.3
    ticks0=$(cpu_ticks "$server_pid")
    # shellcheck disable=SC2086
    taskset -c "$LOAD_CPU" "$DEVLOAD" --url "http://127.0.0.1:$PORT" --threads 1 --duration "$DURATION" \
        --progress 0 --json "$WORK/load.json" $args >"$WORK/load.out" 2>&1
    ticks1=$(cpu_ticks "$server_pid")
    hwm=$(awk '/^VmHWM/ {print $2}' "/proc/$server_pid/status")
    load1=$(cut -d' ' -f1 /proc/loadavg)
    stop_server
    python3 - "$WORK/load.json" "$server" "$scenario" "$round" "$((ticks1 - ticks0))" "$hwm" "$load1" <<'EOF' | tee -a "$RUNS_TSV"
import json, os, sys
path, server, scenario, rnd, ticks, hwm, load1 = sys.argv[1:8]
r = json.load(open(path))
cpu = int(ticks) / os.sysconf("SC_CLK_TCK")
req = r["requests"]
print("\t".join(map(str, [server, scenario, rnd, r["requests_per_s"], r["records_acked_per_s"], r["latency_ms"]["p50"],
      r["latency_ms"]["p99"], round(cpu, 2), round(cpu * 1e6 / max(req, 1), 1), hwm, load1, r["non_ok"], r["errors"],
      r["ok_count_mismatch"]])))
EOF
}

scenarios=("$@")
[ ${#scenarios[@]} -gt 0 ] || scenarios=(polls attlog1 attlog10 attlog100 attlog10dup)
echo "# $(date -u +%FT%TZ) $(git -C "$here" rev-parse --short HEAD) nproc=$(nproc)" >>"$RUNS_TSV"
for round in $(seq 1 "$ROUNDS"); do
    for scenario in "${scenarios[@]}"; do
        for server in $SERVERS; do
            run_one "$server" "$scenario" "$round"
        done
    done
done
python3 "$here/side_by_side_report.py" "$RUNS_TSV"
