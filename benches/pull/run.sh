#!/usr/bin/env bash
# The pull benchmark (BENCHMARKS.md, section "Pull"): one simulated pull terminal (`punchd simulate pull`, 100,000
# punches, zk8 profile: 40-byte attendance records) pinned to one core, and on another core, against that same
# instance and data:
#   1. our client: the Rust driver (crates/punchd/benches/pull.rs, release) times connect + attendance() +
#      disconnect in process; hyperfine times the `punchd pull ... --format csv >/dev/null` process;
#   2. pyzk 0.9: benches/pull/pyzk_pull.py times connect + get_attendance() + disconnect in process; hyperfine
#      times the python process;
# over TCP, then UDP (UDP=0 skips it); then
#   3. ingest: the driver downloads the log once over TCP and ingests it as one pull delivery into a fresh SQLite
#      store (power-safe, the default) under $WORK, then again (all duplicates).
# Every timing is the median of $RUNS runs after a warm-up. Prints a markdown report and writes it to
# $WORK/report.md, the raw JSON to $WORK/*.json.
#
#   benches/pull/run.sh
#
# Environment: RUNS (default 7), PUNCHES (default 100000), USERS (500), COMM_KEY (0), UDP (1), SIM_CPU / CLIENT_CPU
# (cores for the simulator and for every client, default 0 / 1), WORK (scratch directory on a real disk, default
# /var/tmp/punchd-pullbench), CARGO_TARGET_DIR (where to build, default target/). Needs python3 with pyzk
# (`pip install pyzk`), hyperfine (`apt-get install -y hyperfine`) and taskset.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
RUNS=${RUNS:-7}
PUNCHES=${PUNCHES:-100000}
USERS=${USERS:-500}
COMM_KEY=${COMM_KEY:-0}
UDP=${UDP:-1}
SIM_CPU=${SIM_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
WORK=${WORK:-/var/tmp/punchd-pullbench}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target}

for tool in hyperfine taskset python3; do
    command -v "$tool" >/dev/null || { echo "pull bench: $tool not found" >&2; exit 1; }
done
python3 -c 'import zk' 2>/dev/null || { echo "pull bench: pyzk not importable (pip install pyzk)" >&2; exit 1; }
mkdir -p "$WORK"

# Build first, so that nothing compiles while the clock runs.
cd "$root"
cargo build --release -p punchd --quiet
PUNCHD=$CARGO_TARGET_DIR/release/punchd
DRIVER=$(cargo bench -p punchd --bench pull --no-run --message-format=json 2>/dev/null |
    python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "pull" and m.get("executable"):
        print(m["executable"])')
[ -x "$DRIVER" ] || { echo "pull bench: the driver did not build (cargo bench -p punchd --bench pull --no-run)" >&2; exit 1; }

# CPU the whole machine has used so far and CPU this script's waited-for children have used, in jiffies: their
# difference over the run is the CPU other work (other engineers, other jobs) took while the benchmark ran.
machine_jiffies() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat; }
children_jiffies() { awk '{print $16 + $17}' /proc/$$/stat; }
run_machine0=$(machine_jiffies)
run_children0=$(children_jiffies)
run_started=$(date +%s.%N)

sim_pid=""
stop_sim() {
    if [ -n "$sim_pid" ] && kill -0 "$sim_pid" 2>/dev/null; then
        kill -TERM "$sim_pid"
        wait "$sim_pid" 2>/dev/null || true
    fi
    sim_pid=""
}
trap stop_sim EXIT

# One simulator for everything; live punches off so the log does not grow between clients; no pacing (the Node
# clients are not benchmarked; pacing would add waits to every download).
taskset -c "$SIM_CPU" "$PUNCHD" simulate pull --bind 127.0.0.1 --port 0 --users "$USERS" --punches "$PUNCHES" \
    --comm-key "$COMM_KEY" --live-every-ms 0 --no-pacing >"$WORK/sim.log" 2>&1 &
sim_pid=$!
port=""
for _ in $(seq 1 100); do
    port=$(grep -o 'on 127\.0\.0\.1:[0-9]*' "$WORK/sim.log" | head -1 | cut -d: -f2 || true)
    [ -n "$port" ] && break
    sleep 0.1
done
[ -n "$port" ] || { echo "pull bench: the simulator did not start:" >&2; cat "$WORK/sim.log" >&2; exit 1; }

