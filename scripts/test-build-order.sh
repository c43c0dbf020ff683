#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# The build in the orders a Kbuild user mixes it, on a copy of the tree:
# `make` (in-tree objects), the bench's build (scripts/build-module.sh),
# `make clean` (the tree as cloned), the bench's build again, `make` again,
# `make modules_install INSTALL_MOD_PATH=...` (modinfo finds the module
# there), `make clean`. Exits non-zero at the first step that fails, naming
# it; used by lint.sh as the test lint/build-order.
set -euo pipefail
. "$(dirname "$0")/env.sh"

kdir=$("$KMC_ROOT/scripts/build-kernel.sh" release)
kver=$(cat "$kdir/include/config/kernel.release")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
tree=$tmp/tree

# A committed copy of the working tree, so that "as cloned" can be checked.
mkdir -p "$tree"
(cd "$KMC_ROOT" && git ls-files -co --exclude-standard -z | xargs -0 cp --parents -t "$tree")
git -C "$tree" init -q
git -C "$tree" add -A
git -C "$tree" -c user.name=kmc -c user.email=kmc@localhost commit -qm tree

step() {	# description command...
	local what=$1
	shift
	echo "--- $what"
	"$@" >"$tmp/step.log" 2>&1 || {
		sed 's/^/    | /' "$tmp/step.log" | tail -n 20
		die "step failed: $what"
	}
}
as_cloned() {
	local dirt
	dirt=$(git -C "$tree" status --porcelain --ignored)
	[ -z "$dirt" ] || { echo "left behind: $dirt"; return 1; }
}
bench_build() { "$tree/scripts/build-module.sh" "$kdir" "$tmp/bench-module"; }

step "make (in-tree build)" make -C "$tree" KDIR="$kdir"
step "in-tree kvm_mmu_cache.ko exists" test -f "$tree/kvm_mmu_cache.ko"
step "the bench's build after make" bench_build
step "make clean" make -C "$tree" KDIR="$kdir" clean
step "tree as cloned after make clean" as_cloned
step "the bench's build after make clean" bench_build
step "make again" make -C "$tree" KDIR="$kdir"
step "make modules_install INSTALL_MOD_PATH=" \
	make -C "$tree" KDIR="$kdir" INSTALL_MOD_PATH="$tmp/root" modules_install
step "modinfo finds the installed module" \
	modinfo -b "$tmp/root" -k "$kver" -F name kvm_mmu_cache
step "make clean again" make -C "$tree" KDIR="$kdir" clean
step "tree as cloned at the end" as_cloned
echo "build order: all steps passed"
