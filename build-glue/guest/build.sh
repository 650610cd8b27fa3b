#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Build the e2e test guest (a Debian 12 kernel and a busybox initramfs with
# the NIC drivers) from Debian packages.  Nothing is installed except kmod
# (for depmod/modprobe) when it is missing.
#
#   build.sh [CACHE_DIR]     default ~/.cache/qemu-driver-status/guest
#
# Downloads go to CACHE_DIR/debs; the result is CACHE_DIR/guest/{vmlinuz,
# vmlinux,initramfs.gz} (vmlinux: the same kernel uncompressed, for PVH).
# A second run with the same scripts does nothing.
set -eu

CACHE=${1:-$HOME/.cache/qemu-driver-status/guest}
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=$CACHE/guest
# Modules the guest may load; their dependencies are added below.
MODULES="8139cp 8139too e1000 virtio_pci virtio_net net_failover failover mii"

mkdir -p "$CACHE/debs"
CACHE=$(cd "$CACHE" && pwd)
OUT=$CACHE/guest

HASH=$(cat "$HERE/build.sh" "$HERE/init" "$HERE/udhcpc.script" | sha256sum | cut -c1-16)
# Up to date when built by these very scripts (the kernel package is not
# looked up again: remove CACHE_DIR/guest to move to a newer one).
if [ -f "$OUT/stamp" ] && [ "$(cut -d' ' -f2 "$OUT/stamp")" = "$HASH" ] &&
   [ -f "$OUT/vmlinuz" ] && [ -f "$OUT/vmlinux" ] && [ -f "$OUT/initramfs.gz" ]; then
	echo "guest: up to date in $OUT ($(cut -d' ' -f1 "$OUT/stamp"))"
	exit 0
fi

# The kernel version comes from linux-image-amd64's dependency.
kpkg_of() { apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*-amd64\)$/\1/p' | head -1; }
KPKG=$(kpkg_of)
if [ -z "$KPKG" ]; then
	echo "guest: apt-get update (no package lists yet)"
	apt-get update -qq >/dev/null
	KPKG=$(kpkg_of)
fi
[ -n "$KPKG" ] || { echo "guest: cannot resolve linux-image-amd64" >&2; exit 1; }
KVER=${KPKG#linux-image-}
STAMP="$KPKG $HASH"

command -v depmod >/dev/null 2>&1 && command -v modprobe >/dev/null 2>&1 || {
	echo "guest: installing kmod"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kmod >/dev/null
}
PATH=$PATH:/usr/sbin:/sbin

cd "$CACHE/debs"
for pkg in "$KPKG" busybox-static; do
	if ! ls "${pkg}"_*.deb >/dev/null 2>&1; then
		echo "guest: apt-get download $pkg"
		# apt warns when _apt cannot write here; the download still works.
		apt-get download -q "$pkg" 2>&1 | grep -v -e '^W: Download is performed unsandboxed' -e '^Get:' -e '^Fetched' || true
		if ! ls "${pkg}"_*.deb >/dev/null 2>&1; then
			echo "guest: retrying after apt-get update (stale package lists?)"
			apt-get update -qq >/dev/null
			apt-get download -q "$pkg" >/dev/null 2>&1 || true
		fi
		ls "${pkg}"_*.deb >/dev/null 2>&1 || { echo "guest: download of $pkg failed" >&2; exit 1; }
	fi
done
KDEB=$(ls "$CACHE/debs/${KPKG}"_*.deb | tail -1)
BDEB=$(ls "$CACHE/debs"/busybox-static_*.deb | tail -1)

WORK=$CACHE/work
rm -rf "$WORK" "$OUT.tmp"
mkdir -p "$WORK/kernel" "$WORK/bb" "$OUT.tmp"
echo "guest: unpacking $(basename "$KDEB")"
dpkg-deb -x "$KDEB" "$WORK/kernel"
dpkg-deb -x "$BDEB" "$WORK/bb"
KROOT=$WORK/kernel
depmod -b "$KROOT" "$KVER"

ROOT=$WORK/root
mkdir -p "$ROOT/bin" "$ROOT/etc" "$ROOT/proc" "$ROOT/sys" "$ROOT/dev" "$ROOT/tmp" "$ROOT/run" "$ROOT/lib/modules/$KVER"
# The modules and everything modprobe resolves for them.
for m in $MODULES; do
	modprobe -d "$KROOT" -S "$KVER" --show-depends "$m" | awk '$1 == "insmod" { print $2 }'
done | sort -u | while read -r ko; do
	rel=${ko#"$KROOT"/}
	mkdir -p "$ROOT/$(dirname "$rel")"
	cp "$ko" "$ROOT/$rel"
done
for f in modules.order modules.builtin modules.builtin.modinfo; do
	[ -f "$KROOT/lib/modules/$KVER/$f" ] && cp "$KROOT/lib/modules/$KVER/$f" "$ROOT/lib/modules/$KVER/"
done
depmod -b "$ROOT" "$KVER"

cp "$WORK/bb/bin/busybox" "$ROOT/bin/busybox"
for applet in $("$ROOT/bin/busybox" --list); do
	[ "$applet" = busybox ] || ln -sf busybox "$ROOT/bin/$applet"
done
install -m 0755 "$HERE/init" "$ROOT/init"
install -m 0755 "$HERE/udhcpc.script" "$ROOT/etc/udhcpc.script"

(cd "$ROOT" && find . | LC_ALL=C sort | "$ROOT/bin/busybox" cpio -o -H newc -R 0:0 2>/dev/null) |
	gzip -9 -n >"$OUT.tmp/initramfs.gz"
cp "$KROOT/boot/vmlinuz-$KVER" "$OUT.tmp/vmlinuz"
# The uncompressed ELF kernel boots through PVH (-kernel vmlinux) and skips
# the XZ decompression that costs ~8 s under TCG.
/usr/bin/python3 - "$OUT.tmp/vmlinuz" "$OUT.tmp/vmlinux" <<'PY'
import lzma, sys
data = open(sys.argv[1], 'rb').read()
start = data.find(b'\xfd7zXZ\x00')
if start < 0:
    sys.exit('guest: no XZ payload in ' + sys.argv[1])
elf = lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(data[start:])
if elf[:4] != b'\x7fELF':
    sys.exit('guest: the XZ payload is not an ELF kernel')
open(sys.argv[2], 'wb').write(elf)
PY
echo "$STAMP" >"$OUT.tmp/stamp"
rm -rf "$OUT" "$WORK"
mv "$OUT.tmp" "$OUT"
echo "guest: built $OUT ($KPKG, initramfs $(du -k "$OUT/initramfs.gz" | cut -f1) KiB)"
