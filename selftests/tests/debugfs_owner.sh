#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# Each open file of kvm_mmu_cache's debugfs directory holds a reference on
# the module (its file_operations name the module as owner), so that rmmod
# cannot unload the code its close will run. The module stays loaded: the
# rmmod refusal itself is in module_load_unload.sh, without VMs.
. /kmc/lib.sh
fail() { echo "FAIL: $*"; exit 1; }
D=/sys/kernel/debug/kvm_mmu_cache
R=/sys/module/kvm_mmu_cache/refcnt

kmc_loaded || fail "module not loaded"
before=$(cat $R)
for f in unused_pages recount vm_list stats nodes; do
	exec 3<$D/$f || fail "open $D/$f"
	held=$(cat $R)
	[ "$held" -eq $((before + 1)) ] ||
		{ exec 3<&-; fail "refcnt $held with $f open, expected $((before + 1))"; }
	cat <&3 >/dev/null || fail "read of the open $f"
	exec 3<&-
	[ "$(cat $R)" -eq "$before" ] || fail "refcnt $(cat $R) after closing $f, expected $before"
done
echo "debugfs: each of 5 open files holds a module reference (refcnt $before -> $((before + 1)) -> $before)"
