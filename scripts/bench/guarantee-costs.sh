#!/usr/bin/env bash
# Issue 6, "show which guarantee costs how much": punchd crash-safe variants and the reference server, run
# INTERLEAVED under the same devload scenario, each on a fresh database, server pinned to core 1 and devload (one
# thread, 50 terminals, 10 s) to core 0. Prints one line per run: requests/s, punches/s, the server's CPU
# microseconds per request (utime + stime of the process over the run), what it wrote per request (`wchar` of
# /proc/PID/io: SQLite's WAL frames are 4,120 bytes each, the answers ~100 bytes), p99 and errors.
#
#   scripts/bench/guarantee-costs.sh ROUNDS SCENARIO VARIANT...
#     SCENARIO  a scenario of side-by-side.sh: attlog1 | attlog10 | attlog100 (punches per POST), attlog10dup, polls
#     VARIANT   NAME:BINARY[:SWITCH+SWITCH...] or NAME:ref (the reference server `srv --mode group`)
#     SWITCH    nojdev     drop the journal's `journal_device` index after start (schemas before migration 0019)
#               noidx      drop `journal_device` and `journal_received`
#               noident    drop the punches' identity index (re-sent punches would then be stored twice)
#               batch      the SQLite writer thread under SCHED_BATCH (`chrt -b`): a woken writer does not
#                          preempt the HTTP workers on the shared core, so groups grow
#               X_NAME     run the server with PUNCHD_X_NAME=1: the switches of guarantee-switches.patch
#                          (X_NO_JOURNAL, X_NO_STAMP, X_NO_SAVEPOINT), which only a build with that patch reads
#
# The patch applies to commit c004d98 (`git apply scripts/bench/guarantee-switches.patch` in a worktree of it, then
# `cargo build --release -p punchd`); it is for measuring only and never merged: each switch drops a guarantee.
# Needs devload and srv from shared/bench (see side-by-side.sh), sqlite3 and chrt.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
. "$here/common.sh"
ROUNDS=$1
SCENARIO=$2
shift 2
DEVLOAD=${DEVLOAD:-/tmp/benchsrc/devload/target/release/devload}
SRV=${SRV:-/tmp/benchsrc/limits/target/release/srv}
WORK=${WORK:-/tmp/punchd-guarantees}
PORT=${PORT:-18091}
mkdir -p "$WORK"
printf '[limits]\nnew_sns_per_address_per_minute = 100000\n' >"$WORK/bench.toml"
load=$(devload_args "$SCENARIO")
sql() { sqlite3 -cmd ".timeout 5000" "$WORK/db" "$1"; }
for round in $(seq 1 "$ROUNDS"); do
    for variant in "$@"; do
        name=${variant%%:*}
        rest=${variant#*:}
        bin=${rest%%:*}
        switches=${rest#*:}
        [ "$switches" = "$rest" ] && switches=""
        rm -f "$WORK"/db*
        if [ "$bin" = ref ]; then
            SRV_INDEX=time taskset -c 1 "$SRV" --mode group --addr "127.0.0.1:$PORT" --db "$WORK/db" \
                >"$WORK/server.log" 2>&1 &
        else
            envs=()
            for s in ${switches//+/ }; do
                case $s in X_*) envs+=("PUNCHD_$s=1") ;; esac
            done
            env "${envs[@]}" taskset -c 1 "$bin" --config "$WORK/bench.toml" serve --listen "127.0.0.1:$PORT" \
                --database "$WORK/db" --durability crash-safe >"$WORK/server.log" 2>&1 &
        fi
        pid=$!
        wait_listening "$PORT" "$pid" "$WORK/server.log"
        sleep 0.3
        for s in ${switches//+/ }; do
            case $s in
                batch)
                    for t in /proc/$pid/task/*; do
                        case $(cat "$t/comm") in punchd-sqlite-w*) chrt -b -p 0 "${t##*/}" ;; esac
                    done
                    ;;
                nojdev) sql "DROP INDEX IF EXISTS journal_device;" ;;
                noidx) sql "DROP INDEX IF EXISTS journal_device; DROP INDEX journal_received;" ;;
                noident) sql "DROP INDEX punches_identity;" ;;
            esac
        done
        ticks0=$(cpu_ticks "$pid")
        wchar0=$(awk '/^wchar/ {print $2}' "/proc/$pid/io")
        # shellcheck disable=SC2086
        taskset -c 0 "$DEVLOAD" --url "http://127.0.0.1:$PORT" --threads 1 --duration 10 --progress 0 \
            --json "$WORK/load.json" $load >"$WORK/load.out" 2>&1
        ticks1=$(cpu_ticks "$pid")
        wchar1=$(awk '/^wchar/ {print $2}' "/proc/$pid/io")
        kill -TERM "$pid"
        wait "$pid" 2>/dev/null || true
        python3 - "$WORK/load.json" "$name" "$round" "$((ticks1 - ticks0))" "$((wchar1 - wchar0))" <<'EOF'
import json, os, sys
path, name, rnd, ticks, written = sys.argv[1:6]
r = json.load(open(path))
req = max(r["requests"], 1)
cpu = int(ticks) / os.sysconf("SC_CLK_TCK")
print(f"{name}\tround {rnd}\treq/s {r['requests_per_s']:.0f}\tpunches/s {r['records_acked_per_s']:.0f}\t"
      f"CPU us/req {cpu * 1e6 / req:.1f}\twrite KB/req {int(written) / 1024 / req:.2f}\t"
      f"p99 {r['latency_ms']['p99']}\terrors {r['non_ok']}/{r['errors']}")
EOF
    done
done
