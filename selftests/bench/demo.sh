#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# The demo, inside the bench guest: demo.sh MODE
. /kmc/lib.sh
MODE=$1
step() { echo; echo "### $*"; }
# A step that fails fails the demo (the host looks for "@@@ DEMO OK").
failed=0
must() {
	"$@" && return 0
	rc=$?
	echo "!!! FAILED ($rc): $*"
	failed=$((failed + 1))
	return $rc
}

step "NUMA nodes of the bench guest"
for n in /sys/devices/system/node/node*; do
	echo "$(basename $n): cpus $(cat $n/cpulist), $(awk '/MemTotal/ { print $4 " kB" }' $n/meminfo)"
done

step "load KVM ($MODE MMU) and kvm_mmu_cache"
kvm_load "$MODE" || { echo "!!! FAILED: loading KVM"; exit 1; }
kmc_load || { echo "!!! FAILED: loading kvm_mmu_cache"; exit 1; }
echo "kvm.tdp_mmu=$(cat /sys/module/kvm/parameters/tdp_mmu) kvm_amd.npt=$(cat /sys/module/kvm_amd/parameters/npt)"
grep -E '^(kvm_mmu_cache|kvm_amd|kvm|irqbypass) ' /proc/modules
dmesg | grep kvm_mmu_cache

step "/sys/kernel/debug/kvm_mmu_cache/"
find /sys/kernel/debug/kvm_mmu_cache

step "KVM page tables per node (SecPageTables) before the VM"
grep SecPageTables /sys/devices/system/node/node*/meminfo

step "run a VM that writes and verifies 64 MiB"
must /kmc/bin/kmc_vm_touch_test

step "a 2-vCPU VM faulting in 3 rounds: the module's counter of unused cached pages"
echo "unused_pages before: $(cat /sys/kernel/debug/kvm_mmu_cache/unused_pages)"
must /kmc/bin/kmc_counter_test
echo "unused_pages after the VM: $(cat /sys/kernel/debug/kvm_mmu_cache/unused_pages)," \
	"recount $(cat /sys/kernel/debug/kvm_mmu_cache/recount)"

step "NUMA-aware page tables: a VM whose memory is on node 1, its vCPU on node 0"
echo "without the capability, KVM's page tables follow the vCPU's thread:"
must /kmc/bin/kmc_numa_test place off
echo "with KVM_CAP_NUMA_AWARE_PAGE_TABLE, they follow the memory:"
must /kmc/bin/kmc_numa_test place on

step "reclaim: idle VMs' cached pages before and after one drop_caches"
must /kmc/bin/kmc_shrinker_test drop
echo "per node, unused cached pages and what the shrinker did:"
cat /sys/kernel/debug/kvm_mmu_cache/nodes

step "reclaim of one node through /sys/kernel/debug/shrinker/"
ls -d /sys/kernel/debug/shrinker/kvm_mmu_cache-*
must /kmc/bin/kmc_shrinker_test node -v 1

step "rmmod while a VM is bound is refused; a VM created before insmod is never bound"
must /kmc/bin/kmc_binding_test bound
must kmc_unload
must /kmc/bin/kmc_binding_test unbound
must kmc_load

step "unload kvm_mmu_cache and KVM"
must kmc_unload && echo "kvm_mmu_cache unloaded"
must kvm_unload && echo "KVM unloaded"
[ $failed -eq 0 ] && echo "@@@ DEMO OK" || echo "@@@ DEMO FAILED: $failed steps"
echo "@@@ DMESG"
dmesg
echo "@@@ ENDDMESG"
