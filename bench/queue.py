#!/usr/bin/env python3
"""Queue overhead of a running `stylist serve`: create-to-start latency on an idle system, and
jobs per second through several workers, with a trivially small job (32x32 images), so the
figures are the queue's and not the network's.

    python3 bench/queue.py http://127.0.0.1:8080 [--latency-jobs 100] [--burst-jobs 300]
"""
import argparse, http.client, json, statistics, struct, sys, threading, time, urllib.parse, uuid, zlib
from datetime import datetime


def png(width, height, seed):
    rows = b"".join(b"\x00" + bytes(((x * 7 + y * 13 + seed) % 256) for x in range(width * 3)) for y in range(height))
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)) \
        + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def form(content, style):
    boundary = uuid.uuid4().hex
    parts = []
    for name, data in (("content", content), ("style", style)):
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{name}.png"\r\n'
                     f"Content-Type: image/png\r\n\r\n".encode() + data + b"\r\n")
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="max_size"\r\n\r\n32\r\n'.encode())
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


class Client:
    def __init__(self, base):
        u = urllib.parse.urlparse(base)
        self.conn = http.client.HTTPConnection(u.hostname, u.port, timeout=120)

    def request(self, method, path, body=None, headers=None):
        self.conn.request(method, path, body=body, headers=headers or {})
        r = self.conn.getresponse()
        return r.status, json.loads(r.read() or b"null")


def stamp(s):
    return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


def run_job(client, body, ctype):
    status, job = client.request("POST", "/v1/jobs", body, {"Content-Type": ctype})
    assert status == 202, (status, job)
    while job["status"] not in ("succeeded", "failed", "canceled"):
        _, job = client.request("GET", f"/v1/jobs/{job['id']}?wait=30")
    assert job["status"] == "succeeded", job
    return job


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("base")
    parser.add_argument("--latency-jobs", type=int, default=100)
    parser.add_argument("--burst-jobs", type=int, default=300)
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args()
    body, ctype = form(png(32, 32, 1), png(32, 32, 2))

    client = Client(args.base)
    for _ in range(5):
        run_job(client, body, ctype)   # warm-up: model loaded, caches filled
    waits = []
    for _ in range(args.latency_jobs):
        job = run_job(client, body, ctype)
        waits.append((stamp(job["started_at"]) - stamp(job["created_at"])) * 1000)
        time.sleep(0.05)   # an idle system: no job queued when the next one arrives

    done, lock = [], threading.Lock()
    per_client = args.burst_jobs // args.clients

    def burst():
        c = Client(args.base)
        for _ in range(per_client):
            job = run_job(c, body, ctype)
            with lock:
                done.append(job)
    start = time.time()
    threads = [threading.Thread(target=burst) for _ in range(args.clients)]
    for t in threads: t.start()
    for t in threads: t.join()
    elapsed = time.time() - start
    print(json.dumps({
        "create_to_start_ms_p50": round(percentile(waits, 50), 1),
        "create_to_start_ms_p99": round(percentile(waits, 99), 1),
        "burst_jobs": len(done),
        "jobs_per_second": round(len(done) / elapsed, 1),
    }))


if __name__ == "__main__":
    main()
