#!/usr/bin/env bash
# The live page at ~1,000 punches/s (issue 11, "Speed"): a fresh `punchd serve` (auto approval), a viewer
# account, `punchd simulate push` with DEVICES terminals each sending one ATTLOG batch of PER_BATCH punches per
# second (10 × 100 = 1,000 punches/s by default), and Chromium on /ui/live for SECONDS seconds
# (tests/browser/live-feed.mjs). Prints a TSV sample every EVERY seconds — punches the page was told about
# (shown + dropped), rows in the DOM (capped at 200), JS heap used before and after a forced GC — then `start`
# and `end` lines, the simulator's summary and the punches stored.
#
#   cargo build --release -p punchd
#   npm ci --prefix tests/browser          # playwright-core, axe-core; Chromium at /usr/bin/chromium
#   scripts/bench/live-feed.sh             # 60 s
#   SECONDS_=10 PUNCHD=target/debug/punchd scripts/bench/live-feed.sh   # a quick check on the debug build
#
# Environment: PUNCHD (binary; default target/release/punchd, else target/debug/punchd), SECONDS_ (default 60),
# EVERY (default 10), DEVICES (10), PER_BATCH (100), WORK (scratch directory, default /tmp/punchd-live).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
. "$here/common.sh"
repo=$(cd "$here/../.." && pwd)
target=${CARGO_TARGET_DIR:-$repo/target}
if [ -z "${PUNCHD:-}" ]; then
    PUNCHD=$target/release/punchd
    [ -x "$PUNCHD" ] || PUNCHD=$target/debug/punchd
fi
SECS=${SECONDS_:-60}
EVERY=${EVERY:-10}
DEVICES=${DEVICES:-10}
PER_BATCH=${PER_BATCH:-100}
WORK=${WORK:-/tmp/punchd-live}
[ -x "$PUNCHD" ] || { echo "no punchd binary at $PUNCHD" >&2; exit 1; }
[ -d "$repo/tests/browser/node_modules/playwright-core" ] || {
    echo "missing browser packages: npm ci --prefix tests/browser" >&2
    exit 1
}
mkdir -p "$WORK"
db=$WORK/live.db
log=$WORK/serve.log
rm -f "$db" "$db-wal" "$db-shm"

pids=()
cleanup() {
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    wait 2>/dev/null || true
}
trap cleanup EXIT

password=live-feed-bench-password
printf '%s\n' "$password" | "$PUNCHD" --database "$db" ui-users add bench --role viewer --password-stdin
"$PUNCHD" serve --listen 127.0.0.1:0 --database "$db" --approval auto >"$log" 2>&1 &
pids+=($!)
port=""
for _ in $(seq 1 100); do
    port=$(served_port "$log")
    [ -n "$port" ] && break
    sleep 0.1
done
[ -n "$port" ] || { echo "punchd did not start:" >&2; cat "$log" >&2; exit 1; }
base=http://127.0.0.1:$port

echo "# $(date -u +%FT%TZ) $PUNCHD; $DEVICES terminals × $PER_BATCH punches/s for ${SECS} s; load: $(uptime)"
# The fleet runs a little longer than the page watches; its first punches are a day ago, so nothing is in
# the future on the terminals' clocks.
"$PUNCHD" simulate push --server "$base" --devices "$DEVICES" --punches-per-batch "$PER_BATCH" \
    --batch-interval-ms 1000 --poll-interval-ms 5000 --users 500 \
    --duration-secs $((SECS + 15)) \
    --first-punch-at "$(date -u -d '1 day ago' '+%Y-%m-%d %H:%M:%S')" >"$WORK/sim.log" 2>&1 &
sim=$!
pids+=($sim)
status=0
node "$repo/tests/browser/live-feed.mjs" "$base" bench "$password" "$SECS" "$EVERY" || status=$?
kill "$sim" 2>/dev/null || true
wait "$sim" 2>/dev/null || true
echo "# simulator:"
sed 's/^/#   /' "$WORK/sim.log" | tail -n 12
stored=$(curl -s "$base/metrics" | awk '/^punchd_punches_stored_total/ {s += $2} END {print s + 0}')
echo "# punches stored (punchd_punches_stored_total): $stored; load at the end: $(uptime)"
exit "$status"
