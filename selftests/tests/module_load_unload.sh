#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# kvm_mmu_cache loads next to KVM, shows its debugfs directory, unloads
# cleanly and leaves nothing behind, several times in a row.
. /kmc/lib.sh
fail() { echo "FAIL: $*"; kmc_loaded && kmc_unload; exit 1; }
D=/sys/kernel/debug/kvm_mmu_cache

kmc_loaded && fail "module already loaded before the test"
for i in 1 2 3; do
	kmc_load || fail "insmod #$i"
	kmc_loaded || fail "not in /proc/modules after insmod #$i"
	[ -d $D ] || fail "$D missing after insmod #$i"
	[ -d /sys/module/kvm_mmu_cache ] || fail "/sys/module entry missing"
	kmc_unload || fail "rmmod #$i"
	kmc_loaded && fail "still loaded after rmmod #$i"
	[ -e $D ] && fail "$D left behind after rmmod #$i"
done
# Unloading a module that is not loaded is an error, not a crash.
rmmod kvm_mmu_cache 2>/dev/null && fail "rmmod of an unloaded module succeeded"
echo "load/unload x3 ok"
exit 0
