#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
#
# apt entries derived from the machine's own deb822 configuration, so that
# no host name is written down in this repository.
#
#   apt-sources.sh              add bookworm-backports (meson,
#                               python3-pycotap) to the system's sources
#   apt-sources.sh --deb-src S  print a one-line deb-src entry for suite S
#                               of the same archive (for fetch.sh)
set -eu

src=/etc/apt/sources.list.d/debian.sources
out=/etc/apt/sources.list.d/qemu-driver-status.sources

if [ ! -f "$src" ]; then
    echo "apt-sources: $src not found; cannot derive the Debian mirror" >&2
    exit 1
fi
# First stanza whose suites include the release itself (not -security).
uri=$(awk '/^URIs:/ { u = $2 } /^Suites:/ && / bookworm( |$)/ { print u; exit }' "$src")
key=$(awk '/^Signed-By:/ { print $2; exit }' "$src")
if [ -z "$uri" ]; then
    echo "apt-sources: no bookworm entry in $src" >&2
    exit 1
fi

if [ "${1:-}" = --deb-src ]; then
    printf 'deb-src [signed-by=%s] %s %s main\n' "$key" "$uri" "$2"
    exit 0
fi

entry=$(printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: %s\n' \
    "$uri" "$key")
if [ "$(cat "$out" 2>/dev/null)" = "$entry" ]; then
    exit 0
fi
printf '%s\n' "$entry" > "$out.tmp"
mv "$out.tmp" "$out"
apt-get update -qq
