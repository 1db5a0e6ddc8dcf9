#!/usr/bin/env bash
# End-to-end job time against engine time, measured side by side in one run.
#
# For each binary: starts `stylist serve` on a free loopback port with a temporary data dir,
# submits MicroAST jobs (content and style uploaded as 1024x1024 images made from
# ../shared/images) for a 1024² PNG, a 512² PNG and a 1024² JPEG result, reads each job's
# finished_at - started_at, and runs `stylist bench` on the same network and sizes. Prints, per
# binary, the median job time, the engine median, their ratio and the result sizes, plus the
# per-stage breakdown of the executor's "job stages" log line when the binary writes one
# (outside_executor: the part of the job's time before and after the executor, i.e. the job
# system saving the running record and storing the result). Each job is sent when the previous
# one has finished, from one client process that starts nothing while a job runs. With several
# binaries (e.g. a copy of an older build first) the rounds alternate A B A B; --upload picks
# the uploads' format (a JPEG upload takes the scaled decode).
#
# Usage: bench/e2e.sh [--rounds N] [--jobs N] [--upload png|jpeg] [BINARY...]
#   Without a binary, builds `stylist` in release mode (scratch path $E2E_SCRATCH, default
#   .build-e2e). Needs python3 (the client; Pillow for the inputs), and the shared models and images
#   ($STYLIST_SHARED, default ../shared).
set -euo pipefail
cd "$(dirname "$0")/.."

rounds=3
jobs=3
upload=png
binaries=()
while [ $# -gt 0 ]; do
    case "$1" in
        --rounds) rounds="$2"; shift 2 ;;
        --jobs) jobs="$2"; shift 2 ;;
        --upload) upload="$2"; shift 2 ;;
        -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
        *) binaries+=("$1"); shift ;;
    esac
done
case "$upload" in png|jpeg) ;; *) echo "--upload must be png or jpeg" >&2; exit 2 ;; esac

shared="${STYLIST_SHARED:-$(cd .. && pwd)/shared}"
[ -d "$shared/models" ] || { echo "no shared models at $shared (set STYLIST_SHARED)" >&2; exit 1; }
export STYLIST_SHARED="$shared" STYLIST_MODELS="${STYLIST_MODELS:-$shared/models}"

