# SPDX-License-Identifier: GPL-2.0
#
# kvm_mmu_cache: out-of-tree Rust module for the x86 KVM MMU.
#
#   make                   build the module against the bench kernel
#                          (built and cached on first use)
#   make KDIR=<build tree> build against your own Rust-enabled, seam-patched
#                          kernel build tree
#   make modules_install   install into that tree's module directory
#                          (INSTALL_MOD_PATH= honoured)
#   make setup             install the toolchain (apt packages, rust-src,
#                          bindgen, kernel source)
#   make kernel            build the release and debug bench kernels
#   make demo              the main job: build all, boot the QEMU bench, run VMs
#   make check             the whole test suite; last line "N passed, N failed"
#   make lint              rustfmt, clippy and checkpatch
#   make bench             fault-path benchmark, module vs KVM's built-in caches
#   make mutants           run the suite against deliberately broken modules
#
# Kbuild reads ./Kbuild; this file is only the user-facing entry point.

# scripts/env.sh is bash (BASH_SOURCE, [[ ]]): recipes source it.
SHELL := /bin/bash

LLVM ?= 1
FLAVOR ?= release
ENV := . $(CURDIR)/scripts/env.sh
BENCH_KDIR = $$($(CURDIR)/scripts/build-kernel.sh $(FLAVOR))
KDIR_CMD = kdir="$(or $(KDIR),$(BENCH_KDIR))" && [ -n "$$kdir" ]

.PHONY: all module modules_install setup kernel demo check lint bench mutants clean

all: module

module:
	@$(ENV) && $(KDIR_CMD) && \
		$(MAKE) -C "$$kdir" M=$(CURDIR) LLVM=$(LLVM) $(if $(CLIPPY),CLIPPY=$(CLIPPY)) modules

modules_install:
	@$(ENV) && $(KDIR_CMD) && \
		$(MAKE) -C "$$kdir" M=$(CURDIR) LLVM=$(LLVM) modules_install

setup:
	@scripts/setup.sh

kernel: setup
	@scripts/build-kernel.sh release >/dev/null
	@scripts/build-kernel.sh debug >/dev/null

demo:
	@scripts/demo.sh

check:
	@scripts/check.sh

lint:
	@scripts/lint.sh

bench:
	@scripts/benchmark.sh

mutants:
	@scripts/mutants.sh

clean:
	@$(ENV) && for d in $(KDIR) $$(ls -d $$KMC_CACHE/build-* 2>/dev/null); do \
		[ -f "$$d/Makefile" ] && $(MAKE) -s -C "$$d" M=$(CURDIR) clean; break; done; \
		rm -rf out
