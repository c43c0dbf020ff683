#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# kvm_mmu_cache loads next to KVM, shows its debugfs directory, unloads
# cleanly and leaves nothing behind, N times in a row (default 50):
#   module_load_unload.sh [N]
. /kmc/lib.sh
fail() { echo "FAIL: $*"; kmc_loaded && kmc_unload; exit 1; }
D=/sys/kernel/debug/kvm_mmu_cache
cycles=${1:-50}

kmc_loaded && fail "module already loaded before the test"
for i in $(seq "$cycles"); do
	kmc_load || fail "insmod #$i"
	kmc_loaded || fail "not in /proc/modules after insmod #$i"
	[ -d $D ] || fail "$D missing after insmod #$i"
	[ -d /sys/module/kvm_mmu_cache ] || fail "/sys/module entry missing"
	kmc_unload || fail "rmmod #$i"
	kmc_loaded && fail "still loaded after rmmod #$i"
	[ -e $D ] && fail "$D left behind after rmmod #$i"
	ls -d /sys/kernel/debug/shrinker/kvm_mmu_cache-* 2>/dev/null &&
		fail "the shrinker is still registered after rmmod #$i"
done
# A shrinker left registered would now be called into the unloaded module.
echo 2 >/proc/sys/vm/drop_caches || fail "drop_caches after the cycles"
# Unloading a module that is not loaded is an error, not a crash.
rmmod kvm_mmu_cache 2>/dev/null && fail "rmmod of an unloaded module succeeded"
echo "load/unload x$cycles ok"

# An open debugfs file holds the module: rmmod is refused (EAGAIN, "in
# use") until it is closed, and the file reads as before meanwhile.
# Without a module owner in its file_operations, rmmod would succeed and
# the close would call into the unloaded module.
kmc_load || fail "insmod for the open-file check"
for f in unused_pages recount vm_list stats nodes; do
	exec 3<$D/$f || fail "open $D/$f"
	out=$(rmmod kvm_mmu_cache 2>&1) && fail "rmmod succeeded with $f open"
	echo "$out" | grep -q 'in use\|Resource temporarily unavailable' ||
		fail "rmmod with $f open: '$out', expected EAGAIN"
	kmc_loaded || fail "unloaded with $f open"
	cat <&3 >/dev/null || fail "read of the open $f after the refused rmmod"
	exec 3<&-
done
kmc_unload || fail "rmmod once the debugfs files are closed"
kmc_loaded && fail "still loaded after the files were closed"
echo "open debugfs file: rmmod refused for each of 5 files, then unloads"

# capacity: 5..40, shown read-only in sysfs; anything else fails insmod
# with EINVAL and leaves nothing loaded.
P=/sys/module/kvm_mmu_cache/parameters/capacity
kmc_load || fail "insmod with the default capacity"
[ "$(cat $P)" = 5 ] || fail "default capacity $(cat $P), expected 5"
echo 6 2>/dev/null >$P && fail "capacity is writable at run time"
[ "$(cat $P)" = 5 ] || fail "capacity changed by a refused write"
for f in unused_pages recount vm_list stats nodes; do
	echo 1 2>/dev/null >$D/$f && fail "debugfs $f accepted a write"
done
kmc_unload || fail "rmmod after the parameter checks"
for bad in 0 4 41 4294967296 -1 abc 5x ""; do
	out=$(insmod $KO/kvm_mmu_cache.ko capacity="$bad" 2>&1) &&
		fail "insmod capacity='$bad' succeeded"
	echo "$out" | grep -q 'Invalid argument' ||
		fail "insmod capacity='$bad': '$out', expected EINVAL"
	kmc_loaded && fail "module left loaded after capacity='$bad'"
done
kmc_load capacity=40 || fail "insmod capacity=40"
[ "$(cat $P)" = 40 ] || fail "capacity=40 reads back $(cat $P)"
kmc_unload || fail "rmmod after capacity=40"
echo "capacity: default 5, 40 accepted, 0 4 41 2^32 -1 abc 5x '' refused with EINVAL, read-only"
exit 0
