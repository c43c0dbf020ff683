#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# Run selftests/tests.list in one MMU configuration:
#   run-suite.sh MODE FILTER FLAVOR
#
# Each line of the list is "PHASE NAME TIMEOUT COMMAND...". Tests of phase
# "base" run with KVM alone, "module" with kvm_mmu_cache loaded, "both" in
# each (the name gets a +kmc suffix with the module). "PHASE:FLAVOR" runs
# the test only on that kernel flavor (release or debug). A test passes on
# exit 0, is skipped on 4 (KSFT_SKIP), and fails otherwise (twice: see
# run_test).
. /kmc/lib.sh
MODE=$1
FILTER=$2
FLAVOR=$3

# One attempt at a test: sets $res and $rc.
attempt() {	# timeout command...
	tmo=$1; shift
	timeout -s KILL "$tmo" "$@" </dev/null
	rc=$?
	case $rc in
	0) res=PASS ;;
	4) res=SKIP ;;
	137) res=FAIL; echo "killed after ${tmo}s timeout" ;;
	*) res=FAIL ;;
	esac
}

# A test that fails is run once more, in a fresh process, so that a rare
# fault of the emulated nested hardware (a nested guest that triple-faults
# or stalls under TCG, seen without the module too) does not fail the
# suite on its own. The host reports a test that passes only on its second
# run as FLAKY, with the first run's log; kernel reports are never retried.
run_test() {	# name timeout command...
	name=$1; tmo=$2; shift 2
	echo "$name" | grep -Eq "$FILTER" || return 0
	# KVM selftests open their own ELF through argv[0]: give a full path.
	bin=$(command -v "$1"); shift
	set -- "$bin" "$@"
	echo "@@@ BEGIN $name"
	start=$(date +%s)
	attempt "$tmo" "$@"
	tries=1
	if [ $res = FAIL ]; then
		echo "@@@ RETRY $name rc=$rc secs=$(($(date +%s) - start))"
		attempt "$tmo" "$@"
		tries=2
	fi
	end=$(date +%s)
	echo "@@@ END $name $res rc=$rc secs=$((end - start)) tries=$tries"
}

run_phase() {	# base|module
	grep -vE '^\s*(#|$)' /kmc/tests.list | while read -r phase name tmo cmd; do
		case $phase in
		*:*) [ "${phase#*:}" = "$FLAVOR" ] || continue; phase=${phase%%:*} ;;
		esac
		case "$1:$phase" in
		base:base | base:both) run_test "$name" "$tmo" $cmd ;;
		module:module) run_test "$name" "$tmo" $cmd ;;
		module:both) run_test "$name+kmc" "$tmo" $cmd ;;
		esac
	done
}

if ! kvm_load "$MODE"; then
	echo "@@@ BEGIN setup/kvm_load"; echo "@@@ END setup/kvm_load FAIL rc=1 secs=0"
	exit 1
fi
echo "@@@ INFO kvm loaded: tdp_mmu=$(cat /sys/module/kvm/parameters/tdp_mmu) npt=$(cat /sys/module/kvm_amd/parameters/npt)"
run_phase base
if kmc_load; then
	run_phase module
	kmc_loaded && kmc_unload
else
	echo "@@@ BEGIN setup/kmc_load"; echo "@@@ END setup/kmc_load FAIL rc=1 secs=0"
fi
kvm_unload

# Reports that only show up later: kmemleak needs objects to age first.
if [ -e /sys/kernel/debug/kmemleak ]; then
	echo scan >/sys/kernel/debug/kmemleak; sleep 6
	echo scan >/sys/kernel/debug/kmemleak
	echo "@@@ KMEMLEAK"
	cat /sys/kernel/debug/kmemleak
fi
echo "@@@ DMESG"
dmesg
echo "@@@ ENDDMESG"
