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
# exit 0, is skipped on 4 (KSFT_SKIP), and fails otherwise (on every one of
# its runs: see run_test).
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

# A test that fails is run again, in a fresh process, up to TRIES runs in
# all, so that a rare fault of the emulated nested hardware does not fail
# the suite on its own: with 2 vCPUs in legacy MMU mode a nested guest
# sometimes triple-faults at once under TCG, without the module and on a
# kernel without the seam too, and such faults come in runs, hence the
# pause. The host reports a test that passes only on a later run as FLAKY,
# with the logs of the failed runs; kernel reports are never retried.
TRIES=3
run_test() {	# name timeout command...
	name=$1; tmo=$2; shift 2
	echo "$name" | grep -Eq "$FILTER" || return 0
	# KVM selftests open their own ELF through argv[0]: give a full path.
	bin=$(command -v "$1"); shift
	set -- "$bin" "$@"
	echo "@@@ BEGIN $name"
	start=$(date +%s)
	tries=0
	while :; do
		attempt "$tmo" "$@"
		tries=$((tries + 1))
		[ $res = FAIL ] && [ $tries -lt $TRIES ] || break
		echo "@@@ RETRY $name rc=$rc secs=$(($(date +%s) - start))"
		sleep 5
	done
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
