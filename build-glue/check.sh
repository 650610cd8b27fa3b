#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
# Run the test suites and print each one's summary, then the total.
# Usage: check.sh OBJ_DIR "QTESTS" GUEST_DIR
# With SAN=DIR (and SAN_QTESTS, FUZZ_TARGETS, CHECK_FUZZ_SECONDS) in the
# environment, also the sanitizer build's qtests and a short fuzz run.
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
    # A case skipped (glib's -s, or by the test itself) did not pass
    if ! tally "$name" "$(grep '^ok ' "$log/$name.tap" | grep -vc '# SKIP')" \
            "$(grep -c '^not ok ' "$log/$name.tap")" $rc "$start"; then
        # Failures, and what the tests said (g_test_message())
        grep -e '^not ok ' -e '^# ' "$log/$name.tap" |
            grep -v -e '^# Start of ' -e '^# End of '
        tail -n 20 "$log/$name.err"
    fi
}

# run_san NAME COMMAND...: a qtest of the sanitizer build.  Any report
# fails it, even one that did not make the test itself fail.
run_san() {
    name=$1
    shift
    export QTEST_QEMU_BINARY=$san/qemu-system-x86_64
    run "$name" "$@"
    export QTEST_QEMU_BINARY=$obj/qemu-system-x86_64
    reports=$(grep -c -E 'ERROR: (Address|Leak)Sanitizer|runtime error:' \
              "$log/$name.err")
    if [ "$reports" -ne 0 ]; then
        echo "$name: $reports sanitizer reports in $log/$name.err"
        grep -E -A 12 'ERROR: (Address|Leak)Sanitizer|runtime error:' \
            "$log/$name.err" | head -n 40
        # Count the suite once, whether or not a test failed as well
        case " $suites_failed " in
        *" $name "*) ;;
        *)
            failed=$((failed + 1))
            suites_failed="$suites_failed $name"
            ;;
        esac
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

# run_functional NAME TEST: a test of tests/functional, run by meson as
# its functional suite runs it, offline: its assets must be in the cache
# (QEMU_TEST_CACHE_DIR, or ~/.cache/qemu) already.  A skipped case (an
# asset missing, say) fails.
run_functional() {
    name=$1 test=$2
    start=$(date +%s)
    rm -f "$obj/meson-logs/$name.json"
    QEMU_TEST_NO_DOWNLOAD=1 timeout 900 "$obj/pyvenv/bin/meson" test \
        -C "$obj" --no-rebuild --logbase "$name" \
        --suite func-x86_64-thorough "$test" >"$log/$name.log" 2>&1
    rc=$?
    # The test's TAP output, from meson's log of the run
    /usr/bin/python3 -c '
import json, sys
for line in open(sys.argv[1]):
    print(json.loads(line).get("stdout", ""))
' "$obj/meson-logs/$name.json" >"$log/$name.tap" 2>/dev/null
    ok=$(grep '^ok ' "$log/$name.tap" | grep -vc '# SKIP')
    nok=$(grep -c -e '^not ok ' -e '^ok .*# SKIP' "$log/$name.tap")
    if ! tally "$name" "$ok" "$nok" $rc "$start"; then
        grep -e '^not ok ' -e '# SKIP' "$log/$name.tap"
        if grep -q '# SKIP' "$log/$name.tap"; then
            echo "$name: skipped; are its assets in ${QEMU_TEST_CACHE_DIR:-~/.cache/qemu} (make guest)?"
        fi
        tail -n 20 "$log/$name.log"
        echo "logs: $obj/tests/functional/x86_64/*/"
    fi
}

# paths OPTION TEST FILTER...: OPTION (-p to run, -s to skip) for each
# case of TEST that grep FILTER... selects
paths() {
    option=$1 test=$2
    shift 2
    "$test" -l 2>/dev/null | grep '^/' | grep "$@" | sed "s|^|$option |"
}

here=$(dirname "$0")
harness=$here/../harness

