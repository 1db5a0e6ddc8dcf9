#!/usr/bin/env bash
# Stylist vs ONNX Runtime, side by side in one run (A B A B), ratio ours/ORT per pair and its median.
# Needs the ORT venv of ../shared/bench/README.md:
#   python3 -m venv /tmp/ortvenv && /tmp/ortvenv/bin/pip install numpy pillow onnx onnxruntime
# Usage: bench/compare.sh [--models a,b] [--sizes 512,1024] [--rounds 2] [--runs 3]
# STYLIST_SCRATCH_PATH=DIR builds into DIR instead of .build (swift build --scratch-path).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v swift >/dev/null 2>&1 || export PATH=/opt/swift/usr/bin:$PATH
build=(swift build -c release ${STYLIST_SCRATCH_PATH:+--scratch-path "$STYLIST_SCRATCH_PATH"})
"${build[@]}" --product stylist >&2
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores; $(date -u +%Y-%m-%dT%H:%MZ)"
exec python3 bench/compare.py --binary "$("${build[@]}" --show-bin-path)/stylist" "$@"
