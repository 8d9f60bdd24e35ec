#!/usr/bin/env bash
# Peak memory of `punchd serve` for one large push request (issue 6, "Resources": a 16 MiB body of any shape must
# cost under ~100 MB). For each scenario: a fresh database and server, the server's resident memory before
# (VmRSS, after a warm-up request), one request (two for `twice`), then the server's peak resident memory (VmHWM
# from /proc/PID/status) and the answer. One TSV line per scenario on stdout:
#   scenario  status  answer  rss_before_kb  peak_kb  peak_minus_before_kb  body_bytes
#
#   cargo build --release -p punchd
#   scripts/bench/push-memory.sh [scenario ...]
#
# Scenarios (bodies of 16 MiB or just under; default: all):
#   longbad    ATTLOG, 10,000 lines of 1,676 control bytes (every line bad; issue 6's "one bad line" case made
#              as large as max_lines_per_request allows)
#   longgood   ATTLOG, 10,000 good punches with a 1,640-byte extra column each
#   onebad     ATTLOG, one good line, then one 16 MiB line of control bytes (over max_line_bytes, not parsed)
#   manylines  ATTLOG, 8,388,608 lines of "x" (issue 6's reproduction; refused with 413 before parsing)
#   cmdmany    devicecmd, 838,860 one-line results `ID=n&Return=0&CMD=DATA` (at most 10,000 applied)
#   cmdfields  devicecmd, one INFO result followed by 1.6 M `Key=Value` lines (at most 1,024 kept)
#   cmdcontent devicecmd, one Shell result whose Content= is 16 MiB (64 KiB kept in the result)
#   twice      longbad sent twice at the same time
#
# Environment: PUNCHD (binary; default target/release/punchd, else target/debug/punchd), WORK (scratch directory,
# default /tmp/punchd-mem).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
. "$here/common.sh"
target=${CARGO_TARGET_DIR:-$here/../../target}
if [ -z "${PUNCHD:-}" ]; then
    PUNCHD=$target/release/punchd
    [ -x "$PUNCHD" ] || PUNCHD=$target/debug/punchd
fi
WORK=${WORK:-/tmp/punchd-mem}
mkdir -p "$WORK"
[ -x "$PUNCHD" ] || { echo "no punchd binary at $PUNCHD" >&2; exit 1; }

make_body() {
    local f=$WORK/$1.bin
    [ -s "$f" ] && return 0
    python3 - "$1" "$f" <<'EOF'
import sys
name, path = sys.argv[1], sys.argv[2]
with open(path, "wb") as out:
    if name in ("longbad", "twice"):
        out.write(("\x01" * 1676 + "\n").encode() * 10000)
    elif name == "longgood":
        for n in range(10000):
            out.write(f"{n % 500 + 1}\t2026-11-02 {n // 3600 % 24:02}:{n // 60 % 60:02}:{n % 60:02}\t0\t1\t0\t{'e' * 1640}\n".encode())
    elif name == "onebad":
        out.write(b"1\t2026-11-02 08:00:00\t0\t1\n" + b"\x01" * (16 * 1024 * 1024 - 64) + b"\n")
    elif name == "manylines":
        out.write(b"x\n" * 8388608)
    elif name == "cmdmany":
        n, size = 0, 0
        while size < 16 * 1024 * 1024 - 40:
            line = f"ID={n % 100000 + 1}&Return=0&CMD=DATA\n".encode()
            out.write(line); size += len(line); n += 1
    elif name == "cmdfields":
        out.write(b"ID=1\nReturn=0\nCMD=INFO\n")
        size, n = 0, 0
        while size < 16 * 1024 * 1024 - 40:
            line = f"K{n}=v\n".encode()
            out.write(line); size += len(line); n += 1
    elif name == "cmdcontent":
        out.write(b"ID=1&Return=0&CMD=Shell&Content=" + b"o" * (16 * 1024 * 1024 - 64))
EOF
}

kb() { awk -v k="$2" '$1 == k":" {print $2}' "/proc/$1/status"; }

run() {
    local name=$1 table path db log port pid before peak status answer
    make_body "$name"
    db=$WORK/$name.db
    log=$WORK/$name.log
    rm -f "$db" "$db-wal" "$db-shm"
    "$PUNCHD" serve --listen 127.0.0.1:0 --database "$db" >"$log" 2>&1 &
    pid=$!
    port=""
    for _ in $(seq 1 100); do
        port=$(served_port "$log")
        [ -n "$port" ] && break
        sleep 0.1
    done
    [ -n "$port" ] || { echo "server did not start: $(cat "$log")" >&2; kill "$pid"; exit 1; }
    case $name in
        cmd*) path="/iclock/devicecmd?SN=MEM0001" ;;
        *) path="/iclock/cdata?SN=MEM0001&table=ATTLOG" ;;
    esac
    # Warm-up: the terminal greets (registered, approved on first contact by default) and uploads one punch.
    curl -s -o /dev/null "http://127.0.0.1:$port/iclock/cdata?SN=MEM0001&options=all&pushver=2.4.1"
    curl -s -o /dev/null --data-binary $'1\t2026-11-01 08:00:00\t0\t1\n' \
        "http://127.0.0.1:$port/iclock/cdata?SN=MEM0001&table=ATTLOG"
    before=$(kb "$pid" VmRSS)
    if [ "$name" = twice ]; then
        curl -s -o "$WORK/$name.a1" -w '%{http_code}' --data-binary "@$WORK/$name.bin" \
            "http://127.0.0.1:$port$path" >"$WORK/$name.s1" &
        local other=$!
        status=$(curl -s -o "$WORK/$name.answer" -w '%{http_code}' --data-binary "@$WORK/$name.bin" \
            "http://127.0.0.1:$port$path")
        wait "$other"
        status="$status+$(cat "$WORK/$name.s1")"
    else
        status=$(curl -s -o "$WORK/$name.answer" -w '%{http_code}' --data-binary "@$WORK/$name.bin" \
            "http://127.0.0.1:$port$path")
    fi
    answer=$(head -c 60 "$WORK/$name.answer" | tr '\n\t' '  ')
    peak=$(kb "$pid" VmHWM)
    kill -TERM "$pid"
    wait "$pid" 2>/dev/null || true
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$status" "$answer" "$before" "$peak" "$((peak - before))" \
        "$(stat -c %s "$WORK/$name.bin")"
}

scenarios=("$@")
[ ${#scenarios[@]} -gt 0 ] || scenarios=(longbad longgood onebad manylines cmdmany cmdfields cmdcontent twice)
printf 'scenario\tstatus\tanswer\trss_before_kb\tpeak_kb\tpeak_minus_before_kb\tbody_bytes\n'
for s in "${scenarios[@]}"; do
    run "$s"
done
