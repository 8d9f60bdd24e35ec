#!/usr/bin/env bash
# The push benchmark (BENCHMARKS.md): the real `punchd serve` on loopback pinned to core 1, a fleet of simulated
# push terminals (`punchd simulate push`, one current-thread runtime) pinned to core 0, `Connection: close` per
# request as att firmware sends. Each run starts a fresh server on a copy of the database it names, measures
# punches/s, requests/s, p50/p99 latency and the server's peak memory (VmHWM), then checks that every acknowledged
# punch is stored exactly once.
#
#   cargo build --release -p punchd
#   scripts/bench/push-bench.sh [scenario ...]
#
# Scenarios: attlog1 attlog10 attlog100 attlog1000 polls (fresh database), the same with a "10m-" prefix (on a
# database that already holds 10 million punches, built once by the `prefill` step), the same with a "sinks-" prefix
# after it (e.g. sinks-attlog10, 10m-sinks-attlog100: three sinks enabled, issue 8 "Speed" — a webhook sink to
# scripts/bench/sink_receiver.py, a NATS JetStream sink to a private `nats-server -js` on $NATS_PORT (default 14222,
# data under $WORK) and a Frappe sink to scripts/bench/frappe_stub.py answering after $SINK_LATENCY_MS ms (default
# 0); the helpers run on the load generator's core; the line printed after each run says how many check-ins the
# sinks had delivered when it ended and how long they took to deliver the rest afterwards; with SINKS_PAUSED=1 the
# three sinks are added paused, so the run pays for the outbox rows and nothing else of delivery), and fleet10k (10,000
# terminals greeting the server and polling; peak memory), and ceiling (the polls load against
# crates/zk-sim/examples/ok_server, which answers OK and nothing else: this machine's ceiling for `Connection: close`
# requests; build it with `cargo build --release -p zk-sim --example ok_server`). Default: all of them.
#
# Environment: PUNCHD (binary, default $CARGO_TARGET_DIR or target, release/punchd), RUNS (runs per scenario,
# default 3), DURATION (seconds per run, default 10), WORK (scratch directory, default /tmp/punchd-bench),
# CONCURRENCY (terminals = requests in flight, default 64), SERVER_CPU / LOAD_CPU (default 1 / 0), NICE (default 0),
# PREFILL_PUNCHES (default 10000000).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
. "$here/common.sh"
target=${CARGO_TARGET_DIR:-$here/../../target}
PUNCHD=${PUNCHD:-$target/release/punchd}
# The calibration server (crates/zk-sim/examples/ok_server.rs) for the `ceiling` scenario.
OK_SERVER=${OK_SERVER:-$(dirname "$PUNCHD")/examples/ok_server}
RUNS=${RUNS:-3}
DURATION=${DURATION:-10}
WORK=${WORK:-/tmp/punchd-bench}
CONCURRENCY=${CONCURRENCY:-64}
SERVER_CPU=${SERVER_CPU:-1}
LOAD_CPU=${LOAD_CPU:-0}
PREFILL_PUNCHES=${PREFILL_PUNCHES:-10000000}
# Scheduling priority of server and load generator (negative needs root): other builds on a shared machine then
# disturb the measurement less.
NICE=${NICE:-0}
if [ "$NICE" != 0 ] && [ -w /proc/$$/autogroup ]; then
    # With autogroup scheduling, nice only ranks processes inside one session; give this session's group the same
    # weight, or the builds of other sessions still take half of each core.
    echo "$NICE" >/proc/$$/autogroup
fi
RESULTS=$WORK/results.tsv

mkdir -p "$WORK"
[ -x "$PUNCHD" ] || { echo "no punchd binary at $PUNCHD: cargo build --release -p punchd" >&2; exit 1; }

server_pid=""
stop_server() {
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid"
        wait "$server_pid" 2>/dev/null || true
    fi
    server_pid=""
}
# The sinks' receivers (the "sinks-" scenarios), started once.
helper_pids=()
stop_all() {
    stop_server
    for p in "${helper_pids[@]}"; do kill "$p" 2>/dev/null || true; done
}
trap stop_all EXIT

# wait_helper OUT: the port a helper printed as "PORT <n>".
wait_helper() {
    for _ in $(seq 1 100); do grep -q '^PORT' "$1" && break; sleep 0.05; done
    sed -n 's/^PORT //p' "$1"
}

