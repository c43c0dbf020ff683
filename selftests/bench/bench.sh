#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# Fault-path benchmark inside the bench guest: bench.sh MODE [PAIRS]
#
# Interleaved runs: KVM's built-in caches (module not loaded when the VM is
# created), kvm_mmu_cache with its default capacity (4), and kvm_mmu_cache
# with KVM's own capacity (40), which separates the cost of refilling a
# small cache on most faults from the cost of the module's locking and
# counting. The order changes every round (see run_order) so that neither
# drift over the run nor a run's position favours a variant. THP is off so
# that every 4 KiB page takes a fault. Prints "@@@ BENCH <test> v=<vcpus> variant=<builtin|module|
# module40> pair=<n> secs=<t>" lines for scripts/benchmark.sh to summarise.
. /kmc/lib.sh
MODE=$1
PAIRS=${2:-6}
MEM=64M
B=/kmc/bin

echo never >/sys/kernel/mm/transparent_hugepage/enabled
kvm_load "$MODE" || exit 1

# Seconds from a "label: 1.234567890s" line of a selftest's output.
secs() { sed -n "s/^$1:[[:space:]]*\([0-9.]*\)s.*/\1/p" | head -n1; }

# A run that stalls (nested guests under TCG very rarely do, with or
# without the module) is killed after RUN_TIMEOUT seconds and reported
# without a time; its round is left out of the medians.
RUN_TIMEOUT=300
run_one() {	# test vcpus variant pair
	if ! check_variant "$3"; then
		echo "@@@ BENCH $1 v=$2 variant=$3 pair=$4 secs=wrong-variant"
		return
	fi
	bound0=$(bound_vms)
	case $1 in
	demand_paging) t=$(timeout -s KILL $RUN_TIMEOUT $B/demand_paging_test -b $MEM -v "$2" 2>&1 |
		secs 'Total guest execution time') ;;
	dirty_log_populate) t=$(timeout -s KILL $RUN_TIMEOUT $B/dirty_log_perf_test -b $MEM -v "$2" -i 2 2>&1 |
		secs 'Populate memory time') ;;
	esac
	# The module variants must have bound the test's VM; built-in none.
	if [ "$3" != builtin ] && [ "$(bound_vms)" -le "$bound0" ]; then
		echo "variant $3: the VM was not bound to the module"
		t=wrong-variant
	fi
	echo "@@@ BENCH $1 v=$2 variant=$3 pair=$4 secs=${t:-none}"
}

# VMs bound to the module since it was loaded (0 without the module).
bound_vms() {
	if kmc_loaded; then
		awk '{ print $2 }' /sys/kernel/debug/kvm_mmu_cache/stats
	else
		echo 0
	fi
}

# Whether the machine is in the state variant $1 is named after.
check_variant() {
	cap=/sys/module/kvm_mmu_cache/parameters/capacity
	case $1 in
	builtin) ! kmc_loaded ;;
	module) kmc_loaded && [ "$(cat $cap)" = 4 ] ;;
	module40) kmc_loaded && [ "$(cat $cap)" = 40 ] ;;
	esac || { echo "variant $1: the module is not in that state"; return 1; }
}

# The order of the three runs of round N: the six orders in turn, so that
# over six rounds each variant runs twice in each position.
run_order() {	# round
	case $((($1 - 1) % 6)) in
	0) echo "builtin module module40" ;;
	1) echo "module40 module builtin" ;;
	2) echo "module module40 builtin" ;;
	3) echo "builtin module40 module" ;;
	4) echo "module40 builtin module" ;;
	5) echo "module builtin module40" ;;
	esac
}

for test in demand_paging dirty_log_populate; do
	for v in 1 2; do
		for pair in $(seq 1 "$PAIRS"); do
			order=$(run_order "$pair")
			for variant in $order; do
				case $variant in
				module) kmc_load || echo "insmod failed" ;;
				module40) kmc_load capacity=40 || echo "insmod capacity=40 failed" ;;
				esac
				run_one $test "$v" "$variant" "$pair"
				if kmc_loaded && ! kmc_unload; then
					echo "rmmod failed: the benchmark cannot go on"
					break 4
				fi
			done
		done
	done
done

# Unused cached pages per vCPU after faulting, with the module: the
# counter test's per-round figures (2 vCPUs).
kmc_load
/kmc/bin/kmc_counter_test 2>&1 | sed -n 's/^round \([0-9]*\): unused_pages \([0-9]*\).*/@@@ FOOTPRINT round=\1 unused=\2 vcpus=2/p'
kmc_unload
kvm_unload
echo "@@@ DMESG"
dmesg
echo "@@@ ENDDMESG"
