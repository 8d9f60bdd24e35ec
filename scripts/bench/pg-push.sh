#!/usr/bin/env bash
# punchd on PostgreSQL, one instance and two (issue 10, "Speed"): single-punch POSTs/s and punches/s at 10 and 100
# per POST, driven by the independent load generator `devload` (shared/bench), 50 terminals, `Connection: close`,
# a fresh database per run. With two instances, each serves half the terminals (one devload per instance, SNs
# apart) and the figures are summed: "two instances not slower than one".
#
# Targets: ≥ 4,000 single-punch POSTs/s, ≥ 30,000 punches/s at 10 per POST, ≥ 90,000 at 100 per POST (one
# instance, this 2-core machine); two instances not slower than one.
#
#   cargo build --release -p punchd
#   cp -r shared/bench/devload /tmp/benchsrc/ && (cd /tmp/benchsrc/devload && cargo build --release)
#   scripts/bench/pg-push.sh                 # attlog1 attlog10 attlog100, instances 1 and 2, RUNS=3
#
# Environment: PUNCHD (target/release/punchd), DEVLOAD, PG (postgres://postgres@127.0.0.1:5432), RUNS (3),
# DURATION (10 s), INSTANCES ("1 2"). Every process shares the two cores with PostgreSQL: nothing is pinned, and
# the CPU of punchd and of PostgreSQL's backends is reported per run, and the transactions PostgreSQL committed in
# the run's database (each group write is one; a few a second are the instances' own upkeep; PostgreSQL's
# statistics lag up to a second). After each run the script counts the stored punches and checks them against what
# devload saw acknowledged (every acknowledged punch stored, none twice). At the end it prints, per batch size, the
# median of the runs and the median of the per-round ratios of two instances to one.
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
PUNCHD=${PUNCHD:-$here/target/release/punchd}
DEVLOAD=${DEVLOAD:-/tmp/benchsrc/devload/target/release/devload}
PG=${PG:-postgres://postgres@127.0.0.1:5432}
RUNS=${RUNS:-3}
DURATION=${DURATION:-10}
INSTANCES=${INSTANCES:-"1 2"}
DB=punchd_bench
WORK=$(mktemp -d /tmp/pg-push.XXXXXX)
trap 'pkill -f "$WORK/bench.toml" 2>/dev/null || true; rm -rf "$WORK"' EXIT
printf '[limits]\nnew_sns_per_address_per_minute = 100000\n' >"$WORK/bench.toml"

batch_of() {
    case $1 in
        attlog1) echo 1 ;;
        attlog10) echo 10 ;;
        attlog100) echo 100 ;;
        *) echo "unknown scenario $1" >&2; return 1 ;;
    esac
}

pg_cpu_ticks() {
    # utime + stime of every PostgreSQL process (backends come and go; the postmaster's children are summed).
    local total=0 pid
    for pid in $(pgrep -x postgres || true); do
        [ -r "/proc/$pid/stat" ] || continue
        total=$((total + $(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0)))
    done
    echo "$total"
}

pg_commits() {
    # Transactions committed in the run's database: with single-statement group writes, about one per group.
    psql "$PG/postgres" -tAc "SELECT xact_commit FROM pg_stat_database WHERE datname = '$DB'"
}

