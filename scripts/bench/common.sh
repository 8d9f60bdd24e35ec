# Sourced by the benchmark scripts (`. "$here/common.sh"`): reading a running `punchd serve` from outside. Needs
# $PUNCHD for delivered_of.

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
