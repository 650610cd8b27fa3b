#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Build the e2e test guest (a Debian 12 kernel and a busybox initramfs with
# the NIC drivers) from the Debian packages packages.conf pins, the same
# bytes on every machine.  Nothing is installed except kmod (for
# depmod/modprobe) when it is missing.
#
#   build.sh [CACHE_DIR [ASSET_CACHE_DIR]]
#
# CACHE_DIR defaults to ~/.cache/qemu-driver-status/guest.  Downloads go to
# CACHE_DIR/debs; the result is CACHE_DIR/guest/{vmlinuz,vmlinux,
# initramfs.gz} (vmlinux: the same kernel uncompressed, for PVH).  A second
# run with the same scripts does nothing but the last step: vmlinux and
# initramfs.gz are put in the functional tests' asset cache,
# ASSET_CACHE_DIR/download/<sha256> (QEMU_TEST_CACHE_DIR, or QEMU's default
# ~/.cache/qemu), where tests/functional finds them by their hash.
set -eu

CACHE=${1:-$HOME/.cache/qemu-driver-status/guest}
ASSETS=${2:-${QEMU_TEST_CACHE_DIR:-$HOME/.cache/qemu}}
HERE=$(cd "$(dirname "$0")" && pwd)
# Modules the guest may load; their dependencies are added below.
MODULES="8139cp 8139too e1000 e1000e igb vmxnet3 virtio_pci virtio_net net_failover failover mii"
. "$HERE/packages.conf"
KPKG=$KERNEL_PACKAGE
KVER=${KPKG#linux-image-}

mkdir -p "$CACHE/debs"
CACHE=$(cd "$CACHE" && pwd)
OUT=$CACHE/guest

HASH=$(cat "$HERE/build.sh" "$HERE/packages.conf" "$HERE/init" \
	"$HERE/udhcpc.script" | sha256sum | cut -c1-16)
STAMP="$KPKG $HASH"

# publish: the guest's files into the functional tests' asset cache, named
# by their sha256 as tests/functional's Asset looks them up, read-only and
# with the time stamp file its cache cleaner goes by.
publish() {
	mkdir -p "$ASSETS/download"
	for f in vmlinux initramfs.gz; do
		sum=$(sha256sum "$OUT/$f" | cut -d' ' -f1)
		dst=$ASSETS/download/$sum
		if ! [ -f "$dst" ] || ! echo "$sum  $dst" | sha256sum -c --status; then
			rm -f "$dst"
			cp "$OUT/$f" "$dst.tmp"
			chmod 0444 "$dst.tmp"
			mv "$dst.tmp" "$dst"
		fi
		date +%s >"$dst.stamp"
		echo "guest: $f sha256 $sum"
	done
}

if [ -f "$OUT/stamp" ] && [ "$(cat "$OUT/stamp")" = "$STAMP" ] &&
   [ -f "$OUT/vmlinuz" ] && [ -f "$OUT/vmlinux" ] && [ -f "$OUT/initramfs.gz" ]; then
	echo "guest: up to date in $OUT ($KPKG)"
	publish
	exit 0
fi

command -v depmod >/dev/null 2>&1 && command -v modprobe >/dev/null 2>&1 || {
	echo "guest: installing kmod"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kmod >/dev/null
}
PATH=$PATH:/usr/sbin:/sbin

cd "$CACHE/debs"
# download PACKAGE VERSION: the .deb of that exact version (apt checks it
# against the archive's signed index); a clear error when the archive no
# longer has it.
download() {
	ls "$1_$(echo "$2" | sed 's/:/%3a/')"_*.deb >/dev/null 2>&1 && return
	echo "guest: apt-get download $1=$2"
	# apt warns when _apt cannot write here; the download still works.
	if ! apt-get download -q "$1=$2" >/dev/null 2>&1; then
		echo "guest: retrying after apt-get update (stale package lists?)"
		apt-get update -qq >/dev/null
		apt-get download -q "$1=$2" >/dev/null 2>&1 || {
			echo "guest: $1 $2 (build-glue/guest/packages.conf) is not in" \
				"the configured archive; pin a version it has, then" \
				"update the hashes in tests/functional/x86_64/test_failover_pair.py" >&2
			exit 1
		}
	fi
}
download "$KPKG" "$KERNEL_VERSION"
download "$BUSYBOX_PACKAGE" "$BUSYBOX_VERSION"
KDEB=$(ls "$CACHE/debs/${KPKG}_$KERNEL_VERSION"_*.deb)
BDEB=$(ls "$CACHE/debs/${BUSYBOX_PACKAGE}_$(echo "$BUSYBOX_VERSION" | sed 's/:/%3a/')"_*.deb)

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

# The archive in newc format, written here so that it is the same on every
# machine: entries sorted, owner root, time 0, inode numbers in order,
# modes normalised (0755 or 0644), nothing of the build host in it.
/usr/bin/python3 - "$ROOT" "$WORK/initramfs.cpio" <<'PY'
import os, stat, sys
root, out = sys.argv[1], sys.argv[2]
names = ['.']
for top, dirs, files in os.walk(root):
    names += [os.path.relpath(os.path.join(top, n), root) for n in dirs + files]
names.sort()

def entry(f, ino, name, mode, nlink, data):
    name = name.encode() + b'\0'
    fields = (ino, mode, 0, 0, nlink, 0, len(data), 0, 0, 0, 0, len(name), 0)
    f.write(b'070701' + b''.join(b'%08x' % v for v in fields) + name)
    f.write(b'\0' * (-(110 + len(name)) % 4))
    f.write(data + b'\0' * (-len(data) % 4))

with open(out, 'wb') as f:
    for ino, name in enumerate(names, 1):
        path = os.path.join(root, name)
        st = os.lstat(path)
        if stat.S_ISLNK(st.st_mode):
            entry(f, ino, name, stat.S_IFLNK | 0o777, 1,
                  os.readlink(path).encode())
        elif stat.S_ISDIR(st.st_mode):
            entry(f, ino, name, stat.S_IFDIR | 0o755, 2, b'')
        else:
            perm = 0o755 if st.st_mode & 0o111 else 0o644
            with open(path, 'rb') as src:
                entry(f, ino, name, stat.S_IFREG | perm, 1, src.read())
    entry(f, 0, 'TRAILER!!!', 0, 1, b'')
PY
gzip -9 -n <"$WORK/initramfs.cpio" >"$OUT.tmp/initramfs.gz"
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
publish
