#!/usr/bin/env bash
# Delivery to Frappe against latency (BENCHMARKS.md, issue 8 "Speed": "to the Frappe contract server with 20 ms per
# request, throughput that scales with the configured concurrency"). For each concurrency in $CONCURRENCIES: a fresh
# database with $EVENTS imported punches of $USERS users, a Frappe sink (scripts/bench/frappe_stub.py answering
# after $LATENCY_MS ms) added with --concurrency N and --since 2000-01-01 (all of them due), then `punchd serve`
# started; check-ins delivered per second from the server's start until its /metrics counts all of them delivered. Frappe
# events of one employee go one at a time (alternating IN/OUT, frappe-hr.md §5), so concurrency beyond $USERS
# cannot help; the ideal is N × 1000 / LATENCY_MS per second.
#
#   cargo build --release -p punchd
#   scripts/bench/frappe-concurrency.sh
#
# Environment: PUNCHD (binary, default target/release/punchd), RUNS (default 3), WORK (default /tmp/punchd-frappe),
# CPU (core for punchd, default 1; the stub gets the other), EVENTS (default 5000), USERS (default 500),
# LATENCY_MS (default 20), CONCURRENCIES (default "1 2 4 8 16 32").
# A quick check on a debug build: PUNCHD=target/debug/punchd RUNS=1 EVENTS=50 CONCURRENCIES="1 4" scripts/bench/frappe-concurrency.sh
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
. "$here/common.sh"
root=$here/../..
target=${CARGO_TARGET_DIR:-$root/target}
PUNCHD=${PUNCHD:-$target/release/punchd}
RUNS=${RUNS:-3}
WORK=${WORK:-/tmp/punchd-frappe}
CPU=${CPU:-1}
OTHER=$((1 - CPU))
EVENTS=${EVENTS:-5000}
USERS=${USERS:-500}
LATENCY_MS=${LATENCY_MS:-20}
CONCURRENCIES=${CONCURRENCIES:-1 2 4 8 16 32}
mkdir -p "$WORK"
RESULTS=$WORK/results.tsv
[ -x "$PUNCHD" ] || { echo "no punchd binary at $PUNCHD: cargo build --release -p punchd" >&2; exit 1; }

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

# A USB attlog export: EVENTS punches of USERS users, one minute apart.
file=$WORK/attlog-$EVENTS-$USERS.dat
[ -s "$file" ] || python3 - "$EVENTS" "$USERS" "$file" <<'PY'
import sys
from datetime import datetime, timedelta
n, users, path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
start = datetime(2026, 1, 1)
with open(path, "w") as f:
    for i in range(n):
        t = start + timedelta(minutes=i)
        f.write(f"{i % users + 1:>9}\t{t:%Y-%m-%d %H:%M:%S}\t1\t{i // users % 2}\t0\t0\n")
PY


# Emptied first: the redirection runs in the background job, and the loop below could read an old port.
: >"$WORK/stub.out"
LATENCY_MS=$LATENCY_MS taskset -c "$OTHER" python3 -u "$here/frappe_stub.py" >"$WORK/stub.out" 2>&1 &
stub=$!
pids+=("$stub")
for _ in $(seq 1 100); do grep -q '^PORT' "$WORK/stub.out" && break; sleep 0.05; done
sport=$(sed -n 's/^PORT //p' "$WORK/stub.out")
[ -n "$sport" ] || { echo "the Frappe stub did not start: $(cat "$WORK/stub.out")" >&2; exit 1; }

echo "# $(date -u +%FT%TZ) $(git -C "$root" rev-parse --short HEAD) load1=$(cut -d' ' -f1 /proc/loadavg) events=$EVENTS users=$USERS latency_ms=$LATENCY_MS" | tee -a "$RESULTS"
printf 'concurrency\trun\tdelivered\tseconds\tcheckins_per_s\tideal_per_s\tcpu_s\n' | tee -a "$RESULTS"
for c in $CONCURRENCIES; do
    for run in $(seq 1 "$RUNS"); do
        db=$WORK/frappe-$c.db
        rm -f "$db" "$db-wal" "$db-shm"
        "$PUNCHD" --database "$db" import "$file" --device BENCHFRP01 --format attlog --time-zone UTC --json >/dev/null
        "$PUNCHD" --database "$db" sinks add frappe --url "http://127.0.0.1:$sport" --api-key k --api-secret s \
            --time-zone UTC --concurrency "$c" --since 2000-01-01T00:00:00Z >/dev/null
        log=$WORK/serve.log
        t0=$(date +%s.%N)
        taskset -c "$CPU" "$PUNCHD" --database "$db" serve --listen 127.0.0.1:0 >"$log" 2>&1 &
        pid=$!
        pids+=("$pid")
        n=0 port=""
        for _ in $(seq 1 12000); do
            [ -n "$port" ] || port=$(served_port "$log")
            [ -n "$port" ] && n=$(delivered_live "$port")
            [ "$n" -ge "$EVENTS" ] && break
            sleep 0.05
        done
        t1=$(date +%s.%N)
        ticks=$(awk '{print $14 + $15}' "/proc/$pid/stat")
        kill -TERM "$pid"
        wait "$pid" 2>/dev/null || true
        python3 - "$c" "$run" "$n" "$t0" "$t1" "$LATENCY_MS" "$USERS" "$ticks" <<'PY' | tee -a "$RESULTS"
import os, sys
c, run, n, t0, t1, lat, users, ticks = sys.argv[1:]
secs = float(t1) - float(t0)
ideal = min(int(c), int(users)) * 1000 / int(lat)
cpu = int(ticks) / os.sysconf("SC_CLK_TCK")
print(f"{c}\t{run}\t{n}\t{secs:.2f}\t{int(n) / secs:.0f}\t{ideal:.0f}\t{cpu:.2f}")
PY
    done
done
