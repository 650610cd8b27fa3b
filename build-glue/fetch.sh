#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
# Fetch upstream QEMU 10.0.2 from Debian's source archive into a cache
# folder, once, and check it.  Usage: fetch.sh CACHE_DIR
set -eu

here=$(dirname "$0")
cache=$1
file=qemu_10.0.2+ds.orig.tar.xz
sha256=0901da33844a331bf8b3602b9c1fbd178e60b737c8e3ade678255bd090c9b9f1
version=1:10.0.2+ds-2+deb13u1~bpo12+1

check() {
    echo "$sha256  $cache/$file" | sha256sum --quiet -c - 2>/dev/null
}

if [ -f "$cache/$file" ] && check; then
    exit 0
fi

mkdir -p "$cache"
"$here/apt-sources.sh"
echo "fetch: downloading $file (qemu $version source)"
# Only the orig tarball is needed.  apt exits non-zero when the package's
# .dsc or .debian.tar.xz is missing from the archive even though the
# tarball arrived, so judge by the tarball and its checksum alone.
(cd "$cache" && apt-get source -qq --download-only "qemu=$version" \
    >apt-source.log 2>&1) || true

if [ ! -f "$cache/$file" ]; then
    echo "fetch: $file did not arrive; see $cache/apt-source.log" >&2
    exit 1
fi
if ! check; then
    echo "fetch: $cache/$file does not have sha256 $sha256" >&2
    mv "$cache/$file" "$cache/$file.bad"
    exit 1
fi
rm -f "$cache"/*.dsc "$cache"/*.debian.tar.xz
