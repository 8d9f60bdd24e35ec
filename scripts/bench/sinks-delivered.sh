# Sourced by the benchmark scripts: check-ins delivered so far, as punchd counts them (`punchd sinks list`), so a
# script does not need to know how the store keeps delivery state (store/outbox.rs: an event a sink delivered
# leaves no row on the fast path). Needs $PUNCHD.

# delivered DB: check-ins delivered so far, summed over every sink of DB (0 when it cannot be read yet).
delivered() {
    "$PUNCHD" --database "$1" sinks list --format json 2>/dev/null \
        | python3 -c "import json,sys; print(sum(s['delivered'] for s in json.load(sys.stdin)))" 2>/dev/null \
        || echo 0
}

# delivered_of DB: "delivered / events owed" summed over every sink (owed: delivered + pending + parked).
delivered_of() {
    "$PUNCHD" --database "$1" sinks list --format json 2>/dev/null \
        | python3 -c "import json,sys; s=json.load(sys.stdin); print(sum(x['delivered'] for x in s), '/', sum(x['delivered']+x['pending']+x['parked'] for x in s))" 2>/dev/null \
        || echo "?"
}
