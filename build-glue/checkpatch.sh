#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
# Run upstream's scripts/checkpatch.pl on every exported patch; fail on
# any error or warning.  Usage: checkpatch.sh SRC_DIR SERIES_DIR
set -u

src=$1
series=$(cd "$2" && pwd)
bad=0
for patch in "$series"/*.patch; do
    case "$patch" in *0000-cover-letter.patch) continue ;; esac
    out=$(cd "$src" && ./scripts/checkpatch.pl "$patch" 2>&1)
    total=$(printf '%s\n' "$out" | sed -n 's/^total: //p')
    printf 'checkpatch  %-70s %s\n' "$(basename "$patch")" "$total"
    case "$total" in
    "0 errors, 0 warnings, "*) ;;
    *) printf '%s\n' "$out"; bad=1 ;;
    esac
done
exit $bad
