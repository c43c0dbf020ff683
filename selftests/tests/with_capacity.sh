#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# Runs COMMAND with kvm_mmu_cache reloaded at another capacity, then
# reloads it with the default: with_capacity.sh CAPACITY COMMAND...
. /kmc/lib.sh
cap=$1
shift
fail() { echo "FAIL (with_capacity): $*"; exit 1; }
kmc_unload || fail "rmmod before reloading with capacity=$cap"
kmc_load capacity="$cap" || fail "insmod capacity=$cap"
[ "$(cat /sys/module/kvm_mmu_cache/parameters/capacity)" = "$cap" ] ||
	fail "capacity reads $(cat /sys/module/kvm_mmu_cache/parameters/capacity)"
# KVM selftests open their own ELF through argv[0]: a full path.
bin=$(command -v "$1")
shift
"$bin" "$@"
rc=$?
kmc_unload || fail "rmmod after the test at capacity=$cap"
kmc_load || fail "insmod with the default capacity"
exit $rc
