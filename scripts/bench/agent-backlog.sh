#!/usr/bin/env bash
# The agent backlog benchmark (BENCHMARKS.md, issue 10): how fast `punchd agent` forwards a backlog of punches it
# holds to a hub. Three steps:
#   1. a simulated pull terminal with PUNCHES punches (`punchd simulate pull --no-pacing`), and an agent pointed at a hub
#      that is not running yet: it pulls the whole log into its own SQLite file (the backlog) and backs off;
#   2. the agent is stopped once it holds every punch, the simulator too;
#   3. a fresh hub (`punchd serve`, power-safe) starts, the agent starts again, and the time from its start until
#      the hub holds every punch is measured: punches/s = PUNCHES / seconds.
#
#   cargo build --release -p punchd
#   scripts/bench/agent-backlog.sh
#
# Environment: PUNCHD (binary, default target/release/punchd), PUNCHES (default 1000000), BATCH (punches per
# batch, default 5000), WORK (scratch directory, default /tmp/punchd-agent-bench), HUB_CPU / AGENT_CPU (default 1 / 0).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
target=${CARGO_TARGET_DIR:-$here/../../target}
PUNCHD=${PUNCHD:-$target/release/punchd}
PUNCHES=${PUNCHES:-1000000}
BATCH=${BATCH:-5000}
WORK=${WORK:-/tmp/punchd-agent-bench}
HUB_CPU=${HUB_CPU:-1}
AGENT_CPU=${AGENT_CPU:-0}
SN=BENCHAGENT01

rm -rf "$WORK" && mkdir -p "$WORK"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
count() { sqlite3 "$1" "SELECT COUNT(*) FROM punches WHERE device_sn = '$SN'" 2>/dev/null || echo 0; }
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

hub_port=$(free_port)
sim_port=$(free_port)
token=$("$PUNCHD" --database "$WORK/hub.db" agents add bench --site bench 2>/dev/null)

agent() {
  taskset -c "$AGENT_CPU" "$PUNCHD" --database "$WORK/agent.db" agent --hub "http://127.0.0.1:$hub_port" \
    --token "$token" --site bench --device "$SN@127.0.0.1:$sim_port,interval=3600" --time-zone UTC \
    --batch-size "$BATCH" --max-backoff 2 --verify-every 3600 2>>"$WORK/agent.log" &
  agent_pid=$!
  pids+=("$agent_pid")
}

echo "step 1: the agent pulls $PUNCHES punches into its backlog (hub not running)"
"$PUNCHD" simulate pull --port "$sim_port" --bind 127.0.0.1 --punches "$PUNCHES" --sn "$SN" --no-pacing \
  >"$WORK/sim.log" 2>&1 &
sim_pid=$!
pids+=("$sim_pid")
sleep 1
agent
# The generated log may hold a few exact repeats (kept once), so wait for the count to stop growing.
last=-1
while :; do
  sleep 5
  now=$(count "$WORK/agent.db")
  [ "$now" -gt 0 ] && [ "$now" = "$last" ] && break
  last=$now
done
kill "$agent_pid"; wait "$agent_pid" 2>/dev/null || true
kill "$sim_pid"; wait "$sim_pid" 2>/dev/null || true
held=$(count "$WORK/agent.db")
echo "  the agent holds $held punches"

echo "step 2: a hub starts; the agent forwards its backlog"
taskset -c "$HUB_CPU" "$PUNCHD" --database "$WORK/hub.db" --listen "127.0.0.1:$hub_port" serve --time-zone UTC \
  2>"$WORK/hub.log" &
pids+=("$!")
until grep -q "punchd is running" "$WORK/hub.log"; do sleep 0.1; done
start=$(date +%s.%N)
agent
until [ "$(count "$WORK/hub.db")" -ge "$held" ]; do sleep 0.2; done
end=$(date +%s.%N)
secs=$(python3 -c "print(f'{$end - $start:.2f}')")
rate=$(python3 -c "print(int($held / ($end - $start)))")
echo "forwarded $held punches in $secs s: $rate punches/s (batch $BATCH)"
dupes=$(sqlite3 "$WORK/hub.db" "SELECT COUNT(*) - COUNT(DISTINCT device_sn || punched_at || pin || punch_state) FROM punches")
echo "duplicates at the hub: $dupes"
