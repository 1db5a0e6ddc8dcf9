#!/usr/bin/env bash
# HTTP throughput of `stylist serve` against Hummingbird 2.28 (SwiftNIO) on the same machine,
# side by side in one run: wrk on loopback, alternated runs (ours, theirs, ours, theirs, ...), for
# GET /healthz and GET /v1/jobs/{id}. The reference program (bench/http/hummingbird-reference)
# answers the same two routes with the same bytes: {"status":"ok"} and a copy of a real finished
# job's JSON, taken from our server before the runs. Prints each run and the ratio ours/theirs
# of the median requests per second.
#
# Needs wrk (apt-get install wrk) and the Swift package copies the reference resolves from.
# Usage: bench/http.sh [--runs 3] [--duration 10] [--connections 64] [--threads 2]
# STYLIST_SCRATCH_PATH=DIR builds into DIR instead of .build (swift build --scratch-path).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v swift >/dev/null 2>&1 || export PATH=/opt/swift/usr/bin:$PATH
command -v wrk >/dev/null 2>&1 || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }

runs=3 duration=10 connections=64 threads=2
while [ $# -gt 0 ]; do
    case "$1" in
        --runs) runs=$2; shift 2 ;;
        --duration) duration=$2; shift 2 ;;
        --connections) connections=$2; shift 2 ;;
        --threads) threads=$2; shift 2 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done

build=(swift build -c release ${STYLIST_SCRATCH_PATH:+--scratch-path "$STYLIST_SCRATCH_PATH"})
"${build[@]}" --product stylist >&2
stylist="$("${build[@]}" --show-bin-path)/stylist"
reference_package=bench/http/hummingbird-reference
swift build -c release --package-path "$reference_package" >&2
reference="$(swift build -c release --package-path "$reference_package" --show-bin-path)/HummingbirdComparison"

work=$(mktemp -d "${TMPDIR:-/tmp}/stylist-http-bench.XXXXXX")
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_ready() {
    for _ in $(seq 1 200); do curl -fsS "http://127.0.0.1:$1/healthz" >/dev/null 2>&1 && return 0; sleep 0.05; done
    echo "server on port $1 did not start" >&2; exit 1
}

ours_port=$(free_port)
# The request log stays on (the default, info level), written to a file as a deployment would.
"$stylist" serve --host 127.0.0.1 --port "$ours_port" --data-dir "$work/data" --models models 2>"$work/stylist.log" &
pids+=($!)
wait_ready "$ours_port"

# One real job, finished, so its record no longer changes while it is polled.
job=$(curl -fsS -F content=@docs/cornell-matisse.jpg -F style=@docs/golden-gate-mix.jpg -F max_size=64 \
    "http://127.0.0.1:$ours_port/v1/jobs" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
curl -fsS "http://127.0.0.1:$ours_port/v1/jobs/$job?wait=60" -o "$work/job.json"
python3 - "$work/job.json" <<'EOF'
import json, sys
job = json.load(open(sys.argv[1]))
assert job["status"] == "succeeded", job
EOF

theirs_port=$(free_port)
"$reference" "$theirs_port" "$work/job.json" >"$work/reference.log" 2>&1 &
pids+=($!)
wait_ready "$theirs_port"
cmp -s <(curl -fsS "http://127.0.0.1:$ours_port/v1/jobs/$job") <(curl -fsS "http://127.0.0.1:$theirs_port/v1/jobs/$job") \
    || { echo "the two servers answer different job bodies" >&2; exit 1; }

rps() {   # port path -> requests per second
    wrk -t"$threads" -c"$connections" -d"${duration}s" "http://127.0.0.1:$1$2" | awk '/^Requests\/sec:/ {print $2}'
}

echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores; $(date -u +%Y-%m-%dT%H:%MZ)"
echo "wrk -t$threads -c$connections -d${duration}s, $runs alternated runs per route; job body $(wc -c <"$work/job.json") bytes"
for path in /healthz "/v1/jobs/$job"; do
    wrk -t"$threads" -c"$connections" -d2s "http://127.0.0.1:$ours_port$path" >/dev/null    # warm-up
    wrk -t"$threads" -c"$connections" -d2s "http://127.0.0.1:$theirs_port$path" >/dev/null
    ours=() theirs=()
    for i in $(seq 1 "$runs"); do
        ours+=("$(rps "$ours_port" "$path")")
        theirs+=("$(rps "$theirs_port" "$path")")
        echo "  $path run $i: stylist ${ours[-1]} req/s, hummingbird ${theirs[-1]} req/s"
    done
    python3 - "$path" "${ours[*]}" "${theirs[*]}" <<'EOF'
import statistics, sys
path, ours, theirs = sys.argv[1], [float(x) for x in sys.argv[2].split()], [float(x) for x in sys.argv[3].split()]
o, t = statistics.median(ours), statistics.median(theirs)
route = "/v1/jobs/{id}" if path.startswith("/v1/jobs/") else path
print(f"| GET {route} | {o:,.0f} | {t:,.0f} | {o / t:.2f}x |")
EOF
done
