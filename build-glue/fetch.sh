#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Fetch the upstream QEMU tarball named in upstream.conf from Debian's
# source archive into a cache folder, once, and check its sha256.  Each
# suite of QEMU_DEBIAN_SUITES is tried in turn with an apt configuration
# of its own under the cache folder, so the machine's apt lists are left
# alone.  Usage: fetch.sh CACHE_DIR
set -eu

here=$(dirname "$0")
cache=$1
. "$here/upstream.conf"
file=$QEMU_TARBALL

check() {
    echo "$QEMU_TARBALL_SHA256  $cache/$file" | sha256sum --quiet -c - \
        2>/dev/null
}

if [ -f "$cache/$file" ] && check; then
    exit 0
fi

apt=$cache/apt
log=$cache/fetch.log
mkdir -p "$apt/lists/partial" "$apt/archives/partial"
: >"$log"
opts="-o Dir::Etc::SourceList=$apt/sources.list
      -o Dir::Etc::SourceParts=/nonexistent
      -o Dir::State::Lists=$apt/lists -o Dir::Cache=$apt
      -o APT::Sandbox::User=root"

for suite in $(echo "$QEMU_DEBIAN_SUITES" | tr ',' ' '); do
    "$here/apt-sources.sh" --deb-src "$suite" >"$apt/sources.list"
    echo "== $suite" >>"$log"
    # shellcheck disable=SC2086
    apt-get $opts update >>"$log" 2>&1 || continue
    # shellcheck disable=SC2086
    apt-cache $opts showsrc qemu 2>>"$log" |
        grep -qx "Version: $QEMU_DEBIAN_VERSION" || continue
    echo "fetch: downloading $file (qemu $QEMU_DEBIAN_VERSION, $suite)"
    # Only the orig tarball is needed: judge by it alone, not by apt's
    # exit status, which also covers the .dsc and the Debian changes.
    # shellcheck disable=SC2086
    (cd "$cache" && apt-get $opts source -q --download-only \
        "qemu=$QEMU_DEBIAN_VERSION") >>"$log" 2>&1 || true
    rm -f "$cache"/qemu_*.dsc "$cache"/qemu_*.debian.tar.*
    if [ ! -f "$cache/$file" ]; then
        continue
    fi
    if check; then
        exit 0
    fi
    mv "$cache/$file" "$cache/$file.bad"
    echo "fetch: $file from $suite does not have sha256" \
        "$QEMU_TARBALL_SHA256 (kept as $file.bad)" >&2
    exit 1
done

echo "fetch: no Debian suite of $QEMU_DEBIAN_SUITES offers $file" \
    "(qemu $QEMU_DEBIAN_VERSION, QEMU $QEMU_VERSION); see $log" >&2
exit 1