if [ ${#binaries[@]} -eq 0 ]; then
    scratch="${E2E_SCRATCH:-.build-e2e}"
    swift build -c release --product stylist --scratch-path "$scratch" >&2
    binaries=("$scratch/release/stylist")
fi
for b in "${binaries[@]}"; do [ -x "$b" ] || { echo "not an executable: $b" >&2; exit 1; }; done

work="$(mktemp -d /tmp/stylist-e2e.XXXXXX)"
server_pid=""
cleanup() {
    if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

# Inputs: the pictures the other benchmarks use, bicubic to 1024x1024 (Pillow; Debian's python3-pil
# serves when the python3 on PATH has no Pillow).
pil_python=python3
python3 -c 'import PIL' 2>/dev/null || pil_python=/usr/bin/python3
"$pil_python" - "$shared/images" "$work" "$upload" <<'EOF'
import sys
from PIL import Image
images, out, fmt = sys.argv[1:4]
ext = "jpg" if fmt == "jpeg" else "png"
for name, path in (("content", "content/golden_gate.jpg"), ("style", "style/brushstrokes.jpg")):
    im = Image.open(f"{images}/{path}").convert("RGB").resize((1024, 1024), Image.BICUBIC)
    im.save(f"{out}/{name}.{ext}", **({"quality": 92} if fmt == "jpeg" else {}))
EOF
ext=png; [ "$upload" = jpeg ] && ext=jpg

# Prints a JSON field of the job record on stdin (strings without quotes).
field() { python3 -c 'import json,sys; v=json.load(sys.stdin).get(sys.argv[1]); print("" if v is None else v)' "$1"; }

start_server() { # binary, log file
    rm -rf "$work/data"
    "$1" serve --host 127.0.0.1 --port 0 --data-dir "$work/data" >"$2" 2>&1 &
    server_pid=$!
    for _ in $(seq 100); do
        port="$(sed -n 's/.*HTTP server listening.* port=\([0-9]*\).*/\1/p' "$2" 2>/dev/null | head -1 || true)"
        [ -n "$port" ] && return 0
        sleep 0.1
    done
    echo "the server did not start; its log:" >&2; cat "$2" >&2; exit 1
}

stop_server() {
    kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=""
}

# One server's jobs from one client process: each case once to warm up, then each case --jobs times, each
# sent when the previous one finished, as one client would. Prints "size format<TAB>seconds<TAB>
# bytes<TAB>id" per timed job (finished_at - started_at, result size). The client is one Python
# process blocked on its socket while a job runs: on a 2-core machine a process started beside
# the job (curl, or an interpreter behind a pyenv shim, about 0.2 s of CPU) takes a core from the
# engine and shows up as job time.
run_jobs() { # port
    python3 - "$1" "$work/content.$ext" "$work/style.$ext" "$upload" "$jobs" <<'PY'
import http.client, json, sys, uuid
from datetime import datetime
port, content, style, upload, jobs = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
files = {"content": open(content, "rb").read(), "style": open(style, "rb").read()}
mime = "image/jpeg" if upload == "jpeg" else "image/png"
stamp = lambda s: datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()

def job(size, fmt):
    boundary = uuid.uuid4().hex
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{name}"\r\n'
             f'Content-Type: {mime}\r\n\r\n'.encode() + data + b"\r\n" for name, data in files.items()]
    parts += [f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
              for name, value in (("model", "microast"), ("max_size", size), ("format", fmt))]
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    conn.request("POST", "/v1/jobs", b"".join(parts) + f"--{boundary}--\r\n".encode(),
                 {"Content-Type": f"multipart/form-data; boundary={boundary}"})
    response = conn.getresponse()
    accepted = json.loads(response.read())
    if not 200 <= response.status < 300:
        sys.exit(f"submitting a job failed: {response.status} {accepted}")
    for _ in range(20):
        conn.request("GET", f"/v1/jobs/{accepted['id']}?wait=60")
        record = json.loads(conn.getresponse().read())
        if record["status"] == "succeeded":
            break
        if record["status"] in ("failed", "canceled"):
            sys.exit(f"job {record['id']}: {record}")
    conn.close()
    return record

cases = (("1024", "png"), ("512", "png"), ("1024", "jpeg"))
# Each case once, untimed, as `stylist bench` warms up before it times: loads the model and maps the
# engine's buffers for both sizes. (A server's first job of a larger size than any before maps fresh
# memory; that cold cost is measured on its own in BENCHMARKS.md.)
for size, fmt in cases:
    job(size, fmt)
for size, fmt in cases:
    for _ in range(jobs):
        r = job(size, fmt)
        print(f"{size} {fmt}\t{stamp(r['finished_at']) - stamp(r['started_at']):.3f}\t{r['result_size']}\t{r['id']}", flush=True)
PY
}

results="$work/results.tsv"   # binary index, case, kind (job|engine), seconds, bytes, job id
: >"$results"
for round in $(seq "$rounds"); do
    for i in "${!binaries[@]}"; do
        bin="${binaries[$i]}"
        echo "round $round: ${bin}" >&2
        start_server "$bin" "$work/serve-$i-$round.log"
        run_jobs "$port" >"$work/jobs.tsv"
        while IFS=$'\t' read -r c seconds bytes id; do
            printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$i" "$c" job "$seconds" "$bytes" "$id" >>"$results"
        done <"$work/jobs.tsv"
        stop_server
        grep "job stages" "$work/serve-$i-$round.log" >>"$work/stages-$i.log" || true   # the summary keeps the timed jobs' lines
        for size in 1024 512; do
            "$bin" bench --model microast --size "$size" --runs 3 --min-seconds 2 --no-layers --json "$work/bench.json" >/dev/null
            median="$(field median_s <"$work/bench.json")"
            printf '%s\t%s\t%s\t%s\t%s\t-\n' "$i" "$size" engine "$median" 0 >>"$results"
        done
    done
done

python3 - "$results" "$work" "${binaries[@]}" <<'EOF'
import os, re, statistics, sys
results, work, binaries = sys.argv[1], sys.argv[2], sys.argv[3:]
rows = [line.rstrip("\n").split("\t") for line in open(results)]
for i, b in enumerate(binaries):
    mine = [r for r in rows if r[0] == str(i)]
    engine = {s: statistics.median(float(r[3]) for r in mine if r[2] == "engine" and r[1] == s) for s in ("512", "1024")}
    print(f"\n{b}")
    print("| result | job median s | engine median s | job / engine | result bytes (median) |")
    print("|---|---|---|---|---|")
    for case in ("1024 png", "512 png", "1024 jpeg"):
        jobs = [r for r in mine if r[2] == "job" and r[1] == case]
        size, fmt = case.split()
        job = statistics.median(float(r[3]) for r in jobs)
        nbytes = int(statistics.median(int(r[4]) for r in jobs))
        print(f"| {size}² {fmt.upper()} | {job:.3f} | {engine[size]:.3f} | **{job / engine[size]:.2f}** | {nbytes} |")
    # The executor's "job stages" line per job; what the job's time has beyond the executor's
    # total is the job system's own share (the running record's save before the executor starts).
    stages = os.path.join(work, f"stages-{i}.log")
    if os.path.exists(stages):
        order = ["read", "decode", "registered_style", "resize", "color", "prepare", "style_encode", "network", "crop", "encode"]
        job_seconds = {r[5]: float(r[3]) for r in mine if r[2] == "job"}
        per_case = {}
        for line in open(stages):
            kv = dict(re.findall(r'(\w+)=([^\s]+)', line))
            if kv.get("job") not in job_seconds:
                continue
            kv["outside_executor_ms"] = str(job_seconds[kv["job"]] * 1000 - float(kv["total_ms"]))
            per_case.setdefault(f"{kv['max_size']}² {kv['format'].upper()}", []).append(kv)
        for key in ("1024² PNG", "512² PNG", "1024² JPEG"):
            lines = per_case.get(key, [])
            names = [n for n in order if f"{n}_ms" in lines[0]] + ["outside_executor"] if lines else []
            parts = [f"{n} {statistics.median(float(l[n + '_ms']) for l in lines if n + '_ms' in l):.1f}" for n in names]
            if parts:
                print(f"stages {key} (median ms over {len(lines)} jobs): " + ", ".join(parts))
EOF
