#!/usr/bin/env python3
"""ONNX Runtime's own per-node profile of one of our networks, to compare with `stylist bench`'s
per-layer table: where ORT spends its time (convolutions vs pads and layout reorders).

Usage: /tmp/ortvenv/bin/python bench/ort_profile.py /tmp/stylist-ort/adain-vgg19-cd16x.onnx 512
(the .onnx files are the ones bench/compare.sh exports). Same session options as bench_ort.py:
2 intra-op threads, ORT_ENABLE_ALL. Prints mean ms per run by operator type, then the slowest nodes.
"""
import collections
import json
import os
import sys

import numpy as np
import onnxruntime as ort


def main():
    path, size = sys.argv[1], int(sys.argv[2])
    runs = int(sys.argv[3]) if len(sys.argv) > 3 else 6
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.enable_profiling = True
    so.profile_file_prefix = "/tmp/ort_profile"
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    feed = {"content": rng.random((1, 3, size, size), np.float32), "style": rng.random((1, 3, size, size), np.float32)}
    sess.run(None, feed)  # warm-up, excluded below
    for _ in range(runs):
        sess.run(None, feed)
    trace = sess.end_profiling()
    events = json.load(open(trace))
    os.remove(trace)
    model_runs = [e for e in events if e.get("name") == "model_run"][1:]
    by_node = collections.defaultdict(float)
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            by_node[(e["args"].get("op_name"), e["name"][: -len("_kernel_time")])] += e["dur"]
    # Node events include the warm-up run: scale by the number of runs recorded.
    n = runs + 1
    print(f"{os.path.basename(path)} {size}x{size}: mean run {sum(e['dur'] for e in model_runs) / len(model_runs) / 1000:.1f} ms "
          f"({len(model_runs)} runs after warm-up), node total {sum(by_node.values()) / n / 1000:.1f} ms per run")
    by_op = collections.defaultdict(float)
    for (op, _), d in by_node.items():
        by_op[op] += d / n / 1000
    for op, d in sorted(by_op.items(), key=lambda x: -x[1]):
        print(f"  {op:28s} {d:8.2f} ms")
    print("slowest nodes:")
    for (op, name), d in sorted(by_node.items(), key=lambda x: -x[1])[:20]:
        print(f"  {op:16s} {name[:44]:44s} {d / n / 1000:8.2f} ms")


if __name__ == "__main__":
    main()
