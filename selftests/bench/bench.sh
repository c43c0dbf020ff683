#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# Fault-path benchmark inside the bench guest:
#   bench.sh MODES ROUNDS VARIANTS VCPUS [TESTS]
# MODES: comma-separated tdp, legacy, shadow (KVM reloaded for each).
# VARIANTS: comma-separated, of builtin (KVM's own caches: the module is not
# loaded), module (kvm_mmu_cache, capacity 5) and module40 (capacity 40,
# KVM's own cache size: separates the refills of a small cache from the
# cost of the module's calls and counting) and alt (another build of the
# module, capacity 5, from /kmc/modules/alt/) and storm (the module, with a
# shrinker scan of every node through /sys/kernel/debug/shrinker/ every
# 10 ms during the run) and loop (the module, with the same loop writing
# its scans to /dev/null: what the loop itself takes from the guest's CPU)
# and numa (the module, the run's VM NUMA-aware: KVM_CAP_NUMA_AWARE_PAGE_TABLE).
# A kernel without the seam runs builtin only.
# VCPUS: comma-separated vCPU counts. TESTS: comma-separated, of
# fault_bench, demand_paging and dirty_log_populate (default: all), and
# fault_bench_remote: fault_bench with its memory on the last node and its
# vCPUs on node 0, which also prints where KVM put the new page tables
# ("@@@ PLACEMENT", per node from SecPageTables) and the unused cached pages
# per vCPU after the run.
#
# Per mode, test and vCPU count: one warm-up run (not reported; the first
# run after a load is often an outlier), then ROUNDS rounds, each running
# every variant once, in an order that changes every round (see run_order).
# Each run is checked before and after: the module loaded or not, its
# capacity, and the run's VM bound to the module or not; a run in the wrong
# state prints "wrong-variant" instead of a time. THP is off, so every 4 KiB
# page takes a fault. Prints "@@@ BENCH mode=<m> test=<t> v=<n>
# variant=<v> round=<r> secs=<s>" for scripts/benchmark.sh.
. /kmc/lib.sh
MODES=$(echo "$1" | tr , ' ')
ROUNDS=${2:-5}
VARIANTS=$(echo "${3:-builtin,module,module40}" | tr , ' ')
VCPUS=$(echo "${4:-1,2}" | tr , ' ')
B=/kmc/bin
TESTS=$(echo "${5:-fault_bench,demand_paging,dirty_log_populate}" | tr , ' ')

echo never >/sys/kernel/mm/transparent_hugepage/enabled
LAST_NODE=$(ls -d /sys/devices/system/node/node[0-9]* | sed 's/.*node//' | sort -n | tail -n1)

# Seconds from a "label: 1.234567890s" line of a selftest's output.
secs() { sed -n "s/^$1:[[:space:]]*\([0-9.]*\)s.*/\1/p" | head -n1; }

# A run that stalls (nested guests under TCG very rarely do, with or
# without the module) is killed and reported without a time; its round is
# left out of the medians.
RUN_TIMEOUT=600
timed() {	# test vcpus
	case $1 in
	fault_bench) set -- 'Faulting KVM_RUN time' $B/kmc_fault_bench -m 32 -v "$2" ;;
	demand_paging) set -- 'Total guest execution time' $B/demand_paging_test -b 32M -v "$2" ;;
	dirty_log_populate) set -- 'Populate memory time' $B/dirty_log_perf_test -b 32M -v "$2" -i 2 ;;
	fault_bench_remote) set -- 'Faulting KVM_RUN time' $B/kmc_fault_bench -m 32 -v "$2" \
		-n "$LAST_NODE" $NUMA_FLAG ;;
	esac
	label=$1; shift
	timeout -s KILL $RUN_TIMEOUT "$@" >/tmp/run.out 2>&1
	t=$(secs "$label" </tmp/run.out)
	# No figure: show why, on the log (not in the command substitution).
	[ -n "$t" ] || tail -n 5 /tmp/run.out | sed "s|^|no figure from $*: |" >&2
	echo "$t"
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
	module | alt | storm | loop | numa) kmc_loaded && [ "$(cat $cap)" = 5 ] ;;
	module40) kmc_loaded && [ "$(cat $cap)" = 40 ] ;;
	esac || { echo "variant $1: the module is not in that state"; return 1; }
}

set_variant() {	# variant
	kmc_loaded && { kmc_unload || return 1; }
	case $1 in
	module | storm | loop | numa) kmc_load ;;
	module40) kmc_load capacity=40 ;;
	alt) insmod $KO/alt/kvm_mmu_cache.ko ;;
	esac
}

