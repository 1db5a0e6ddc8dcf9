#!/usr/bin/env bash
# The test suite under ThreadSanitizer and AddressSanitizer (issue 10): the job system, the
# watchers and the connection code are concurrent, and the C shims handle hostile bytes.
#   scripts/sanitizers.sh [thread|address]...   (default: both)
# Each sanitizer builds in its own scratch directory (.build-tsan, .build-asan). The engine's
# kernel and golden-model suites run too unless SANITIZE_SKIP_ENGINE=1 (they are long under TSan).
# Timing-based tests scale their deadlines by STYLIST_TEST_TIME_SCALE (sanitized jobs run ~10x slower).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v swift >/dev/null 2>&1; then
    for f in /etc/profile /etc/profile.d/*.sh; do [ -r "$f" ] && . "$f"; done
fi
export STYLIST_TEST_TIME_SCALE="${STYLIST_TEST_TIME_SCALE:-10}"
# TSan: fail on the first report; ASan: leaks are not checked (Dispatch and the Swift runtime keep
# process-lifetime allocations that LeakSanitizer reports).
export TSAN_OPTIONS="${TSAN_OPTIONS:-halt_on_error=1}"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=0}"
skip=()
[ "${SANITIZE_SKIP_ENGINE:-0}" = 1 ] && skip=(--skip "EngineTests|ModelsTests|BandedExecutionTests|GoldenTests")
for sanitizer in "${@:-thread address}"; do
    for s in $sanitizer; do
        case "$s" in thread) dir=.build-tsan ;; address) dir=.build-asan ;; *) echo "unknown sanitizer $s" >&2; exit 2 ;; esac
        echo "== $s sanitizer"
        swift build --build-tests --sanitize="$s" --scratch-path "$dir"
        swift test --skip-build --sanitize="$s" --scratch-path "$dir" "${skip[@]}"
    done
done
