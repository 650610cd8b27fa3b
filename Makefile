# SPDX-License-Identifier: GPL-2.0-or-later
#
# Build, test and export the guest driver status series on upstream QEMU
# (the release build-glue/upstream.conf names).  See README.md; 'make help'
# lists the targets.

include build-glue/upstream.conf

# The version make series gives the series: [PATCH vN nn/NN].  The first
# SERIES_FIXES commits of the queue fix upstream bugs the series needs;
# they go out first, as a series of their own.
SERIES_VERSION := 5
SERIES_FIXES := 2

CACHE ?= $(HOME)/.cache/qemu-driver-status
# tests/functional's asset cache, where make guest puts the guest's files
# for test_failover_pair.py (the functional tests' own default)
export QEMU_TEST_CACHE_DIR ?= $(HOME)/.cache/qemu
TARBALL := $(CACHE)/$(QEMU_TARBALL)
GUEST := $(CACHE)/guest
BUILD := build
SRC := $(BUILD)/src
OBJ := $(BUILD)/qemu
PRISTINE := $(BUILD)/pristine
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

# The sanitizer build: AddressSanitizer, UndefinedBehaviorSanitizer and
# libFuzzer's instrumentation (clang), for the project's qtests, upstream's
# NIC qtests and the failover-pair fuzz targets (qemu-fuzz-x86_64).
SAN := $(BUILD)/san
# Line tables are all a sanitizer report needs to name file and line;
# full debug info would only make the build slower.
SAN_CONFIGURE_FLAGS := --python=$(PYTHON) --target-list=x86_64-softmmu \
	--cc="ccache clang" --cxx="ccache clang++" \
	--without-default-features --enable-slirp --enable-fdt=system \
	--disable-docs --disable-install-blobs \
	--enable-asan --enable-ubsan --enable-fuzzing \
	--disable-debug-info --extra-cflags=-gline-tables-only
SAN_QTESTS = $(QTESTS) rtl8139-test virtio-net-failover qos-test \
	device-introspect-test
# The pair's own targets, and upstream's generic fuzzer with a pair
FUZZ_TARGETS := failover-pair-rtl8139 failover-pair-e1000 failover-pair-e1000e \
	failover-pair-igb failover-pair-vmxnet3 \
	generic-fuzz-failover-pair-rtl8139 generic-fuzz-failover-pair-e1000
# Seconds per fuzz target: make fuzz, and the short run in make check
FUZZ_SECONDS ?= 600
CHECK_FUZZ_SECONDS ?= 20

# Firmware the build does not ship: Debian's seabios and ipxe-qemu, and
# the option ROMs (linuxboot_dma.bin, ...) built from pc-bios/optionrom.
FIRMWARE_DIRS := /usr/share/seabios /usr/lib/ipxe/qemu
BUNDLE_DATADIR := qemu-bundle/usr/local/share/qemu
DATADIR := $(OBJ)/$(BUNDLE_DATADIR)

# Project qtests, then upstream's own qtests of what the series touches
# as regression guards (e1000-test and virtio-net-test are libqos tests,
# run by qos-test; qmp-cmd-test, test-hmp and device-introspect-test call
# every query, every info command and create every device type;
# netdev-socket covers the stream backend, test-netfilter,
# test-filter-mirror and test-filter-redirector the link of net clients,
# device-plug-test unplug).
QTESTS := driver-status-test net-link-test failover-pair-test \
	nic-migration-compat-test
QTESTS_UPSTREAM := rtl8139-test virtio-net-failover qos-test qmp-cmd-test \
	test-hmp device-introspect-test netdev-socket test-netfilter \
	test-filter-mirror test-filter-redirector device-plug-test

.PHONY: help deps fetch prepare build docs guest functional e2e check \
	series bisect \
	refresh import demo clean pristine nocast bench build-san fuzz

help:
	@sed -n 's/^## //p' $(MAKEFILE_LIST)

# $(call configure-qemu,DIR[,FLAGS]): configure DIR from its sibling
# DIR/../src with FLAGS (CONFIGURE_FLAGS), from scratch when they changed
# (build/qemu from build/src, build/pristine/qemu from build/pristine/src:
# the same relative paths, so ccache serves the pristine build from the
# patched one's objects).
define configure-qemu
	@if [ "$$(cat $(1)/configure-flags 2>/dev/null)" != \
			'$(or $(2),$(CONFIGURE_FLAGS))' ]; then \
		rm -rf $(1) && mkdir -p $(1) && cd $(1) && \
		../src/configure $(or $(2),$(CONFIGURE_FLAGS)) \
		>configure.log 2>&1 || \
		{ tail -30 configure.log; exit 1; }; \
		echo '$(or $(2),$(CONFIGURE_FLAGS))' >configure-flags; \
	fi
