#!/usr/bin/env bash
# Queue overhead, local data directory against PostgreSQL, in one run (BENCHMARKS.md, "Job queue").
#   bash bench/queue.sh            # builds release into .build-bench unless STYLIST_BIN is set
# Needs PostgreSQL's server binaries (apt-get install postgresql) for the second half.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${STYLIST_BIN:-}"
if [ -z "$BIN" ]; then
    swift build -c release --product stylist --scratch-path .build-bench >/dev/null
    BIN="$(swift build -c release --scratch-path .build-bench --show-bin-path)/stylist"
fi
WORKERS="${WORKERS:-4}"
work="$(mktemp -d)"
# shellcheck source=../.ci/postgres
source .ci/postgres
# The test cluster runs with fsync off; a fair comparison with the fsync'd local store turns it on.
"$STYLIST_TEST_PG_BIN/psql" -q "$STYLIST_TEST_DATABASE_URL" -c "ALTER SYSTEM SET fsync = on" \
    -c "ALTER SYSTEM SET full_page_writes = on" -c "SELECT pg_reload_conf()" >/dev/null
cleanup() { [ -n "${pid:-}" ] && kill "$pid" 2>/dev/null; rm -rf "$work"; }
trap 'cleanup; stylist_pg_stop' EXIT

serve_and_measure() {
    local name="$1"; shift
    "$BIN" serve --host 127.0.0.1 --port 0 --data-dir "$work/$name" "$@" >"$work/$name.log" 2>&1 &
    pid=$!
    local port=""
    for _ in $(seq 1 200); do
        port="$(grep -o 'url=http://127.0.0.1:[0-9]*' "$work/$name.log" | head -n1 | sed 's/.*://')" || true
        [ -n "$port" ] && break
        sleep 0.1
    done
    [ -n "$port" ] || { cat "$work/$name.log"; exit 1; }
    printf '%s: ' "$name"
    python3 bench/queue.py "http://127.0.0.1:$port"
    kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""
}

echo "workers=$WORKERS, $(nproc) cores, $(date -u +%F)"
STYLIST_WORKERS="$WORKERS" serve_and_measure local
STYLIST_WORKERS="$WORKERS" serve_and_measure postgres --database-url "$STYLIST_TEST_DATABASE_URL"