on_client() { taskset -c "$CLIENT_CPU" "$@"; }
# CPU time the simulator has used so far and time it waited for a core, all threads, in nanoseconds (schedstat).
sim_sched_ns() { cat /proc/"$sim_pid"/task/*/schedstat | awk '{cpu += $1; wait += $2} END {print cpu, wait}'; }
# sim_share NAME DOWNLOADS BEFORE: record the simulator's CPU and wait per download since BEFORE ("cpu wait") in
# $WORK/sim-NAME.json.
sim_share() {
    local cpu wait
    read -r cpu wait <<<"$(sim_sched_ns)"
    set -- "$1" "$2" $3
    echo "{\"downloads\": $2, \"cpu_ms_per_download\": $(( (cpu - $3) / $2 / 1000 ))e-3," \
        "\"runqueue_wait_ms_per_download\": $(( (wait - $4) / $2 / 1000 ))e-3}" >"$WORK/sim-$1.json"
}
# json_of MARKER FILE: the JSON after MARKER on the command's stdout, saved to FILE.
json_of() { sed -n "s/^$1 //p" | tail -1 >"$2"; [ -s "$2" ] || { echo "pull bench: no $1 line" >&2; exit 1; }; }

# How busy each core was (other engineers, other jobs) over the second before the clients start: pinned
# processes share their core with whatever else runs there, which shows in wall times, not in CPU times.
core_busy() {
    python3 -c '
import time
def sample():
    with open("/proc/stat") as f:
        return {l.split()[0]: [int(x) for x in l.split()[1:]] for l in f if l.startswith("cpu") and l[3].isdigit()}
a = sample(); time.sleep(1); b = sample()
out = []
for cpu in sorted(a):
    d = [y - x for x, y in zip(a[cpu], b[cpu])]
    idle = d[3] + d[4]
    out.append("%s %d%%" % (cpu, round(100 * (1 - idle / max(1, sum(d))))))
print(", ".join(out))'
}
busy_before=$(core_busy)
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
transports=(tcp)
[ "$UDP" = 1 ] && transports+=(udp)
for transport in "${transports[@]}"; do
    flag=""
    [ "$transport" = udp ] && flag="--udp"
    echo "== $transport: our client (library, in process)" >&2
    before=$(sim_sched_ns)
    on_client "$DRIVER" pull --address "127.0.0.1:$port" $flag --comm-key "$COMM_KEY" --runs "$RUNS" \
        --expect "$PUNCHES" | json_of PULLBENCH_JSON "$WORK/ours-$transport.json"
    sim_share "ours-$transport" $((RUNS + 1)) "$before"
    echo "== $transport: pyzk (library, in process)" >&2
    before=$(sim_sched_ns)
    on_client python3 "$here/pyzk_pull.py" --port "$port" $flag --comm-key "$COMM_KEY" --runs "$RUNS" \
        --expect "$PUNCHES" | json_of PYZK_PULL_JSON "$WORK/pyzk-$transport.json"
    sim_share "pyzk-$transport" $((RUNS + 1)) "$before"
    echo "== $transport: processes (hyperfine)" >&2
    on_client hyperfine --style basic --warmup 1 --runs "$RUNS" --export-json "$WORK/hyperfine-$transport.json" \
        -n "punchd pull" "$PUNCHD pull 127.0.0.1 --port $port $flag --comm-key $COMM_KEY --format csv >/dev/null" \
        -n "pyzk" "python3 $here/pyzk_pull.py --port $port $flag --comm-key $COMM_KEY --runs 1 --warmup 0 --expect $PUNCHES >/dev/null" \
        >&2
done
echo "== ingest (power-safe SQLite under $WORK)" >&2
on_client "$DRIVER" ingest --address "127.0.0.1:$port" --comm-key "$COMM_KEY" --runs "$RUNS" --expect "$PUNCHES" \
    --work "$WORK" | json_of PULLBENCH_JSON "$WORK/ingest.json"
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
stop_sim
others=$(awk -v m0="$run_machine0" -v m1="$(machine_jiffies)" -v c0="$run_children0" -v c1="$(children_jiffies)" \
    -v t0="$run_started" -v t1="$(date +%s.%N)" -v n="$(nproc)" \
    'BEGIN {o = (m1 - m0) - (c1 - c0); if (o < 0) o = 0; printf "%.0f%% of %d cores (%.0f CPU-s in %.0f s)", 100 * o / 100 / ((t1 - t0) * n), n, o / 100, t1 - t0}')

python3 "$here/report.py" --work "$WORK" --runs "$RUNS" --punches "$PUNCHES" --users "$USERS" \
    --comm-key "$COMM_KEY" --sim-cpu "$SIM_CPU" --client-cpu "$CLIENT_CPU" --load-before "$load_before" \
    --load-after "$load_after" --busy-before "$busy_before" --others "$others" --transports "${transports[@]}" | tee "$WORK/report.md"
