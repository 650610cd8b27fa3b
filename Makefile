# SPDX-License-Identifier: GPL-2.0-or-later
#
# Build, test and export the guest driver status series on QEMU 10.0.2.
# See README.md; 'make help' lists the targets.

CACHE ?= $(HOME)/.cache/qemu-driver-status
TARBALL := $(CACHE)/qemu_10.0.2+ds.orig.tar.xz
GUEST := $(CACHE)/guest
BUILD := build
SRC := $(BUILD)/src
OBJ := $(BUILD)/qemu
PYTHON := /usr/bin/python3
QUEUE := $(PYTHON) build-glue/queue.py
JOBS ?= $(shell nproc)

# A warm rebuild from a fresh clone in another folder still hits the cache:
# meson compiles with paths relative to the build folder.
export CCACHE_BASEDIR := $(CURDIR)
export CCACHE_NOHASHDIR := 1

# QEMU's configure hands meson an explicit compiler, so meson does not
# add ccache by itself: name it here.
CONFIGURE_FLAGS := --python=$(PYTHON) --target-list=x86_64-softmmu \
	--cc="ccache cc" --cxx="ccache c++" \
	--without-default-features --enable-slirp --enable-fdt=system \
	--disable-docs --disable-install-blobs

# Firmware the build does not ship: Debian's seabios and ipxe-qemu, and
# the option ROMs (linuxboot_dma.bin, ...) built from pc-bios/optionrom.
FIRMWARE_DIRS := /usr/share/seabios /usr/lib/ipxe/qemu
DATADIR := $(OBJ)/qemu-bundle/usr/local/share/qemu

# Project qtests, then upstream's own NIC qtests as regression guards
# (e1000-test and virtio-net-test are libqos tests, run by qos-test;
# qmp-cmd-test, test-hmp and device-introspect-test call every query,
# every info command and create every device type).
QTESTS := driver-status-test failover-pair-test
QTESTS_UPSTREAM := rtl8139-test virtio-net-failover qos-test qmp-cmd-test \
	test-hmp device-introspect-test

.PHONY: help deps fetch prepare build docs guest e2e check series bisect \
	refresh import demo clean

help:
	@sed -n 's/^## //p' $(MAKEFILE_LIST)

## deps      install the Debian packages the build and tests use
deps:
	@sh build-glue/deps.sh

## fetch     download and verify the upstream tarball (cached)
fetch: deps
	@sh build-glue/fetch.sh $(CACHE)

## prepare   build/src = upstream + patches/local + the series
prepare: fetch
	@$(QUEUE) prepare --tarball $(TARBALL)

## build     configure and build build/qemu-system-x86_64
build: prepare
	@if [ "$$(cat $(OBJ)/configure-flags 2>/dev/null)" != \
			'$(CONFIGURE_FLAGS)' ]; then \
		rm -rf $(OBJ) && mkdir -p $(OBJ) && cd $(OBJ) && \
		../src/configure $(CONFIGURE_FLAGS) >configure.log 2>&1 || \
		{ tail -30 configure.log; exit 1; }; \
		echo '$(CONFIGURE_FLAGS)' >configure-flags; \
	fi
	ninja -C $(OBJ) -j$(JOBS) qemu-system-x86_64 \
		$(addprefix tests/qtest/,$(QTESTS) $(QTESTS_UPSTREAM))
	@$(MAKE) -s -C $(OBJ)/pc-bios/optionrom >/dev/null 2>&1 || \
		$(MAKE) -C $(OBJ)/pc-bios/optionrom
	@mkdir -p $(DATADIR)
	@for f in $(addsuffix /*,$(FIRMWARE_DIRS)) \
		$(CURDIR)/$(OBJ)/pc-bios/optionrom/*.bin; do \
		ln -sfn $$f $(DATADIR)/; \
	done
	@ln -sfn qemu/qemu-system-x86_64 $(BUILD)/qemu-system-x86_64

## docs      build the HTML manual with Sphinx (warnings are errors)
docs: prepare
	@if [ ! -f $(BUILD)/docs/build.ninja ]; then \
		mkdir -p $(BUILD)/docs && cd $(BUILD)/docs && \
		../src/configure --python=$(PYTHON) --enable-docs \
		--target-list=x86_64-softmmu --without-default-features \
		--disable-install-blobs >configure.log 2>&1 || \
		{ tail -30 configure.log; exit 1; }; \
	fi
	ninja -C $(BUILD)/docs html
	@echo "docs: $(BUILD)/docs/docs/manual/index.html"

## guest     build the Linux test guest from Debian packages (cached)
guest: deps
	@sh build-glue/guest/build.sh $(GUEST)

## e2e       boot Linux guests with a failover pair: 7 scenarios, in QEMU
##           and with scripts/failover-policy.py over QMP
e2e: build guest
	@$(PYTHON) build-glue/e2e.py --qemu $(BUILD)/qemu-system-x86_64 \
		--guest $(GUEST)/guest --mode real,tool

## check     build, run every test suite, verify the exported series
check: build docs series guest
	@sh build-glue/check.sh $(OBJ) "$(QTESTS) $(QTESTS_UPSTREAM)" $(GUEST)

## series    export the series as build/series/*.patch and checkpatch it
series: prepare
	@$(QUEUE) export --output $(BUILD)/series
	@$(QUEUE) verify --series $(BUILD)/series
	@sh build-glue/checkpatch.sh $(SRC) $(BUILD)/series

## bisect    build every commit of the series on its own
bisect: prepare
	@sh build-glue/bisect.sh $(SRC) $(BUILD)/bisect

## refresh   fold edits made in build/src into their patches
refresh:
	@$(QUEUE) refresh --patch "$(PATCH)"

## import    write the commits of build/src back to patches/ and overlay
import:
	@$(QUEUE) import

## demo      boot a guest with a failover pair and tell what happens
demo: build guest
	@$(PYTHON) build-glue/demo.py --qemu $(BUILD)/qemu-system-x86_64 \
		--guest $(GUEST)/guest

## clean     remove build/ (the download cache stays)
clean:
	rm -rf $(BUILD)