# add_sinks DB: webhook, NATS and Frappe sinks in DB (before the server starts), their receivers started once.
add_sinks() {
    local db=$1
    # A fresh scenario has no database yet (`sinks add` refuses a missing file; `token create` creates it).
    [ -e "$db" ] || "$PUNCHD" --database "$db" token create bench-sinks >/dev/null 2>&1
    if [ -z "${receiver_port:-}" ]; then
        # Emptied first: the redirections below run in background jobs, and wait_helper could read an earlier
        # invocation's port from the old file (a sink pointed at a receiver that is gone fails every round).
        : >"$WORK/receiver.out"
        : >"$WORK/frappe.out"
        taskset -c "$LOAD_CPU" python3 -u "$here/sink_receiver.py" >"$WORK/receiver.out" 2>&1 &
        helper_pids+=($!)
        receiver_port=$(wait_helper "$WORK/receiver.out")
        LATENCY_MS=${SINK_LATENCY_MS:-0} taskset -c "$LOAD_CPU" python3 -u "$here/frappe_stub.py" >"$WORK/frappe.out" 2>&1 &
        helper_pids+=($!)
        frappe_port=$(wait_helper "$WORK/frappe.out")
        rm -rf "$WORK/nats"
        taskset -c "$LOAD_CPU" nats-server -js -a 127.0.0.1 -p "${NATS_PORT:-14222}" -sd "$WORK/nats" >"$WORK/nats.log" 2>&1 &
        helper_pids+=($!)
        sleep 1
    fi
    "$PUNCHD" --database "$db" sinks add webhook --url "http://127.0.0.1:$receiver_port/" --secret s --batch-size 500 >/dev/null
    "$PUNCHD" --database "$db" sinks add nats --url "nats://127.0.0.1:${NATS_PORT:-14222}" --stream BENCHPUSH >/dev/null
    "$PUNCHD" --database "$db" sinks add frappe --url "http://127.0.0.1:$frappe_port" --api-key k --api-secret s \
        --time-zone UTC >/dev/null
    if [ -n "${SINKS_PAUSED:-}" ]; then
        local name
        for name in webhook nats frappe; do "$PUNCHD" --database "$db" sinks pause "$name" >/dev/null; done
    fi
}

# start_server DB: start `punchd serve` on DB (or the calibration server when CEILING is set), pinned; sets
# server_pid and port.
start_server() {
    local db=$1 log=$WORK/server.log
    # Emptied here, not only by the redirection below: that runs in the background job, and served_port could
    # read the previous run's port from the old log first.
    : >"$log"
    if [ -n "${CEILING:-}" ]; then
        nice -n "$NICE" taskset -c "$SERVER_CPU" "$OK_SERVER" >"$log" 2>&1 &
    else
        nice -n "$NICE" taskset -c "$SERVER_CPU" "$PUNCHD" serve --listen 127.0.0.1:0 --database "$db" >"$log" 2>&1 &
    fi
    server_pid=$!
    port=""
    for _ in $(seq 1 100); do
        port=$(served_port "$log")
        [ -n "$port" ] && return 0
        sleep 0.1
    done
    echo "punchd did not start:" >&2
    cat "$log" >&2
    exit 1
}

peak_kb() { awk '/^VmHWM/ {print $2}' "/proc/$server_pid/status"; }
# CPU ticks (1/100 s) the server used so far, all threads.
server_ticks() { awk '{print $14 + $15}' "/proc/$server_pid/stat"; }

# load DB PREFIX ARGS...: run the fleet against the running server, print its JSON summary.
load() {
    local db=$1 prefix=$2
    shift 2
    /usr/bin/time -f "%e %U %S" -o "$WORK/load.time" nice -n "$NICE" taskset -c "$LOAD_CPU" "$PUNCHD" simulate push --server "http://127.0.0.1:$port" --sn-prefix "$prefix" \
        --check-database "$db" --json "$@"
}

# The database that already holds PREFILL_PUNCHES punches: 100 terminals push 1000-punch batches. Built once.
prefill() {
    local db=$WORK/prefilled.db
    if [ -f "$db" ]; then return 0; fi
    echo "prefill: $PREFILL_PUNCHES punches into $db" >&2
    local batches=$((PREFILL_PUNCHES / 100 / 1000))
    rm -f "$db.tmp" "$db.tmp-wal" "$db.tmp-shm"
    start_server "$db.tmp"
    local started=$SECONDS
    load "$db.tmp" PREFILL --devices 100 --max-in-flight 32 --punches-per-batch 1000 --batches "$batches" \
        --poll-interval-ms 60000 --operlog-users 0 >"$WORK/prefill.json"
    stop_server
    echo "prefill took $((SECONDS - started)) s: $(jq -c '{punches_acked, punches_per_sec, exactly_once}' "$WORK/prefill.json")" >&2
    mv "$db.tmp" "$db"
    rm -f "$db.tmp-wal" "$db.tmp-shm"
}

