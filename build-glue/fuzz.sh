#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Run the failover-pair fuzz targets of the sanitizer build, each for
# SECONDS, and print one line per target.  The corpus grows across runs in
# SAN/fuzz/corpus/TARGET; an input that crashes QEMU, trips a sanitizer or
# breaks the pair's promise is saved as SAN/fuzz/crash-TARGET-*, and the
# run fails.  Replay one with:
#   SAN/qemu-fuzz-x86_64 --fuzz-target=TARGET CRASH_FILE
#
#   fuzz.sh SAN SECONDS TARGET...
set -u

san=$(cd "$1" && pwd)
seconds=$2
shift 2

# Leaks are checked by the qtests (a fuzzer's process never exits clean)
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1
export UBSAN_OPTIONS=halt_on_error=1:abort_on_error=1:print_stacktrace=1

failed=0
for target; do
    corpus=$san/fuzz/corpus/$target
    log=$san/fuzz/$target.log
    mkdir -p "$corpus"
    start=$(date +%s)
    # -rss_limit_mb: ASan's shadow memory makes QEMU look big
    timeout $((seconds + 120)) "$san/qemu-fuzz-x86_64" \
        --fuzz-target="$target" -max_total_time="$seconds" \
        -rss_limit_mb=4096 -print_final_stats=1 \
        -artifact_prefix="$san/fuzz/crash-$target-" "$corpus" \
        >"$log" 2>&1
    rc=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1)
    printf 'fuzz %-24s %s runs, %s, corpus %d inputs (%ds)' "$target" \
        "${runs:-?}" "${cov:-cov: ?}" "$(ls "$corpus" | wc -l)" \
        $(($(date +%s) - start))
    if [ "$rc" -ne 0 ]; then
        failed=1
        echo ": FAILED (rc $rc)"
        grep -E 'ERROR|runtime error|assert|Test unit written' "$log" |
            head -n 10
    else
        echo ": no crash"
    fi
done
exit $failed