# Scans every node's share of the module's cached pages every 10 ms, as
# sustained memory pressure would, until killed (a measured run lasts about
# 80 ms of guest time under icount). Before the run: the scan hands back
# what the last variant left. With "idle", the scans go to /dev/null.
storm() {
	scan=$(echo /sys/kernel/debug/shrinker/kvm_mmu_cache-*/scan)
	[ "${1:-}" = idle ] && scan=/dev/null
	nodes=$(ls -d /sys/devices/system/node/node[0-9]* | sed 's/.*node//')
	while :; do
		for n in $nodes; do echo "0 $n 128" >"$scan"; done
		sleep 0.01
	done
}

# The shrinker's totals over all nodes: "scans scanned freed visited busy"
# (a nodes line: node<N> unused <n> scans <n> scanned <n> freed <n>
# visited <n> busy <n>).
shrinker_totals() {
	awk '{ s += $5; sc += $7; f += $9; v += $11; b += $13 } END { print s, sc, f, v, b }' \
		/sys/kernel/debug/kvm_mmu_cache/nodes
}

run_one() {	# mode test vcpus variant round
	set_variant "$4" || echo "variant $4: could not load or unload the module"
	t=wrong-variant
	if check_variant "$4"; then
		bound0=$(bound_vms)
		if [ "$4" = storm ] || [ "$4" = loop ]; then
			storm "$([ "$4" = loop ] && echo idle)" & storm_pid=$!
			t=$(timed "$2" "$3")
			kill $storm_pid; wait $storm_pid 2>/dev/null
			[ "$5" = warmup ] || [ "$4" = loop ] ||
				echo "@@@ STORM mode=$1 test=$2 v=$3 round=$5 totals=$(shrinker_totals | tr ' ' ,)"
		else
			NUMA_FLAG=$([ "$4" = numa ] && echo -N)
			t=$(timed "$2" "$3")
			[ "$2" != fault_bench_remote ] || [ "$5" = warmup ] ||
				echo "@@@ PLACEMENT mode=$1 v=$3 variant=$4 round=$5 nodes=$((LAST_NODE + 1))" \
					"$(sed -n 's/^New page tables (kB): //p' /tmp/run.out | tr ' ' ,)" \
					"unused=$(sed -n 's/^vCPU [0-9]* unused cached pages: \([0-9]*\), node caches: \([0-9]*\)/\1:\2/p' /tmp/run.out | tr '\n' ,)"
		fi
		t=${t:-none}
		# A module variant must have bound the run's VM.
		if [ "$t" != none ] && [ "$4" != builtin ] && [ "$(bound_vms)" -le "$bound0" ]; then
			echo "variant $4: the VM was not bound to the module"
			t=wrong-variant
		fi
		check_variant "$4" || t=wrong-variant
	fi
	[ "$5" = warmup ] ||
		echo "@@@ BENCH mode=$1 test=$2 v=$3 variant=$4 round=$5 secs=$t"
}

# The variants in round N's order: rotated by one each round and reversed
# every other round, so that each variant takes each position about equally
# often (for three variants, the six orders in six rounds).
run_order() {	# round
	set -- "$1" $VARIANTS
	r=$1; shift
	n=$#
	k=$(((r - 1) % n))
	while [ $k -gt 0 ]; do
		first=$1; shift; set -- "$@" "$first"
		k=$((k - 1))
	done
	if [ $((((r - 1) / n) % 2)) = 1 ]; then
		rev=
		for v; do rev="$v $rev"; done
		echo $rev
	else
		echo "$@"
	fi
}

for mode in $MODES; do
	kvm_load "$mode" || { echo "kvm_load $mode failed"; continue; }
	echo "@@@ INFO bench $mode: kvm.tdp_mmu=$(cat /sys/module/kvm/parameters/tdp_mmu) kvm_amd.npt=$(cat /sys/module/kvm_amd/parameters/npt)"
	for test in $TESTS; do
		for v in $VCPUS; do
			run_one "$mode" "$test" "$v" "${VARIANTS%% *}" warmup
			for round in $(seq 1 "$ROUNDS"); do
				for variant in $(run_order "$round"); do
					run_one "$mode" "$test" "$v" "$variant" "$round"
				done
			done
		done
	done
	kmc_loaded && kmc_unload
	kvm_unload
done

# Unused cached pages per vCPU after faulting, with the module: the
# counter test's per-round figures (2 vCPUs).
case " $VARIANTS " in *" module "*)
	kvm_load tdp && kmc_load &&
		$B/kmc_counter_test 2>&1 |
		sed -n 's/^round \([0-9]*\): unused_pages \([0-9]*\).*/@@@ FOOTPRINT round=\1 unused=\2 vcpus=2/p'
	kmc_loaded && kmc_unload
	kvm_unload
	;;
esac
echo "@@@ DMESG"
dmesg
echo "@@@ ENDDMESG"
