#!/usr/bin/env bash
# System calls per request of punchd (crash-safe) and of the reference server at one punch per POST (issue 6,
# BENCHMARKS.md "Side by side on this machine"): each server pinned to core 1 with a fresh database, devload (50
# terminals, 1 punch per POST, `Connection: close`) on core 0 for 8 s, `strace -c -f` attached for 4 s of it.
# Requests = successful accept4 calls; divide each count by them.
#
#   scripts/bench/syscalls-per-request.sh [punchd|reference ...]     # default both
#
# Environment: PUNCHD (target/release/punchd), SRV, DEVLOAD (as scripts/bench/side-by-side.sh), WORK.
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
PUNCHD=${PUNCHD:-$here/target/release/punchd}
DEVLOAD=${DEVLOAD:-/tmp/benchsrc/devload/target/release/devload}
SRV=${SRV:-/tmp/benchsrc/limits/target/release/srv}
WORK=${WORK:-/tmp/punchd-syscalls}
mkdir -p "$WORK"
printf '[limits]\nnew_sns_per_address_per_minute = 100000\n' >"$WORK/bench.toml"
for which in "${@:-punchd reference}"; do
    for w in $which; do
        rm -f "$WORK"/db*
        if [ "$w" = punchd ]; then
            taskset -c 1 "$PUNCHD" --config "$WORK/bench.toml" serve --listen 127.0.0.1:18099 \
                --database "$WORK/db" --durability crash-safe >"$WORK/server.log" 2>&1 &
        else
            SRV_INDEX=time taskset -c 1 "$SRV" --mode group --addr 127.0.0.1:18099 --db "$WORK/db" \
                >"$WORK/server.log" 2>&1 &
        fi
        pid=$!
        sleep 1
        taskset -c 0 "$DEVLOAD" --url http://127.0.0.1:18099 --threads 1 --duration 8 --devices 50 \
            --heartbeat 0 --upload 0 --batch 1 >"$WORK/devload.out" 2>&1 &
        load=$!
        sleep 2
        timeout 4 strace -c -f -p "$pid" -o "$WORK/strace-$w.txt" >/dev/null 2>&1 || true
        wait "$load"
        kill "$pid"
        wait "$pid" 2>/dev/null || true
        echo "== $w"
        # Columns: % time, seconds, usecs/call, calls, [errors,] syscall.
        awk '$NF == "accept4" {req = $4 - (NF == 6 ? $5 : 0)} {line[NR] = $0} END {
                for (i = 1; i <= NR; i++) {
                    n = split(line[i], f)
                    if (f[4] ~ /^[0-9]+$/ && req > 0 && f[n] != "total")
                        printf "%-14s %9d calls %7.2f per request\n", f[n], f[4], f[4] / req
                }
            }' "$WORK/strace-$w.txt"
    done
done
