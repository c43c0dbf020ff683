#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Build the module against a kernel build tree from a copy of its sources:
#   build-module.sh KDIR OUTDIR [MAKE-ARGS...]
# Prints the path of kvm_mmu_cache.ko. The bench, lint and mutant builds go
# through here, so that they neither see nor leave objects in the source
# tree, whatever `make` (an in-tree Kbuild build) left there: Kbuild refuses
# an out-of-tree (MO=) build of a source tree that holds objects. The copy
# keeps its objects between runs, so a rebuild is incremental.
set -euo pipefail
. "$(dirname "$0")/env.sh"

[ $# -ge 2 ] || die "usage: build-module.sh KDIR OUTDIR [MAKE-ARGS...]"
kdir=$1 out=$2
shift 2
mkdir -p "$out"
# make check's two debug boots build the same module at once.
exec 9>"$out.lock"
flock 9
# The sources Kbuild reads, never generated files.
rsync -a --delete --exclude=/rust/bindings_generated.rs \
	--include=/Kbuild --include=/Makefile --include='/*.rs' --include=/rust/ \
	--include='/rust/*.rs' --include='/rust/*.h' --include='/rust/*.c' --include=/scripts/ \
	--include=/scripts/bindgen.sh --exclude='*' "$KMC_ROOT/" "$out/"
make -s -C "$kdir" M="$out" LLVM=1 "$@" modules >&2 ||
	die "module build failed (make -C $kdir M=$out $*)"
echo "$out/kvm_mmu_cache.ko"
