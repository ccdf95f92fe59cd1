#!/usr/bin/env bash
# Runs every libFuzzer target of a fuzz build (make fuzz; docs/reliability.md, "Fuzzing").
#   scripts/run-fuzz.sh <build dir> [target ...]      (default: every target)
# Each target runs FUZZ_SECONDS (default 60) on its own working corpus,
# <build dir>/fuzz-corpus/<target>, seeded from tests/fuzz/corpus/<target> (the repository's
# seeds are read, never written). FUZZ_JOBS targets run at once (default 2). Crash, leak,
# timeout (-timeout=10 s per input) and out-of-memory inputs go to
# <build dir>/fuzz-artifacts/; logs to <build dir>/fuzz-logs/. Exits 1 if any target failed.
set -uo pipefail
cd "$(dirname "$0")/.."
build=${1:?usage: run-fuzz.sh <build dir> [target ...]}
shift
seconds=${FUZZ_SECONDS:-60}
jobs=${FUZZ_JOBS:-2}
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(wire record link config json credentials pki)
mkdir -p "$build/fuzz-corpus" "$build/fuzz-artifacts" "$build/fuzz-logs"

run_one() {
    local t=$1 bin="$build/tests/fuzz/fuzz_$1" work="$build/fuzz-corpus/$1" log="$build/fuzz-logs/$1.log"
    mkdir -p "$work"
    cp -n tests/fuzz/corpus/"$t"/* "$work"/ 2>/dev/null
    timeout $((seconds + 300)) "$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$build/fuzz-artifacts/$t-" "$work" >"$log" 2>&1
    local rc=$?
    local done_line execs
    done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -1)
    execs=$(grep -E '^stat::number_of_executed_units' "$log" | awk '{print $2}')
    if [ $rc -eq 0 ]; then
        echo "fuzz_$t: ok, ${execs:-?} runs in ${seconds}s; ${done_line#*DONE   }"
    else
        echo "fuzz_$t: FAILED (exit $rc), see $log:"
        grep -E 'ERROR|SUMMARY|invariant|Test unit written' "$log" | head -8 | sed 's/^/  /'
    fi
    return $rc
}

failed=0
running=0
for t in "${targets[@]}"; do
    if [ ! -x "$build/tests/fuzz/fuzz_$t" ]; then
        echo "fuzz_$t: not built in $build" >&2
        failed=1
        continue
    fi
    run_one "$t" &
    running=$((running + 1))
    if [ $running -ge "$jobs" ]; then
        wait -n || failed=1
        running=$((running - 1))
    fi
done
while [ $running -gt 0 ]; do
    wait -n || failed=1
    running=$((running - 1))
done
[ $failed -eq 0 ] && echo "fuzz: all targets clean" || echo "fuzz: FAILED"
exit $failed