# san_lane: the sanitizer build's qtests, then a short fuzz run.  It runs
# beside the main build's qtests, each lane on a core of its own; it
# tallies for itself and leaves its counts in $log/san-lane.tally.
san_lane() {
    san=$(cd "$SAN" && pwd)
    # QEMU exits on SIGTERM when a qtest ends: LeakSanitizer looks then
    export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
    export UBSAN_OPTIONS=halt_on_error=1:abort_on_error=1:print_stacktrace=1
    # The test programs are the main build's: only the emulator under
    # test needs the sanitizers
    for t in $SAN_QTESTS; do
        if [ "$t" = qos-test ]; then
            # Only the NICs' part of qos-test: e1000, e1000e, igb, vmxnet3,
            # virtio-net, rtl8139
            set -- $(QTEST_QEMU_BINARY=$san/qemu-system-x86_64 paths -p \
                     "$obj/tests/qtest/qos-test" -E \
                     '^/.*/(e1000|e1000e|igb|vmxnet3|virtio-net|rtl8139)[/-]')
        else
            set --
        fi
        run_san "san-$t" "$obj/tests/qtest/$t" "$@"
    done
    unset ASAN_OPTIONS UBSAN_OPTIONS
    start=$(date +%s)
    sh "$here/fuzz.sh" "$san" "$CHECK_FUZZ_SECONDS" $FUZZ_TARGETS \
        >"$log/fuzz.log" 2>&1
    rc=$?
    cat "$log/fuzz.log"
    ok=$(grep -c ': no crash$' "$log/fuzz.log")
    nok=$(grep -c ': FAILED' "$log/fuzz.log")
    tally fuzz "$ok" "$nok" $rc "$start"
    echo "$passed $failed$suites_failed" >"$log/san-lane.tally"
}

# The project's documents: every relative link names a file and heading
run_py links "$here/check-links.py" "$here/.."

if [ -n "${SAN:-}" ]; then
    rm -f "$log/san-lane.tally"
    (passed=0 failed=0 suites_failed=; san_lane) >"$log/san-lane.out" 2>&1 &
    san_pid=$!
fi

for t in $qtests; do
    set --
    if [ "$t" = failover-pair-test ] && [ -n "${SAN:-}" ]; then
        # The hostile guest and host cases run in the sanitizer lane
        # only: that is where a fault they provoke shows
        set -- $(paths -s "$obj/tests/qtest/$t" /hostile/)
    fi
    run "$t" "$obj/tests/qtest/$t" "$@"
done

# Migration to and from QEMU without the series (PRISTINE_QEMU), each way,
# as upstream's migration-compat job runs migration-test
if [ -n "${PRISTINE_QEMU:-}" ]; then
    pristine=$(cd "$(dirname "$PRISTINE_QEMU")" && pwd)/${PRISTINE_QEMU##*/}
    run compat-from-pristine env QTEST_QEMU_BINARY_SRC="$pristine" \
        QTEST_QEMU_BINARY_DST="$QTEST_QEMU_BINARY" \
        "$obj/tests/qtest/nic-migration-compat-test"
    run compat-to-pristine env QTEST_QEMU_BINARY_SRC="$QTEST_QEMU_BINARY" \
        QTEST_QEMU_BINARY_DST="$pristine" \
        "$obj/tests/qtest/nic-migration-compat-test"
fi

# The policy tool over QMP, on the qtest accelerator: it mostly waits
# out its delays on the wall clock, so it shares the core well
run_py failover-policy "$harness/test-failover-policy.py" \
    --qemu "$obj/qemu-system-x86_64"

if [ -n "${SAN:-}" ]; then
    wait "$san_pid"
    cat "$log/san-lane.out"
    if read -r ok nok names <"$log/san-lane.tally"; then
        passed=$((passed + ok))
        failed=$((failed + nok))
        suites_failed="$suites_failed${names:+ $names}"
    else
        echo "san-lane: ended without its counts (see $log/san-lane.out)"
        failed=$((failed + 1))
        suites_failed="$suites_failed san-lane"
    fi
fi

# The Linux guest scenarios on user networking, as an upstream functional
# test
run_functional functional func-x86_64-failover_pair

# The Linux guest scenarios with the pair's policy applied over QMP by
# scripts/qmp/failover-policy.py
run_py e2e "$harness/e2e.py" --qemu "$obj/qemu-system-x86_64" \
    --guest "$guest/guest" --mode tool
# The same on a tap bridge in a network namespace of its own (root), and
# a guest that sends nothing by itself across a switch
run_py e2e-tap "$harness/e2e.py" --qemu "$obj/qemu-system-x86_64" \
    --guest "$guest/guest" --mode real --net tap
# The docs' libvirt recipe, on a libvirtd of its own in a namespace (root)
run_py libvirt "$harness/libvirt.py" --qemu "$obj/qemu-system-x86_64" \
    --guest "$guest/guest"

echo
if [ -n "$suites_failed" ]; then
    echo "failed suites:$suites_failed (logs in $log)"
fi
echo "check: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