endef

# $(call link-firmware,DIR[,ROMS]): build the option ROMs of ROMS (DIR;
# clang builds have none: they take gcc's) and link them, with
# FIRMWARE_DIRS, into DIR's qemu-bundle data folder.
define link-firmware
	@$(MAKE) -s -C $(or $(2),$(1))/pc-bios/optionrom >/dev/null 2>&1 || \
		$(MAKE) -C $(or $(2),$(1))/pc-bios/optionrom
	@mkdir -p $(1)/$(BUNDLE_DATADIR)
	@for f in $(addsuffix /*,$(FIRMWARE_DIRS)) \
		$(CURDIR)/$(or $(2),$(1))/pc-bios/optionrom/*.bin; do \
		ln -sfn $$f $(1)/$(BUNDLE_DATADIR)/; \
	done
endef

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
	$(call configure-qemu,$(OBJ))
	ninja -C $(OBJ) -j$(JOBS) qemu-system-x86_64 \
		$(addprefix tests/qtest/,$(QTESTS) $(QTESTS_UPSTREAM))
	$(call link-firmware,$(OBJ))
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

## guest     build the Linux test guest from pinned Debian packages (cached)
##           and put it in tests/functional's asset cache
guest: deps
	@sh build-glue/guest/build.sh $(GUEST) $(QEMU_TEST_CACHE_DIR)

## functional  run tests/functional/x86_64/test_failover_pair.py (the
##           Linux guest with a pair on user networking) as meson runs it
functional: build guest
	QEMU_TEST_NO_DOWNLOAD=1 $(OBJ)/pyvenv/bin/meson test -C $(OBJ) \
		--no-rebuild --suite func-x86_64-thorough \
		func-x86_64-failover_pair

## e2e       boot Linux guests with a failover pair kept by
##           scripts/qmp/failover-policy.py over QMP (8 scenarios), then with
##           the pair in QEMU on a tap bridge in a network namespace (root)
e2e: build guest
	@$(PYTHON) harness/e2e.py --qemu $(BUILD)/qemu-system-x86_64 \
		--guest $(GUEST)/guest --mode tool
	@$(PYTHON) harness/e2e.py --qemu $(BUILD)/qemu-system-x86_64 \
		--guest $(GUEST)/guest --mode real --net tap

## build-san build build/san: the emulator, qtests and fuzz targets with
##           ASan, UBSan and libFuzzer (clang)
build-san: build
	$(call configure-qemu,$(SAN),$(SAN_CONFIGURE_FLAGS))
	ninja -C $(SAN) -j$(JOBS) qemu-system-x86_64 qemu-fuzz-x86_64
	$(call link-firmware,$(SAN),$(OBJ))

## fuzz      run each failover-pair fuzz target for FUZZ_SECONDS (600)
fuzz: build-san
	@sh build-glue/fuzz.sh $(SAN) $(FUZZ_SECONDS) $(FUZZ_TARGETS)

## check     build, run every test suite, verify the exported series
# make check exports the series only to verify it, so it signs it with
# an identity of its own, as CI has none
check: export SERIES_IDENTITY = make check <check@example.invalid>
check: build build-san pristine docs series guest
	@CHECK_FUZZ_SECONDS=$(CHECK_FUZZ_SECONDS) \
		SAN="$(SAN)" SAN_QTESTS="$(SAN_QTESTS)" \
		FUZZ_TARGETS="$(FUZZ_TARGETS)" \
		PRISTINE_QEMU=$(PRISTINE)/qemu-system-x86_64 \
		sh build-glue/check.sh $(OBJ) "$(QTESTS) $(QTESTS_UPSTREAM)" \
		$(GUEST)

## series    export the series, signed by you (git config user.name and
##           user.email): the upstream fixes at its head as a series of their
##           own in build/series/fixes, the rest as [PATCH vN nn/NN] in
##           build/series; check that both apply to the base and reproduce
##           build/src, and checkpatch them
series: prepare
	@$(QUEUE) export --output $(BUILD)/series --version $(SERIES_VERSION) \
		--fixes $(SERIES_FIXES)
	@$(QUEUE) verify --series $(BUILD)/series
	@sh build-glue/checkpatch.sh $(SRC) $(BUILD)/series/fixes
	@sh build-glue/checkpatch.sh $(SRC) $(BUILD)/series

## bisect    build every commit of the series on its own
bisect: prepare
	@sh build-glue/bisect.sh $(SRC) $(BUILD)/bisect $(CONFIGURE_FLAGS)

## refresh   fold edits made in build/src into their patches
refresh:
	@$(QUEUE) refresh --patch "$(PATCH)"

## import    write the commits of build/src back to patches/ and overlay
import:
	@$(QUEUE) import

## demo      boot a guest with a failover pair and tell what happens
demo: build guest
	@$(PYTHON) harness/demo.py --qemu $(BUILD)/qemu-system-x86_64 \
		--guest $(GUEST)/guest $(if $(DEMO_NET),--net $(DEMO_NET))

## pristine  build/pristine/qemu-system-x86_64: QEMU at `base`, without the
##           series (git archive of build/src, same flags; for make bench
##           and make check's migration to and from QEMU without it)
pristine: $(if $(BENCH_NOBUILD),,prepare)
	@$(SHELL) build-glue/pristine.sh $(SRC) $(PRISTINE)/src
	$(call configure-qemu,$(PRISTINE)/qemu)
	nice ninja -C $(PRISTINE)/qemu -j$(JOBS) qemu-system-x86_64
	$(call link-firmware,$(PRISTINE)/qemu)
	@ln -sfn qemu/qemu-system-x86_64 $(PRISTINE)/qemu-system-x86_64

# Both emulators again without QOM cast debugging (on by default), whose
# class cast caches the data path measurement is sensitive to: the
# emulator only, in qemu-nocast next to each build's qemu.
NOCAST_FLAGS := $(CONFIGURE_FLAGS) --disable-qom-cast-debug

## nocast    build/qemu-nocast and build/pristine/qemu-nocast: both
##           emulators with --disable-qom-cast-debug (for make bench)
nocast: $(if $(BENCH_NOBUILD),,build) pristine
	$(call configure-qemu,$(BUILD)/qemu-nocast,$(NOCAST_FLAGS))
	nice ninja -C $(BUILD)/qemu-nocast -j$(JOBS) qemu-system-x86_64
	$(call link-firmware,$(BUILD)/qemu-nocast,$(OBJ))
	$(call configure-qemu,$(PRISTINE)/qemu-nocast,$(NOCAST_FLAGS))
	nice ninja -C $(PRISTINE)/qemu-nocast -j$(JOBS) qemu-system-x86_64
	$(call link-firmware,$(PRISTINE)/qemu-nocast,$(PRISTINE)/qemu)

## bench     measure what the series costs and buys, pristine vs patched:
##           data path (callgrind, with and without QOM cast debugging),
##           decision latency, events and the policy tool, time to network;
##           then the traffic lost across a switch on a tap bridge (root)
##           BENCH=datapath,latency,events,boot,outage BENCH_REPEAT=3
##           BENCH_BOOT_REPEAT=5
##           BENCH_NOBUILD=1: use build/qemu as it is, without make build
comma := ,
bench_list := $(subst $(comma), ,$(BENCH))
# bench.py's sections, and whether outage.py runs: all of them by default
bench_py := $(if $(bench_list),$(filter-out outage,$(bench_list)),all)
bench_outage := $(if $(bench_list),$(filter outage,$(bench_list)),all)
bench: $(if $(BENCH_NOBUILD),,build) guest pristine nocast
	$(if $(bench_py),@$(PYTHON) harness/bench.py \
		--patched $(BUILD)/qemu-system-x86_64 \
		--pristine $(PRISTINE)/qemu-system-x86_64 \
		--patched-nocast $(BUILD)/qemu-nocast/qemu-system-x86_64 \
		--pristine-nocast $(PRISTINE)/qemu-nocast/qemu-system-x86_64 \
		--guest $(GUEST)/guest \
		--policy-tool $(SRC)/scripts/qmp/failover-policy.py \
		--sections "$(subst $(eval) ,$(comma),$(filter-out all,$(bench_py)))" \
		--repeat "$(BENCH_REPEAT)" --boot-repeat "$(BENCH_BOOT_REPEAT)" \
		--csv $(BUILD)/bench/bench.csv)
	$(if $(bench_outage),@$(PYTHON) harness/outage.py \
		--qemu $(BUILD)/qemu-system-x86_64 --guest $(GUEST)/guest \
		--csv $(BUILD)/bench/outage.csv)

## clean     remove build/ (the download cache stays)
clean:
	rm -rf $(BUILD)
