#!/usr/bin/env bash
# API conformance against a running punchd (issue 6): the OpenAPI document served at /api/v1/openapi.json must
# pass openapi-spec-validator, and schemathesis (property-based requests generated from that document) must
# find no 5xx, no undocumented status code or content type, and no response that breaks its schema.
#
# Usage: scripts/api-check.sh [PATH/TO/punchd]   (default: target/debug/punchd; build it first)
# Needs: pip install openapi-spec-validator schemathesis. Bounded: a few examples per operation, one worker,
# deterministic generation, which keeps no example database (every run sends the same requests);
# about a minute on CI's machine. Loopback only (127.0.0.1, port chosen by the OS).
set -euo pipefail
cd "$(dirname "$0")/.."
punchd="${1:-target/debug/punchd}"
max_examples="${API_CHECK_MAX_EXAMPLES:-15}"
work="$(mktemp -d)"
server_pid=""
cleanup() {
    if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

db="$work/punchd.db"
token="$("$punchd" --database "$db" token create api-check --scope admin 2>/dev/null)"
# Something to find: a pull terminal (never reached: nothing listens on port 9) and a push terminal's punches.
"$punchd" --database "$db" devices add APICHECK01 --address 127.0.0.1:9 --interval 3600 >/dev/null

NO_COLOR=1 "$punchd" --database "$db" --listen 127.0.0.1:0 serve --time-zone UTC 2>"$work/server.log" &
server_pid=$!
port=""
for _ in $(seq 1 100); do
    port="$(sed 's/\x1b\[[0-9;]*m//g' "$work/server.log" | grep -o 'listen=127\.0\.0\.1:[0-9]*' | head -n1 | cut -d: -f2 || true)"
    [ -n "$port" ] && break
    sleep 0.1
done
if [ -z "$port" ]; then
    echo "punchd did not start:" >&2
    cat "$work/server.log" >&2
    exit 1
fi
base="http://127.0.0.1:$port"
printf '1001\t2026-11-30 08:00:00\t0\t1\t0\n1002\t2026-11-30 08:01:00\t1\t15\t0\nbad line\n' |
    curl -sf --data-binary @- "$base/iclock/cdata?SN=APICHECK02&table=ATTLOG&Stamp=1" >/dev/null

curl -sf "$base/api/v1/openapi.json" -o "$work/openapi.json"
echo "openapi-spec-validator:"
python3 -m openapi_spec_validator "$work/openapi.json"

echo "schemathesis (max $max_examples examples per operation):"
status=0
timeout 600 schemathesis run "$work/openapi.json" \
    --url "$base" \
    --header "Authorization: Bearer $token" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
    --max-examples "$max_examples" \
    --workers 1 \
    --generation-deterministic \
    --request-timeout 20 \
    --no-color || status=$?
if grep -q panicked "$work/server.log"; then
    echo "punchd panicked during the API check:" >&2
    grep -A5 panicked "$work/server.log" >&2
    status=1
fi
exit "$status"
