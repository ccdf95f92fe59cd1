#!/usr/bin/env bash
# Chaos run (docs/reliability.md, "Chaos runs"): the checker's self-test, then
# tests/chaos/chaos.py against <build dir>/libhdbrepl.so.
#
#   scripts/run-chaos.sh [build dir]          (default: build)
#
# Environment: CHAOS_SECONDS (default 120), CHAOS_SEED (default: picked here and printed),
# CHAOS_NODES (3-5, default 4), CHAOS_SKEW_MS, CHAOS_KINDS, CHAOS_CONVERGE_SECONDS,
# CHAOS_REPORT (default <build dir>/chaos-report.json), HDBREPL_KEEP=1.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
if [ ! -f "$build/libhdbrepl.so" ]; then
    echo "run-chaos: $build/libhdbrepl.so not found (make build, or pass the build dir)" >&2
    exit 2
fi
export HDBREPL_SO="$build/libhdbrepl"
# Skewed nodes preload this wall clock (tests/chaos/skewed_clock.c).
case "$build" in /*) build_abs="$build" ;; *) build_abs="$(pwd)/$build" ;; esac
export CHAOS_SKEWED_CLOCK="${CHAOS_SKEWED_CLOCK:-$build_abs/tests/libchaos_skewed_clock.so}"
export CHAOS_SECONDS="${CHAOS_SECONDS:-120}"
export CHAOS_REPORT="${CHAOS_REPORT:-$build/chaos-report.json}"
if [ -z "${CHAOS_SEED:-}" ]; then
    CHAOS_SEED="${HDBREPL_SEED:-$(( ($(date +%s%N) / 1000) % 2147483647 ))}"
fi
export CHAOS_SEED
/usr/bin/python3 tests/chaos/checker_selftest.py >/dev/null || /usr/bin/python3 tests/chaos/checker_selftest.py
echo "run-chaos: seed $CHAOS_SEED, ${CHAOS_SECONDS}s (replay: CHAOS_SEED=$CHAOS_SEED CHAOS_SECONDS=$CHAOS_SECONDS make chaos)"
exec /usr/bin/python3 tests/chaos/chaos.py
