#!/bin/sh
# Add the apt entries the build needs: bookworm-backports binaries (meson,
# python3-pycotap) and deb-src for the Debian suites, from which the upstream
# QEMU tarball is fetched.  The mirror is taken from the machine's own
# deb822 configuration so that no host name is written down here.
set -eu

src=/etc/apt/sources.list.d/debian.sources
out=/etc/apt/sources.list.d/qemu-driver-status.sources

if [ -f "$out" ]; then
    exit 0
fi
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

{
    printf 'Types: deb deb-src\nURIs: %s\nSuites: bookworm-backports\n' "$uri"
    printf 'Components: main\nSigned-By: %s\n\n' "$key"
    printf 'Types: deb-src\nURIs: %s\nSuites: bookworm bookworm-updates\n' "$uri"
    printf 'Components: main\nSigned-By: %s\n' "$key"
} > "$out.tmp"
mv "$out.tmp" "$out"
apt-get update -qq
