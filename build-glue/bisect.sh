#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
# Build every commit of the series on its own, in order, to prove that
# the series is bisectable: the emulator, and the series' qtests once a
# commit has them.  Then the last commit as a tools-only build, which must
# link: the series' QAPI must keep system-only types out of the modules
# the tools use.  Usage: bisect.sh SRC_DIR WORK_DIR CONFIGURE_FLAGS...
# WORK_DIR gets its own worktree (src) and build (qemu) laid out like
# build/, so that ccache serves what the commits do not change.
set -eu

src=$(cd "$1" && pwd)
work=$2
shift 2
git="git -c safe.directory=*"

mkdir -p "$work"
work=$(cd "$work" && pwd)
if [ ! -d "$work/src" ]; then
    $git -C "$src" worktree add -q --detach "$work/src" base
fi
if [ ! -f "$work/qemu/build.ninja" ]; then
    mkdir -p "$work/qemu"
    (cd "$work/qemu" && ../src/configure "$@" >configure.log 2>&1) ||
        { tail -30 "$work/qemu/configure.log"; exit 1; }
fi

n=0
for rev in $($git -C "$src" rev-list --reverse base..HEAD); do
    n=$((n + 1))
    subject=$($git -C "$src" log -1 --format=%s "$rev")
    $git -C "$work/src" checkout -q --detach "$rev"
    targets=qemu-system-x86_64
    for t in driver-status-test net-link-test failover-pair-test \
             nic-migration-compat-test; do
        if [ -f "$work/src/tests/qtest/$t.c" ]; then
            targets="$targets tests/qtest/$t"
        fi
    done
    start=$(date +%s)
    if ninja -C "$work/qemu" $targets >"$work/build-$n.log" 2>&1
    then
        printf 'bisect  %2d builds  (%3ds)  %s\n' "$n" \
            $(($(date +%s) - start)) "$subject"
    else
        printf 'bisect  %2d FAILS  %s\n' "$n" "$subject"
        tail -n 30 "$work/build-$n.log"
        exit 1
    fi
done

# The same flags, but no emulator: qemu-img, qemu-io, qemu-nbd,
# qemu-storage-daemon and the libraries they link
for f in "$@"; do
    shift
    case "$f" in
    --target-list=*|--enable-slirp|--enable-fdt=*) ;;
    *) set -- "$@" "$f" ;;
    esac
done
if [ ! -f "$work/tools/build.ninja" ]; then
    mkdir -p "$work/tools"
    (cd "$work/tools" &&
     ../src/configure "$@" --disable-system --disable-user \
         --enable-tools >configure.log 2>&1) ||
        { tail -30 "$work/tools/configure.log"; exit 1; }
fi
start=$(date +%s)
if ninja -C "$work/tools" >"$work/build-tools.log" 2>&1; then
    printf 'bisect  tools-only build links  (%3ds)\n' $(($(date +%s) - start))
else
    printf 'bisect  tools-only build FAILS\n'
    tail -n 30 "$work/build-tools.log"
    exit 1
fi
