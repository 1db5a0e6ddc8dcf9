#!/usr/bin/env python3
"""Poll latency while inference runs: starts `stylist serve` (release build), submits a 1024x1024
job, and times N sequential `GET /v1/jobs/ID` requests (new connection each, like curl) while the
job is running. Prints p50/p90/p99/max in ms and how many polls saw the job running.

Usage: bench/poll_latency.py --binary .build/release/stylist [--model adain-vgg19-full-random]
       [--size 1024] [--polls 200]   (inputs from bench/make_inputs.py, made if missing)"""
import argparse, http.client, json, os, shutil, statistics, subprocess, sys, tempfile, time, uuid

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def multipart(fields, files):
    boundary = uuid.uuid4().hex
    out = b""
    for k, v in fields.items():
        out += f"--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n".encode()
    for k, path in files:
        out += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"; filename=\"{os.path.basename(path)}\"\r\n"
                f"Content-Type: image/png\r\n\r\n").encode() + open(path, "rb").read() + b"\r\n"
    return out + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def request(port, method, path, body=None, headers=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, data


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", required=True)
    ap.add_argument("--model", default="adain-vgg19-full-random")
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--polls", type=int, default=200)
    ap.add_argument("--port", type=int, default=18089)
    a = ap.parse_args()
    inputs = "/tmp/stylist-bench"
    content, style = f"{inputs}/content-{a.size}.png", f"{inputs}/style-{a.size}.png"
    if not os.path.exists(content):
        subprocess.run([sys.executable, os.path.join(HERE, "make_inputs.py"), inputs], check=True)
    data = tempfile.mkdtemp(prefix="stylist-poll-")
    env = dict(os.environ, STYLIST_MAX_SIZE_CAP=str(max(2048, a.size)), STYLIST_LOG_LEVEL="warning")
    server = subprocess.Popen([a.binary, "serve", "--port", str(a.port), "--data-dir", data], cwd=ROOT, env=env)
    try:
        for _ in range(100):
            try:
                if request(a.port, "GET", "/healthz")[0] == 200:
                    break
            except OSError:
                time.sleep(0.1)
        body, ctype = multipart({"model": a.model, "max_size": a.size}, [("content", content), ("style", style)])
        status, resp = request(a.port, "POST", "/v1/jobs", body, {"Content-Type": ctype})
        assert status == 202, (status, resp)
        job = json.loads(resp)["id"]
        while json.loads(request(a.port, "GET", f"/v1/jobs/{job}")[1])["status"] != "running":
            time.sleep(0.01)
        times, running = [], 0
        for _ in range(a.polls):
            t = time.perf_counter()
            status, resp = request(a.port, "GET", f"/v1/jobs/{job}")
            times.append((time.perf_counter() - t) * 1e3)
            assert status == 200
            running += json.loads(resp)["status"] == "running"
        q = statistics.quantiles(times, n=100)
        print(f"{a.polls} sequential GET /v1/jobs/ID while a {a.model} {a.size}x{a.size} job runs "
              f"({running} of them saw it running): p50 {q[49]:.2f} ms, p90 {q[89]:.2f} ms, "
              f"p99 {q[98]:.2f} ms, max {max(times):.2f} ms")
    finally:
        server.terminate()
        server.wait(timeout=60)
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
