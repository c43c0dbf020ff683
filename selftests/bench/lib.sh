# SPDX-License-Identifier: GPL-2.0
# Guest-side helpers shared by the suite, the demo and the benchmarks.

KO=/kmc/modules

# Module parameters for each MMU configuration.
kvm_params() {
	case $1 in
	tdp) echo "tdp_mmu=1" ;;
	legacy) echo "tdp_mmu=0" ;;
	shadow) echo "tdp_mmu=1" ;;
	*) echo "unknown MMU mode $1" >&2; return 1 ;;
	esac
}
kvm_amd_params() {
	case $1 in
	shadow) echo "npt=0" ;;
	*) echo "npt=1" ;;
	esac
}

kvm_load() {
	grep -q '^irqbypass ' /proc/modules || insmod $KO/irqbypass.ko || return 1
	insmod $KO/kvm.ko $(kvm_params "$1") || return 1
	insmod $KO/kvm-amd.ko $(kvm_amd_params "$1") || return 1
}

kvm_unload() {
	rmmod kvm_amd && rmmod kvm
}

kmc_load() { insmod $KO/kvm_mmu_cache.ko "$@"; }
kmc_unload() { rmmod kvm_mmu_cache; }
kmc_loaded() { grep -q '^kvm_mmu_cache ' /proc/modules; }

# Sum of KVM's secondary page-table pages over all nodes, in KiB, with the
# per-CPU vmstat deltas folded first.
sec_page_tables_kb() {
	echo 1 >/proc/sys/vm/stat_refresh
	cat /sys/devices/system/node/node*/meminfo |
		awk '/SecPageTables/ { s += $4 } END { print s + 0 }'
}

# Waits up to 10 s (page tables freed after an RCU grace period) for
# SecPageTables to return to $1 kB.
wait_sec_page_tables() {
	i=0
	while [ "$(sec_page_tables_kb)" != "$1" ]; do
		i=$((i + 1))
		[ $i -le 100 ] || return 1
		sleep 0.1
	done
}
