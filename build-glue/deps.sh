#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
# Install the Debian 12 packages that the build and the tests use.
# Quiet and quick when everything is there already.
set -eu

here=$(dirname "$0")

# name[:suite] -- packages that must come from bookworm-backports.
# clang, its sanitizer and libFuzzer runtimes and llvm-symbolizer are for
# build/san (make check, make fuzz); valgrind is for make bench.
# device-tree-compiler: pc-bios/dtb builds its .dtb files with dtc, and
# installs the prebuilt ones without it, which Debian's tarball strips.
# dnsmasq-base (the program without the system service) and iputils-ping
# are the DHCP server and the host's ping of the e2e tests on a tap bridge.
# libvirt-daemon, -driver-qemu and libvirt-clients are Debian's libvirt for
# harness/libvirt.py, without what they recommend (Debian's own QEMU above
# all): the suite runs a libvirtd of its own on the built emulator.
packages="
meson:bookworm-backports
python3-pycotap:bookworm-backports
ninja-build libglib2.0-dev libpixman-1-dev libslirp-dev libfdt-dev
python3-venv flex bison gcc-multilib bzip2 seabios ipxe-qemu ccache
python3-sphinx python3-sphinx-rtd-theme kmod device-tree-compiler
clang libclang-rt-14-dev llvm valgrind dnsmasq-base
iputils-ping
libvirt-daemon:norecommends libvirt-daemon-driver-qemu:norecommends
libvirt-clients:norecommends
"

missing=
backports=
bare=
for entry in $packages; do
    name=${entry%%:*}
    if dpkg-query -W -f '${Status}\n' "$name" 2>/dev/null |
            grep -q 'install ok installed'; then
        continue
    fi
    case "$entry" in
    *:norecommends) bare="$bare $name" ;;
    *:*) backports="$backports $name" ;;
    *) missing="$missing $name" ;;
    esac
done

# QEMU needs meson >= 1.5; bookworm itself has 1.0.
if dpkg-query -W -f '${Version}\n' meson >/dev/null 2>&1 &&
        ! dpkg --compare-versions "$(dpkg-query -W -f '${Version}' meson)" \
            ge 1.5; then
    backports="$backports meson"
fi

if [ -z "$missing$backports$bare" ]; then
    exit 0
fi

echo "deps: installing$missing$backports$bare"
"$here/apt-sources.sh"
export DEBIAN_FRONTEND=noninteractive
if [ -n "$backports" ]; then
    apt-get install -y -qq -t bookworm-backports $backports >/dev/null
fi
if [ -n "$missing" ]; then
    apt-get install -y -qq $missing >/dev/null
fi
if [ -n "$bare" ]; then
    apt-get install -y -qq --no-install-recommends $bare >/dev/null
fi