run_one() {
    local scenario=$1 n=$2 run=$3 batch per i pids=() ports=() ticks0 ticks1 pg0 pg1 commits0 commits1
    batch=$(batch_of "$scenario")
    psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB" >/dev/null
    # Every run starts right after a checkpoint: otherwise a run that meets PostgreSQL's timed checkpoint pays
    # full-page writes the others do not (runs of one binary spread 42k-69k punches/s at 100 per POST without it).
    psql "$PG/postgres" -qc "CHECKPOINT" >/dev/null
    for i in $(seq 1 "$n"); do
        local port=$((8200 + i))
        "$PUNCHD" --config "$WORK/bench.toml" --database "$PG/$DB" serve --listen "127.0.0.1:$port" \
            >"$WORK/server$i.log" 2>&1 &
        pids+=($!)
        ports+=("$port")
        for _ in $(seq 1 200); do
            (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
            sleep 0.05
        done
    done
    sleep 0.5
    ticks0=0
    for pid in "${pids[@]}"; do ticks0=$((ticks0 + $(awk '{print $14 + $15}' "/proc/$pid/stat"))); done
    pg0=$(pg_cpu_ticks)
    commits0=$(pg_commits)
    per=$((50 / n))
    local loads=()
    for i in $(seq 1 "$n"); do
        "$DEVLOAD" --url "http://127.0.0.1:${ports[$((i - 1))]}" --threads 1 --duration "$DURATION" --progress 0 \
            --devices "$per" --sn-offset $(((i - 1) * 1000)) --heartbeat 0 --upload 0 --batch "$batch" \
            --json "$WORK/load$i.json" >"$WORK/load$i.out" 2>&1 &
        loads+=($!)
    done
    wait "${loads[@]}"
    ticks1=0
    for pid in "${pids[@]}"; do ticks1=$((ticks1 + $(awk '{print $14 + $15}' "/proc/$pid/stat"))); done
    pg1=$(pg_cpu_ticks)
    commits1=$(pg_commits)
    local load1 stored
    load1=$(cut -d' ' -f1 /proc/loadavg)
    for pid in "${pids[@]}"; do kill "$pid"; done
    wait "${pids[@]}" 2>/dev/null || true
    stored=$(psql "$PG/$DB" -tAc 'SELECT COUNT(*) FROM punches')
    python3 - "$WORK" "$n" "$scenario" "$run" "$((ticks1 - ticks0))" "$((pg1 - pg0))" "$stored" "$load1" \
        "$((commits1 - commits0))" <<'EOF'
import json, os, sys
work, n, scenario, run, ticks, pg_ticks, stored, load1, commits = sys.argv[1:10]
loads = [json.load(open(f"{work}/load{i}.json")) for i in range(1, int(n) + 1)]
hz = os.sysconf("SC_CLK_TCK")
req = sum(r["requests"] for r in loads)
rps = sum(r["requests_per_s"] for r in loads)
acked_s = sum(r["records_acked_per_s"] for r in loads)
acked = sum(r["distinct_records_acked"] for r in loads)
sent = sum(r["distinct_records_sent"] for r in loads)
bad = sum(r["non_ok"] + r["errors"] + r["ok_count_mismatch"] for r in loads)
stored = int(stored)
check = "ok" if acked <= stored <= sent else f"MISMATCH acked={acked} sent={sent}"
cpu, pg = int(ticks) / hz, int(pg_ticks) / hz
print("\t".join(map(str, [f"instances={n}", scenario, run, f"{rps:.0f} req/s", f"{acked_s:.0f} punches/s",
    f"p50 {max(r['latency_ms']['p50'] for r in loads)} ms", f"punchd cpu {cpu:.2f} s",
    f"postgres cpu {pg:.2f} s", f"{cpu * 1e6 / max(req, 1):.0f} us/req (punchd)", f"stored {stored} ({check})",
    f"non-ok {bad}", f"load1 {load1}", f"{commits} commits ({req / max(int(commits), 1):.1f} uploads each)"])))
EOF
}

scenarios=("$@")
[ ${#scenarios[@]} -gt 0 ] || scenarios=(attlog1 attlog10 attlog100)
echo "# $(date -u +%FT%TZ) $(git -C "$here" rev-parse --short HEAD) nproc=$(nproc)"
for run in $(seq 1 "$RUNS"); do
    for scenario in "${scenarios[@]}"; do
        for n in $INSTANCES; do
            run_one "$scenario" "$n" "$run"
        done
    done
done | tee "$WORK/runs.tsv"
psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $DB" >/dev/null
# Per batch size: the median of the runs for each number of instances (POSTs/s at one punch per POST, punches/s
# otherwise) and, with more than one, the median of the per-round ratios to one instance. The runs of a round are
# back to back, so a ratio compares runs that saw the host at about the same speed; this host's speed moves by
# ±20 % between rounds.
python3 - "$WORK/runs.tsv" <<'EOF'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    f = line.rstrip("\n").split("\t")
    n, scenario, rnd = int(f[0].split("=")[1]), f[1], int(f[2])
    value = float((f[3] if scenario == "attlog1" else f[4]).split()[0])
    runs.setdefault(scenario, {}).setdefault(n, {})[rnd] = value
for scenario, by_n in runs.items():
    unit = "POSTs/s" if scenario == "attlog1" else "punches/s"
    parts = [f"{n} instance{'s' if n > 1 else ''}: {statistics.median(v.values()):,.0f} {unit}"
             for n, v in sorted(by_n.items())]
    for n, v in sorted(by_n.items()):
        if n > 1 and 1 in by_n:
            ratios = [v[r] / by_n[1][r] for r in v if r in by_n[1]]
            if ratios:
                parts.append(f"{n} / 1: median {statistics.median(ratios):.2f} of {len(ratios)} rounds")
    print(f"# median {scenario}: " + "; ".join(parts))
EOF