# run SCENARIO RUN: one measurement, appended to RESULTS.
run() {
    local scenario=$1 run=$2 base=${1#10m-} db=$WORK/run.db with_sinks=""
    if [ "${base#sinks-}" != "$base" ]; then
        with_sinks=1
        base=${base#sinks-}
    fi
    CEILING=""
    if [ "$scenario" = ceiling ]; then
        # The same poll load against a server that only answers OK: this machine's ceiling.
        CEILING=1
        base=polls
    fi
    rm -f "$db" "$db-wal" "$db-shm"
    if [ "${scenario#10m-}" != "$scenario" ] && [ -z "$CEILING" ]; then
        prefill
        cp "$WORK/prefilled.db" "$db"
    fi
    if [ -n "$with_sinks" ]; then
        add_sinks "$db"
    fi
    local prefix
    prefix=B$(date +%s | tail -c 6)$run
    start_server "$db"
    sleep 0.5
    local load_avg json ticks_before
    load_avg=$(cut -d' ' -f1 /proc/loadavg)
    ticks_before=$(server_ticks)
    case $base in
        attlog1 | attlog10 | attlog100 | attlog1000)
            json=$(load "$db" "$prefix" --devices "$CONCURRENCY" --max-in-flight "$CONCURRENCY" \
                --punches-per-batch "${base#attlog}" --duration-secs "$DURATION" --poll-interval-ms 10000 \
                --operlog-users 10)
            ;;
        polls)
            json=$(load "$db" "$prefix" --devices "$CONCURRENCY" --max-in-flight "$CONCURRENCY" --batches 0 \
                --duration-secs "$DURATION" --poll-interval-ms 0 --operlog-users 0)
            ;;
        fleet10k)
            # 10,000 terminals greet the server (handshake, INFO, 10 users on OPERLOG) over 10 s, then poll every
            # 10 s and push one punch per minute each (what Delay=10 asks of them).
            json=$(load "$db" "$prefix" --devices 10000 --max-in-flight 256 --ramp-up-ms 10000 \
                --punches-per-batch 1 --batch-interval-ms 60000 --poll-interval-ms 10000 \
                --duration-secs $((DURATION + 20)) --operlog-users 10)
            ;;
        *)
            echo "unknown scenario $scenario" >&2
            exit 1
            ;;
    esac
    local peak server_cpu load_cpu
    peak=$(peak_kb)
    # Share of one core used by the server and by the load generator over the run (wall time of the fleet).
    read -r wall user sys <"$WORK/load.time"
    server_cpu=$(awk -v a="$ticks_before" -v b="$(server_ticks)" -v w="$wall" 'BEGIN {printf "%.0f", (b - a) / w}')
    load_cpu=$(awk -v u="$user" -v s="$sys" -v w="$wall" 'BEGIN {printf "%.0f", 100 * (u + s) / w}')
    if [ -n "$with_sinks" ]; then
        # Delivery runs below collection's priority (`delivery_nice`): how far the sinks were when the load ended,
        # and how long they took to deliver the rest with the terminals quiet.
        local at_end progress t_end
        t_end=$(date +%s.%N)
        at_end=$(delivered_of "$db")
        progress=$at_end
        # At most a minute: the Frappe stub (one Python thread per request) answers ≈ 1,500 check-ins/s, so a
        # long run's Frappe backlog outlasts it; the line then says how far the sinks got.
        for _ in $(seq 1 "${CATCH_UP_POLLS:-100}"); do
            [ "${progress%% /*}" = "${progress##*/ }" ] && break
            sleep 0.5
            progress=$(delivered_of "$db")
        done
        echo "# $scenario run $run: sinks delivered $at_end when the run ended; $progress" \
            "$(python3 -c "print(round($(date +%s.%N) - $t_end, 1))") s after it" | tee -a "$RESULTS"
    fi
    stop_server
    echo "$json" >"$WORK/$scenario.$run.json"
    local line
    line=$(jq -r --arg s "$scenario" --arg r "$run" --arg peak "$peak" --arg load "$load_avg" \
        --arg scpu "$server_cpu" --arg lcpu "$load_cpu" '[
        $s, $r, (.punches_per_sec | floor), (.requests_per_sec | floor),
        (if .kinds.attlog.requests > 0 then .kinds.attlog else .kinds.poll end) as $k
        | ($k.per_sec | floor), $k.p50_us, $k.p99_us, ($peak | tonumber / 1024 | floor),
        (.exactly_once.holds), .exactly_once.acknowledged, (.kinds | map(.transport_errors + .refused) | add),
        $scpu, $lcpu, $load ] | @tsv' <<<"$json")
    echo "$line" | tee -a "$RESULTS"
}

scenarios=("$@")
if [ ${#scenarios[@]} -eq 0 ]; then
    scenarios=(ceiling attlog1 attlog10 attlog100 attlog1000 polls 10m-attlog1 10m-attlog10 10m-attlog100 10m-attlog1000 10m-polls
        fleet10k)
fi
echo "# $(date -u +%FT%TZ) $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); runs=$RUNS duration=${DURATION}s concurrency=$CONCURRENCY nice=$NICE" | tee -a "$RESULTS"
printf '# scenario\trun\tpunches/s\trequests/s\tmain-kind/s\tp50_us\tp99_us\tpeak_MB\texactly_once\tacked\terrors\tserver_cpu%%\tload_cpu%%\tload1\n' | tee -a "$RESULTS"
for scenario in "${scenarios[@]}"; do
    for run in $(seq 1 "$RUNS"); do
        run "$scenario" "$run"
    done
done
