#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
# Run the test suites and print each one's summary, then the total.
# Usage: check.sh OBJ_DIR "QTESTS"
set -u

obj=$(cd "$1" && pwd)
qtests=$2
log=$obj/check-logs
mkdir -p "$log"

export QTEST_QEMU_BINARY=$obj/qemu-system-x86_64
export QTEST_QEMU_IMG=$obj/qemu-img
export PYTHON=/usr/bin/python3

passed=0
failed=0
suites_failed=

# run NAME COMMAND...: a TAP-emitting test program
run() {
    name=$1
    shift
    start=$(date +%s)
    "$@" --tap -k >"$log/$name.tap" 2>"$log/$name.err"
    rc=$?
    ok=$(grep -c '^ok ' "$log/$name.tap")
    nok=$(grep -c '^not ok ' "$log/$name.tap")
    if [ "$rc" -ne 0 ] && [ "$nok" -eq 0 ]; then
        nok=1       # crashed or aborted outside a test case
    fi
    if [ "$ok" -eq 0 ] && [ "$nok" -eq 0 ]; then
        nok=1       # a suite that runs nothing is a failure
    fi
    passed=$((passed + ok))
    failed=$((failed + nok))
    printf '%-28s %3d passed, %d failed  (%ds)\n' "$name" "$ok" "$nok" \
        $(($(date +%s) - start))
    if [ "$nok" -ne 0 ]; then
        suites_failed="$suites_failed $name"
        grep '^not ok ' "$log/$name.tap"
        tail -n 20 "$log/$name.err"
    fi
}

for t in $qtests; do
    run "$t" "$obj/tests/qtest/$t"
done

echo
if [ -n "$suites_failed" ]; then
    echo "failed suites:$suites_failed (logs in $log)"
fi
echo "check: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
