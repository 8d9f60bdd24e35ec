# Sourced by the benchmark scripts (`. "$here/common.sh"`): starting and reading a server under load from outside.
# Needs $PUNCHD for delivered_of.

# served_port LOG: the port a `punchd serve --listen 127.0.0.1:0` announced in its log (empty until it did).
served_port() {
    sed 's/\x1b\[[0-9;]*m//g' "$1" 2>/dev/null | grep -o 'listen=127\.0\.0\.1:[0-9]* ' | head -1 | cut -d: -f2 \
        | tr -d ' ' || true
}

# delivered_live PORT: events the running server's sinks delivered since it started
# (`punchd_sink_delivered_total` on /metrics; a cheap scrape for polling loops; 0 before the first delivery).
delivered_live() {
    curl -s "http://127.0.0.1:$1/metrics" 2>/dev/null \
        | awk '/^punchd_sink_delivered_total/ {n += $NF} END {printf "%d\n", n}'
}

# delivered_of DB: "delivered / events owed" summed over every sink of DB (owed: delivered + pending + parked), as
# `punchd sinks list` counts them, so a script does not need to know how the store keeps delivery state
# (store/outbox.rs: an event a sink delivered leaves no row on the fast path). A CLI process that counts the
# outbox (≈ 50 ms of CPU): not for tight polling loops.
delivered_of() {
    "$PUNCHD" --database "$1" sinks list --format json 2>/dev/null \
        | python3 -c "import json,sys; s=json.load(sys.stdin); print(sum(x['delivered'] for x in s), '/', sum(x['delivered']+x['pending']+x['parked'] for x in s))" 2>/dev/null \
        || echo "?"
}

# devload_args SCENARIO: devload's flags for one scenario of the side-by-side runs (shared/bench/README.md):
# polls (500 terminals polling), attlog1 / attlog10 / attlog100 (50 terminals posting that many punches per POST,
# back to back), attlog10dup (the same at 10 with 5 % of acknowledged batches sent again).
devload_args() {
    case $1 in
        polls) echo "--devices 500 --heartbeat 0.000001 --batch 0" ;;
        attlog1) echo "--devices 50 --heartbeat 0 --upload 0 --batch 1" ;;
        attlog10) echo "--devices 50 --heartbeat 0 --upload 0 --batch 10" ;;
        attlog100) echo "--devices 50 --heartbeat 0 --upload 0 --batch 100" ;;
        attlog10dup) echo "--devices 50 --heartbeat 0 --upload 0 --batch 10 --dup-rate 0.05" ;;
        *) echo "unknown scenario $1" >&2; return 1 ;;
    esac
}

# wait_listening PORT PID LOG [SECONDS]: wait (up to SECONDS, default 10) until 127.0.0.1:PORT accepts connections;
# fail, printing LOG, if process PID ends first or the port never opens.
wait_listening() {
    for _ in $(seq 1 $((${4:-10} * 20))); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        kill -0 "$2" 2>/dev/null || break
        sleep 0.05
    done
    echo "server on port $1 did not start: $(cat "$3")" >&2
    return 1
}

# cpu_ticks PID: the process's CPU time so far (utime + stime of /proc/PID/stat, in clock ticks).
cpu_ticks() {
    awk '{print $14 + $15}' "/proc/$1/stat"
}
