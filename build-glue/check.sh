#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
# Run the test suites and print each one's summary, then the total.
# Usage: check.sh OBJ_DIR "QTESTS" GUEST_DIR
set -u

obj=$(cd "$1" && pwd)
qtests=$2
guest=$3
log=$obj/check-logs
mkdir -p "$log"

export QTEST_QEMU_BINARY=$obj/qemu-system-x86_64
export QTEST_QEMU_IMG=$obj/qemu-img
export PYTHON=/usr/bin/python3

passed=0
failed=0
suites_failed=

# tally NAME PASSED FAILED RC START: count a finished suite and show it.
# A suite that crashed outside its test cases, or ran nothing, failed.
tally() {
    name=$1 ok=${2:-0} nok=${3:-0} rc=$4 start=$5
    if [ "$rc" -ne 0 ] && [ "$nok" -eq 0 ]; then
        nok=1
    fi
    if [ "$ok" -eq 0 ] && [ "$nok" -eq 0 ]; then
        nok=1
    fi
    passed=$((passed + ok))
    failed=$((failed + nok))
    printf '%-28s %3d passed, %d failed  (%ds)\n' "$name" "$ok" "$nok" \
        $(($(date +%s) - start))
    if [ "$nok" -ne 0 ]; then
        suites_failed="$suites_failed $name"
    fi
    [ "$nok" -eq 0 ]
}

# run NAME COMMAND...: a TAP-emitting test program
run() {
    name=$1
    shift
    start=$(date +%s)
    # A hung suite fails instead of stalling the whole run.
    timeout 600 "$@" --tap -k >"$log/$name.tap" 2>"$log/$name.err"
    rc=$?
    if ! tally "$name" "$(grep -c '^ok ' "$log/$name.tap")" \
            "$(grep -c '^not ok ' "$log/$name.tap")" $rc "$start"; then
        grep '^not ok ' "$log/$name.tap"
        tail -n 20 "$log/$name.err"
    fi
}

# run_py NAME SCRIPT ARGS...: a script closing with "N passed, M failed"
run_py() {
    name=$1
    shift
    start=$(date +%s)
    timeout 900 /usr/bin/python3 "$@" >"$log/$name.log" 2>&1
    rc=$?
    summary=$(sed -n 's/.*: \([0-9]*\) passed, \([0-9]*\) failed$/\1 \2/p' \
              "$log/$name.log" | tail -n 1)
    if ! tally "$name" "${summary%% *}" "${summary##* }" $rc "$start"; then
        tail -n 30 "$log/$name.log"
    fi
}

for t in $qtests; do
    run "$t" "$obj/tests/qtest/$t"
done

here=$(dirname "$0")
run_py failover-policy "$here/test-failover-policy.py" \
    --qemu "$obj/qemu-system-x86_64"
# The Linux guest scenarios, with the pair in QEMU and with the same
# policy applied over QMP by scripts/failover-policy.py
run_py e2e "$here/e2e.py" --qemu "$obj/qemu-system-x86_64" \
    --guest "$guest/guest" --mode real,tool

echo
if [ -n "$suites_failed" ]; then
    echo "failed suites:$suites_failed (logs in $log)"
fi
echo "check: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
