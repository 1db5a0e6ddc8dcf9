#!/usr/bin/env bash
# Builds (if needed) and runs one libFuzzer target over its seed corpus; see FUZZING.md.
#
#   fuzz/run.sh TARGET SECONDS [libFuzzer flags...]
#   fuzz/run.sh TARGET 0 FILE...        # run the target once on FILEs (reproduce an artifact)
#
# TARGET: http-parser | multipart | safetensors | image-codecs | checkpoints
# Seeds: fuzz/corpus/TARGET (committed, read only). New corpus entries go to
# $STYLIST_FUZZ_WORK/TARGET/corpus (default /tmp/stylist-fuzz, outside git); crash, timeout and
# OOM artifacts to fuzz/artifacts/TARGET/ (gitignored). Build products: .build-fuzz (override
# with STYLIST_FUZZ_SCRATCH).
#
# Sources: STYLIST_FUZZ_SOURCE=tree (default) builds the working tree as it is, through a copy
# (only changed files are copied, so builds stay incremental);
# STYLIST_FUZZ_SOURCE=head builds the last commit (git archive, read only), with the fuzz
# targets (Sources/Fuzz*) and Package.swift taken from the working tree, for when the tree
# is mid-edit and does not compile.
set -euo pipefail

usage() { echo "usage: $0 {http-parser|multipart|safetensors|image-codecs|checkpoints} SECONDS [libFuzzer flags or files...]" >&2; exit 2; }
[[ $# -ge 2 ]] || usage
target=$1; seconds=$2; shift 2
case $target in
    http-parser) product=FuzzHTTPParser ;;
    multipart) product=FuzzMultipart ;;
    safetensors) product=FuzzSafeTensors ;;
    image-codecs) product=FuzzImageCodecs ;;
    checkpoints) product=FuzzCheckpoints ;;
    *) usage ;;
esac

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scratch=${STYLIST_FUZZ_SCRATCH:-$root/.build-fuzz}
workroot=${STYLIST_FUZZ_WORK:-/tmp/stylist-fuzz}
work=$workroot/$target
source=${STYLIST_FUZZ_SOURCE:-tree}
mkdir -p "$work/corpus" "fuzz/artifacts/$target" "$scratch"

# Release build (optimised, Swift runtime checks kept) with libFuzzer coverage and ASan on every
# module, the C shim included; -g for symbolised reports. SwiftPM only rebuilds what changed.
# Not `swift build --sanitize=fuzzer --sanitize=address`: SwiftPM passes those to swiftc as two
# separate -sanitize= options, in no fixed order, and swiftc keeps only the last one, so the Swift
# code ends up with ASan but no coverage (or the reverse). The combined option given with -Xswiftc
# comes last and wins (the link step gets it too, so main comes from the libFuzzer runtime);
# --sanitize=fuzzer stays because it stops SwiftPM from aliasing main to the module's own
# entry point (which -parse-as-library targets without @main do not have).
# The copy SwiftPM builds sits beside the scratch directory (gitignored like it), so two runs
# sharing a scratch directory share its copy too; a lock in the scratch directory keeps them from
# building at the same time.
snapshot=$scratch-src
# Copies the files of $1 into $2 (same relative paths), only those whose content differs, and
# removes from $2 what $1 does not have: unchanged files keep their timestamps.
sync_tree() {
    local from=$1 to=$2 f
    (cd "$from" && find . -type f) | while read -r f; do
        if ! cmp -s "$from/$f" "$to/$f"; then mkdir -p "$(dirname "$to/$f")"; cp "$from/$f" "$to/$f"; fi
    done
    (cd "$to" && find . -type f) | while read -r f; do
        [[ -e $from/$f ]] || rm -f "$to/$f"
    done
}
(
    flock 9
    staging=$snapshot.staging
    mkdir -p "$snapshot"
    if [[ $source == head ]]; then
        rm -rf "$staging" && mkdir -p "$staging"
        git archive HEAD Package.swift Sources Tests | tar -x -C "$staging"
        rm -rf "$staging"/Sources/Fuzz*
        cp -a Sources/Fuzz* "$staging/Sources/"
        cp -a Package.swift "$staging/"
        [[ -f Package.resolved ]] && cp -a Package.resolved "$staging/"
        sync_tree "$staging" "$snapshot"
    else
        rm -rf "$staging" && mkdir -p "$staging"
        cp -a Package.swift Sources Tests "$staging/"
        [[ -f Package.resolved ]] && cp -a Package.resolved "$staging/"
        sync_tree "$staging" "$snapshot"
    fi
    rm -rf "$staging"
    STYLIST_FUZZ=1 swift build --package-path "$snapshot" -c release --scratch-path "$scratch" --sanitize=fuzzer \
        -Xswiftc -sanitize=fuzzer,address -Xswiftc -g \
        -Xcc -fsanitize=fuzzer-no-link,address -Xcc -g \
        --product "$product" >"$work/build.log" 2>&1 || { cat "$work/build.log" >&2; exit 1; }
) 9>"$scratch/fuzz-build.lock"
binary="$scratch/release/$product"
# The Swift runtime's backtracer would fight ASan over a crashing process (and hang): off.
export SWIFT_BACKTRACE=enable=no
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}

# Files given after SECONDS: run the target on them once and stop.
if [[ $# -gt 0 && -f $1 ]]; then
    exec "$binary" "$@"
fi

log=$work/fuzz-$(date +%Y%m%d-%H%M%S).log
echo "fuzzing $target for ${seconds}s ($source sources): $binary; log $log" >&2
set +e
"$binary" "$work/corpus" "fuzz/corpus/$target" \
    -dict="fuzz/dict/$target.dict" \
    -artifact_prefix="fuzz/artifacts/$target/" \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 "$@" 2>&1 | tee "$log" \
    | grep --line-buffered -E '^#[0-9]+[[:space:]]+(INITED|DONE)|ERROR|SUMMARY|Fatal error|Test unit written|invariant violated' >&2
status=${PIPESTATUS[0]}
set -e

# Summary: execs, execs/s, coverage, corpus.
last=$(grep -E '^#[0-9]+[[:space:]]' "$log" | tail -1 || true)
execs=$(awk '/^stat::number_of_executed_units:/ {print $2}' "$log")
rate=$(awk '/^stat::average_exec_per_sec:/ {print $2}' "$log")
cov=$(sed -nE 's/.* cov: ([0-9]+).*/\1/p' <<<"$last")
ft=$(sed -nE 's/.* ft: ([0-9]+).*/\1/p' <<<"$last")
corp=$(sed -nE 's/.* corp: ([0-9]+\/[0-9]+[a-zA-Z]*).*/\1/p' <<<"$last")
echo "== $target: ${seconds}s, exit $status, execs ${execs:-?}, execs/s ${rate:-?}, cov ${cov:-?}, ft ${ft:-?}, corpus ${corp:-?} (entries/size), $(ls "$work/corpus" | wc -l) files in $work/corpus, $(ls "fuzz/artifacts/$target" | wc -l) artifacts in fuzz/artifacts/$target"
exit "$status"
