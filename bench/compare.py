#!/usr/bin/env python3
"""Side-by-side speed comparison: Stylist vs ONNX Runtime on the same networks, weights and sizes.

For each (model, size) it runs `stylist bench` and ONNX Runtime (../shared/bench/bench_ort.py's worker,
2 threads, ORT_ENABLE_ALL, a fresh process each time) alternately, A B A B, and prints each pair's
ratio ours/ORT (median times) and the median of the ratios. Run through bench/compare.sh.
"""
import argparse, json, os, statistics, subprocess, sys, tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
# The shared directory (models, images, ORT scripts): STYLIST_SHARED, else ../shared beside the checkout.
SHARED = os.environ.get("STYLIST_SHARED") or os.path.normpath(os.path.join(HERE, "..", "..", "shared"))
ORT_BENCH = os.path.join(SHARED, "bench", "bench_ort.py")
MODELS = os.path.join(SHARED, "models")


def export(models, outdir, py):
    code = ("import sys, onnx; sys.path.insert(0, %r); import onnx_export as ox\n"
            "for m in sys.argv[2:]:\n"
            "    onnx.save(ox.build('%s/' + m + '.safetensors'), sys.argv[1] + '/' + m + '.onnx')\n") % (os.path.dirname(ORT_BENCH), MODELS)
    subprocess.run([py, "-c", code, outdir] + models, check=True)


def ours(binary, model, size, runs, min_seconds=0.0):
    # Same warm-up and run count rule as the ORT worker (--min-seconds), so both are timed over equally long windows.
    with tempfile.NamedTemporaryFile(suffix=".json") as f:
        subprocess.run([binary, "bench", "--models", MODELS, "--model", model, "--size", str(size), "--runs", str(runs),
                        "--min-seconds", str(min_seconds), "--no-layers", "--json", f.name], check=True, stdout=subprocess.DEVNULL)
        return json.load(open(f.name))


def ort(py, onnx_path, size, runs, min_seconds):
    p = subprocess.run([py, ORT_BENCH, "--worker", onnx_path, str(size), str(runs), "2", str(min_seconds)],
                       capture_output=True, text=True, check=True)
    return json.loads(p.stdout.strip().splitlines()[-1])


def matmul_ceiling(py):
    """numpy/OpenBLAS float32 matmul GFLOP/s with 2 threads, measured by bench_ort.py's own code."""
    code = "import sys; sys.path.insert(0, %r); import bench_ort, json; print(json.dumps(bench_ort.matmul_peak(2, (2048,))))" % os.path.dirname(ORT_BENCH)
    p = subprocess.run([py, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(p.stdout.strip().splitlines()[-1])["2048"]["median_gflops"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", required=True)
    ap.add_argument("--python", default="/tmp/ortvenv/bin/python")
    ap.add_argument("--models", default="microast,adain-vgg19-cd16x,adain-vgg19-full-random")
    ap.add_argument("--sizes", default="512,1024")
    ap.add_argument("--rounds", type=int, default=2, help="A B pairs per configuration")
    ap.add_argument("--runs", type=int, default=3, help="timed runs per process (after warm-up)")
    ap.add_argument("--min-seconds", type=float, default=2.0, help="ORT worker: timed runs cover at least this long")
    ap.add_argument("--dir", default="/tmp/stylist-ort")
    ap.add_argument("--ceiling", action="store_true", help="also measure the sgemm ceiling and our dense 3x3 convs against it")
    a = ap.parse_args()
    models, sizes = a.models.split(","), [int(s) for s in a.sizes.split(",")]
    os.makedirs(a.dir, exist_ok=True)
    export(models, a.dir, a.python)
    print("| model | size | round | Stylist median ms | ORT median ms | ratio ours/ORT | Stylist peak RSS MB | ORT peak RSS MB |")
    print("|---|---|---|---|---|---|---|---|")
    summary = []
    for m in models:
        for s in sizes:
            ratios = []
            for r in range(a.rounds):
                x = ours(a.binary, m, s, a.runs, a.min_seconds)
                y = ort(a.python, f"{a.dir}/{m}.onnx", s, a.runs, a.min_seconds)
                ratio = x["median_s"] / y["median_s"]
                ratios.append(ratio)
                print(f"| {m} | {s} | {r + 1} | {x['median_s'] * 1e3:.0f} | {y['median_s'] * 1e3:.0f} | {ratio:.2f} | "
                      f"{x['peak_rss_mb']:.0f} | {y['peak_rss_mb']:.0f} |", flush=True)
            summary.append((m, s, statistics.median(ratios), ratios))
    if a.ceiling:
        ceiling = matmul_ceiling(a.python)
        print(f"\nnumpy/OpenBLAS sgemm 2048^2, 2 threads (bench_ort.matmul_peak): median {ceiling:.1f} GFLOP/s")
        for m in models:
            for s in sizes:
                x = ours(a.binary, m, s, a.runs)
                if x.get("conv3x3_s"):
                    rate = x["conv3x3_gflop"] / x["conv3x3_s"]
                    print(f"  {m} {s}: dense 3x3 convs {rate:.1f} GFLOP/s (direct-conv FLOPs) = {100 * rate / ceiling:.0f}% of sgemm")
    print("\n| model | size | median ratio ours/ORT | ratios |")
    print("|---|---|---|---|")
    for m, s, med, rs in summary:
        print(f"| {m} | {s} | **{med:.2f}** | {', '.join(f'{r:.2f}' for r in rs)} |")


if __name__ == "__main__":
    main()
