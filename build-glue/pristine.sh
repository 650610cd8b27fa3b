#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Export the tree of build/src's `base` tag (upstream + patches/local, no
# series) into DEST, for the pristine emulator that `make bench` compares
# the series with.  Nothing happens when DEST already holds that commit;
# when `base` moved, DEST is exported again from scratch.
#
# DEST gets an empty git repository: QEMU's configure turns -Werror on for
# git trees only, and build/src is one.  With it the pristine build
# compiles with exactly the patched build's flags (and ccache serves every
# object the series does not change); `git describe` finds no tag in either,
# so both report the same version.
#
#   pristine.sh SRC_GIT DEST
set -eu

src=$1
dest=$2
commit=$(git -C "$src" rev-parse --verify -q 'base^{commit}') || {
	echo "pristine: no tag 'base' in $src (run make prepare)" >&2
	exit 1
}
if [ "$(cat "$dest/.base-commit" 2>/dev/null)" = "$commit" ]; then
	exit 0
fi
echo "pristine: exporting base ($commit) to $dest"
rm -rf "$dest" "$dest.tmp"
mkdir -p "$dest.tmp"
git -C "$src" archive --format=tar "$commit" | tar -x -C "$dest.tmp"
git init -q "$dest.tmp"
echo "$commit" >"$dest.tmp/.base-commit"
mv "$dest.tmp" "$dest"
