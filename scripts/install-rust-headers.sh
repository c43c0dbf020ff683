#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Add to a kernel headers tree what building an out-of-tree Rust module
# needs beyond what Linux 7.2 installs there:
#   install-rust-headers.sh BUILD-TREE HEADERS-DIR
# HEADERS-DIR is, for example, /usr/src/linux-headers-<release> from the
# linux-headers package that `make bindeb-pkg` built from BUILD-TREE.
# scripts/package/install-extmod-build (which fills that package) copies
# no Rust artifact; a Rust module then fails with E0463 ("can't find crate
# for `core`"), and this module's bindgen step finds no kernel clang flags.
# What is copied: the crates' metadata and proc-macro libraries
# (rust/*.rmeta, rust/*.so), the kernel crate's generated assembly
# includes (rust/kernel/generated_arch_*.rs) and the kernel's bindgen
# command (rust/bindings/.bindings_generated.rs.cmd).
set -euo pipefail
. "$(dirname "$0")/env.sh"

[ $# -eq 2 ] || die "usage: install-rust-headers.sh BUILD-TREE HEADERS-DIR"
build=$1 dest=$2
[ -f "$build/rust/libkernel.rmeta" ] || die "$build is not a Rust-enabled kernel build tree"
[ -f "$dest/Module.symvers" ] || die "$dest is not a kernel headers tree (no Module.symvers)"
cmp -s "$build/include/config/kernel.release" "$dest/include/config/kernel.release" ||
	die "$build and $dest are not the same kernel release"
mkdir -p "$dest/rust/kernel" "$dest/rust/bindings"
cp "$build"/rust/*.rmeta "$build"/rust/*.so "$dest/rust/"
cp "$build"/rust/kernel/generated_arch_*.rs "$dest/rust/kernel/"
cp "$build/rust/bindings/.bindings_generated.rs.cmd" "$dest/rust/bindings/"
log "Rust build metadata of $(cat "$build/include/config/kernel.release") added to $dest"
