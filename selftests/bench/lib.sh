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

# What KVM made of them: "TDP_MMU NPT" as its parameters read after loading.
kvm_mode_state() {
	case $1 in
	tdp) echo "Y Y" ;;
	legacy) echo "N Y" ;;
	shadow) echo "N N" ;;
	esac
}

kvm_load() {
	grep -q '^irqbypass ' /proc/modules || insmod $KO/irqbypass.ko || return 1
	insmod $KO/kvm.ko $(kvm_params "$1") || return 1
	insmod $KO/kvm-amd.ko $(kvm_amd_params "$1") || return 1
	# A mode KVM did not take would run its tests as another mode's.
	state="$(cat /sys/module/kvm/parameters/tdp_mmu) $(cat /sys/module/kvm_amd/parameters/npt)"
	[ "$state" = "$(kvm_mode_state "$1")" ] && return 0
	echo "MMU mode $1: kvm.tdp_mmu and kvm_amd.npt read \"$state\", not \"$(kvm_mode_state "$1")\""
	return 1
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

# At a timeout, before the kill: where each task of the test is, and
# whether its VMs still make progress (KVM's exit and fault counts, 2 s
# apart). No exits: the vCPUs are stuck in the emulator or never entered
# the guest; exits and faults that go on without the test advancing: a
# fault loop.
stalled() {	# process-group
	echo "@@@ INFO timed out; its tasks:"
	pids=
	for t in /proc/[0-9]*/task/[0-9]*; do
		[ "$(awk '{ print $5 }' $t/stat 2>/dev/null)" = "$1" ] || continue
		p=${t#/proc/}; p=${p%%/*}
		case " $pids " in *" $p "*) ;; *) pids="$pids $p" ;; esac
		echo "${t#/proc/} $(cat $t/comm) $(grep ^State: $t/status)"
		sed 's/^/    /' $t/stack 2>/dev/null
	done
	for n in 1 2; do
		for p in $pids; do
			for d in /sys/kernel/debug/kvm/$p-*; do
				[ -d "$d" ] || continue
				echo "sample $n ${d##*/}: $(for f in exits pf_taken pf_fixed pf_fast pf_spurious pf_emulate pf_mmio_spte_created halt_exits signal_exits; do
					printf '%s=%s ' $f "$(cat $d/$f 2>/dev/null)"; done)"
				# Every counter, to name the ones that move.
				for f in $d/*; do
					[ -f "$f" ] && echo "${f##*/} $(cat $f 2>/dev/null)"
				done >/tmp/stall.${d##*/}.$n
			done
		done
		[ $n = 1 ] && sleep 2
	done
	for f in /tmp/stall.*.1; do
		[ -e "$f" ] || continue
		f=${f%.1}
		echo "moved in 2 s, ${f#/tmp/stall.}: $(awk 'NR == FNR { was[$1] = $2; next }
			($1 in was) && $2 != was[$1] && $2 ~ /^[0-9]+$/ {
				printf "%s +%d ", $1, $2 - was[$1] }' "$f.1" "$f.2")"
		rm -f "$f.1" "$f.2"
	done
	stall_trace
}

# 1 s of KVM's trace events: which exit (reason, guest RIP) a looping vCPU
# takes, and what else KVM does for it. Needs tracefs (base.config).
stall_trace() {
	tr=/sys/kernel/debug/tracing
	[ -e $tr/events/kvm/enable ] || { echo "(no KVM trace events)"; return; }
	echo 0 >$tr/tracing_on
	echo >$tr/trace
	echo 1 >$tr/events/kvm/enable
	[ -e $tr/events/kvmmmu/enable ] && echo 1 >$tr/events/kvmmmu/enable
	echo 1 >$tr/tracing_on
	sleep 1
	echo 0 >$tr/tracing_on
	echo 0 >$tr/events/kvm/enable
	[ -e $tr/events/kvmmmu/enable ] && echo 0 >$tr/events/kvmmmu/enable
	echo "@@@ INFO 1 s of KVM events, by count:"
	grep -v '^#' $tr/trace | sed -E -e 's/^.*: (kvm_exit): .*(reason [^ ]+) +rip (0x[0-9a-f]+).*/\1 \2 rip \3/' \
		-e 's/^.*: (kvm_[a-z_]+): .*/\1/' | sort | uniq -c | sort -rn | head -25
	echo "@@@ INFO the first 40 events:"
	grep -v '^#' $tr/trace | head -40
	echo >$tr/trace
}

# A test still there 20 s after SIGKILL is stuck in the kernel: show where,
# in the test's log (the host kills the guest after the test's timeout).
unkillable() {	# process-group
	echo "@@@ INFO still running 20 s after SIGKILL; its tasks:"
	for t in /proc/[0-9]*/task/[0-9]*; do
		[ "$(awk '{ print $5 }' $t/stat 2>/dev/null)" = "$1" ] || continue
		echo "${t#/proc/} $(cat $t/comm) $(grep ^State: $t/status)"
		sed 's/^/    /' $t/stack 2>/dev/null
	done
}
