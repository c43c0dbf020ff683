#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# Run selftests/tests.list in one boot, once per MMU configuration:
#   run-suite.sh MODES FILTER FLAVOR [MUTANTS]
# MODES is a comma-separated list of tdp, legacy, shadow: KVM is reloaded
# with each mode's parameters, and "kmc-mode: <mode> begin|end" goes to
# /dev/kmsg so that the host can attribute a kernel report to its mode.
#
# Each line of the list is "PHASE[:TAGS] NAME TIMEOUT COMMAND...". Tests of
# phase "base" run with KVM alone, "module" with kvm_mmu_cache loaded,
# "both" in each (the name gets a +kmc suffix with the module, and the run
# is wrapped in kmc_bound.sh, which checks that the module served it).
# TAGS, comma-separated: release or debug (only on that kernel flavor), tdp,
# legacy, shadow (only in the modes named), split (the +kmc run must also show
# eager-split pages from the module), heavy (only with kmc.heavy=1).
# On the debug kernel a "both" test runs only with the module unless it
# is tagged debug, and an upstream test only in TDP MMU mode (see plan and
# tests.list).
#
# A test passes on exit 0. In the module phase a SKIP (exit 4) is a FAIL:
# the module is there, so a test that cannot run is a test that did not
# run. Only upstream tests are run again after a failure (see run_test):
# without the module after any failure; with it (+kmc) only after a
# KVM_EXIT_SHUTDOWN, and only if the same test without the module needed
# a retry earlier in this boot; never after a timeout with the module.
# The project's tests, which check what the module did, run once.
#
# With MUTANTS (a space-separated list of names), the module phase of the
# first mode runs once against each broken module in /kmc/modules/mutants/,
# and "kmc-mutant: <name> begin|end" goes to /dev/kmsg.
#
# A test that hangs the guest (not even SIGKILL ends it, or the guest stops
# printing) is caught by the host (scripts/bench.sh), which kills the guest
# and boots it again with KMC_RESUME=<test> and KMC_RESUME_HOW=after (go on
# with the next test) or retry:<runs so far> (the test may be run again:
# an upstream test without the module). Modes and tests before it are not
# run again; setup steps are, named with an @boot<N> suffix.
. /kmc/lib.sh
MODES=$(echo "$1" | tr , ' ')
FILTER=$2
FLAVOR=$3
MUTANTS=$4
HEAVY=$5
BOOT_SFX=
[ "${KMC_BOOT:-1}" -gt 1 ] && BOOT_SFX=@boot$KMC_BOOT
# Present until the test to resume at is reached (run_phase runs in a
# subshell: a variable would not outlive it).
[ -n "$KMC_RESUME" ] && echo "$KMC_RESUME" >/tmp/resume

kmsg() { echo "$*" >/dev/kmsg; }

# One attempt at a test, in a session of its own so that a timeout kills
# the whole test (a wrapper script and the selftest it runs), not only its
# first process: sets $res, $rc and $timed_out.
attempt() {	# timeout command...
	tmo=$1; shift
	rm -f /tmp/timed-out
	# The output goes to a file first, for run_test to look at.
	setsid "$@" </dev/null >/tmp/attempt.out 2>&1 &
	pid=$!
	( sleep "$tmo"; touch /tmp/timed-out; stalled $pid >>/tmp/attempt.out
	  kill -KILL -- -$pid 2>/dev/null
	  sleep 20; kill -0 $pid 2>/dev/null && unkillable $pid ) &
	dog=$!
	wait $pid
	rc=$?
	kill $dog 2>/dev/null
	wait $dog 2>/dev/null
	cat /tmp/attempt.out
	# The host reads "@@@ END" at the start of a line only.
	[ -z "$(tail -c 1 /tmp/attempt.out)" ] || echo
	# Nothing the test started outlives it.
	kill -KILL -- -$pid 2>/dev/null
	timed_out=
	case $rc in
	0) res=PASS ;;
	4) res=SKIP ;;
	*) res=FAIL ;;
	esac
	if [ -e /tmp/timed-out ]; then
		res=FAIL timed_out=1
		echo "killed after ${tmo}s timeout"
	fi
}

# An upstream test without the module that fails is run again, in a fresh
# process, up to 3 runs in all: under TCG a nested guest sometimes
# triple-faults at once (KVM_EXIT_SHUTDOWN) or stops making progress until
# the test's timeout, without the module and on a kernel without the seam
# too (demand_paging_test with userfaultfd and 2 vCPUs, TDP MMU, release
# kernel, without the module: 1 shutdown and 2 stalls in 60 runs), and such
# faults come in runs, hence the pause. With SHUTDOWN_ONLY set (a +kmc run
# whose base run needed a retry in this boot) only a KVM_EXIT_SHUTDOWN is
# run again: a timeout or any other failure with the module is the
# module's. WHY says why a retry may happen, on each RETRY line. The host
# reports a test that passes only on a later run as FLAKY, with the logs of
# the failed runs; kernel reports are never retried.
run_test() {	# name tries timeout command...
	tn=$1; tries_max=$2; tmo=$3; shift 3
	tries=${START_TRIES:-0}
	# tmo= and try= tell the host's hang watchdog what to wait for.
	if [ $tries -gt 0 ]; then
		echo "@@@ RETRY $tn rc=hung boot=$KMC_BOOT tmo=$tmo try=$((tries + 1)) why=no-module"
	else
		echo "@@@ BEGIN $tn tmo=$tmo try=1"
	fi
	start=$(date +%s)
	while :; do
		attempt "$tmo" "$@"
		tries=$((tries + 1))
		[ $res = SKIP ] && [ -n "$SKIP_FAILS" ] &&
			{ res=FAIL; echo "SKIP with the module loaded counts as a failure"; break; }
		[ $res = SKIP ] && [ $tries -gt 1 ] &&
			{ res=FAIL; echo "SKIP after a failed run counts as a failure"; break; }
		[ $res = FAIL ] && [ $tries -lt $tries_max ] || break
		[ -z "$SHUTDOWN_ONLY" ] || { [ -z "$timed_out" ] &&
			grep -qE 'exit_reason=SHUTDOWN|exit reason SHUTDOWN' /tmp/attempt.out; } || break
		echo "@@@ RETRY $tn rc=$rc secs=$(($(date +%s) - start)) tmo=$tmo try=$((tries + 1)) why=$WHY"
		sleep 5
	done
	end=$(date +%s)
	echo "@@@ END $tn $res rc=$rc secs=$((end - start)) tries=$tries"
	LAST_TRIES=$tries LAST_RES=$res
}

# A step that is not a selftest (loading, unloading), reported as a test.
run_step() {	# name command...
	tn=$1$BOOT_SFX; shift
	echo "@@@ BEGIN $tn"
	start=$(date +%s)
	"$@" >/tmp/step.out 2>&1
	rc=$?
	cat /tmp/step.out
	[ -z "$(tail -c 1 /tmp/step.out)" ] || echo
	res=PASS
	[ $rc = 0 ] || res=FAIL
	echo "@@@ END $tn $res rc=$rc secs=$(($(date +%s) - start)) tries=1"
	return $rc
}

# The tests of tests.list that run in phase $1 (base or module) and MMU
# mode $2 on this kernel, one per line: "NAME TIMEOUT SPLIT COMMAND..."
# (NAME with +kmc for a "both" test's module run, SPLIT --split or -). One
# awk for the whole list: the shell loop it replaces spent 6 s per phase
# on the debug kernel under TCG in the commands it ran for each line.
#
# A test runs when its flavor tag (if any) names this kernel, its mode
# tags (if any) name this mode, heavy only with kmc.heavy=1, and its name
# matches FILTER. On the debug kernel, besides (see tests.list): a "both"
# test runs only with the module unless it is tagged debug (its run
# without the module tests KVM alone, which the release kernel does), and
# an upstream test only in TDP MMU mode.
plan() {	# base|module mode
	FILTER=$FILTER awk -v want="$1" -v mode="$2" -v flavor="$FLAVOR" -v heavy="$HEAVY" '
	/^[ \t]*(#|$)/ { next }
	{
		phase = $1; tags = ""
		if ((i = index(phase, ":")) > 0) {
			tags = substr(phase, i + 1)
			phase = substr(phase, 1, i - 1)
		}
		ok = 1; modes = ""; sp = "-"; dbg = 0
		nt = split(tags, t, ",")
		for (k = 1; k <= nt; k++) {
			if (t[k] == "release" || t[k] == "debug") {
				if (t[k] != flavor) ok = 0
				if (t[k] == "debug") dbg = 1
			} else if (t[k] ~ /^(tdp|legacy|shadow)$/) {
				modes = modes " " t[k]
			} else if (t[k] == "split") {
				sp = "--split"
			} else if (t[k] == "heavy") {
				if (heavy != 1) ok = 0
			} else {
				print "tests.list: unknown tag " t[k] " of " $2 > "/dev/stderr"
				ok = 0
			}
		}
		if (modes != "" && index(modes " ", " " mode " ") == 0) ok = 0
		name = $2
		if (want == "base" && (phase == "base" || phase == "both")) {
			if (flavor == "debug" && phase == "both" && !dbg) ok = 0
		} else if (want == "module" && phase == "module") {
		} else if (want == "module" && phase == "both") {
			name = name "+kmc"
		} else {
			ok = 0
		}
		if (flavor == "debug" && name ~ /^upstream\// && mode != "tdp") ok = 0
		if (!ok || name !~ ENVIRON["FILTER"]) next
		cmd = $0
		sub(/^[ \t]*[^ \t]+[ \t]+[^ \t]+[ \t]+[^ \t]+[ \t]+/, "", cmd)
		print name, $3, (phase == "both" && want == "module") ? sp : "-", cmd
	}' /kmc/tests.list
}

# Before each test: the module is loaded in the module phase and not in the
# base phase. If not, the test before left it so: that is reported as a
# failure of its own, the state is restored, and the test runs.
precondition() {	# base|module prefix previous-test
	if [ "$1" = module ] && ! kmc_loaded; then
		why="kvm_mmu_cache is not loaded after $3"
		fix=kmc_load
	elif [ "$1" = base ] && kmc_loaded; then
		why="kvm_mmu_cache is still loaded after $3"
		fix=kmc_unload
	else
		return 0
	fi
	echo "@@@ BEGIN $2precondition/after-${3##*/}"
	echo "$why"
	$fix
	echo "@@@ END $2precondition/after-${3##*/} FAIL rc=1 secs=0 tries=1"
}

run_phase() {	# base|module mode prefix
	prev=setup/kvm_load
	[ "$1" = module ] && prev=setup/kmc_load
	plan "$1" "$2" | while read -r n tmo split cmd; do
		START_TRIES=
		if [ -e /tmp/resume ]; then
			[ "$3$n" = "$(cat /tmp/resume)" ] || continue
			rm /tmp/resume
			case $KMC_RESUME_HOW in
			retry:*) START_TRIES=${KMC_RESUME_HOW#retry:} ;;
			*) prev=$n; continue ;;
			esac
		fi
		# KVM selftests open their own ELF through argv[0]: a full path.
		bin=${cmd%% *}
		bin=$(command -v "${bin##*/}")
		args=${cmd#"${cmd%% *}"}
		[ -n "$MUTANT" ] && [ "$tmo" -gt 120 ] && tmo=120
		precondition "$1" "$3" "$prev"
		prev=$n
		tries=1 SHUTDOWN_ONLY= WHY=
		if [ "$1" = base ]; then
			case $n in upstream/*) tries=3 WHY=no-module ;; esac
			SKIP_FAILS=
			run_test "$3$n" $tries "$tmo" "$bin" $args
			# For its +kmc run (the list in this boot's /tmp).
			[ "$LAST_TRIES" -gt 1 ] && echo "$3$n $LAST_TRIES" >>/tmp/base-retried
			continue
		fi
		case $n in upstream/*+kmc)
			base=$(awk -v t="$3${n%+kmc}" '$1 == t { print $2 }' /tmp/base-retried 2>/dev/null)
			if [ -n "$base" ] && [ -z "$MUTANT" ]; then
				tries=3 SHUTDOWN_ONLY=1 WHY=base-run-needed-$base-runs+shutdown
				echo "@@@ INFO $3$n: run again after a KVM_EXIT_SHUTDOWN only: its run without the module needed $base runs in this boot"
			fi ;;
		esac
		SKIP_FAILS=1
		[ "$split" = - ] && split=
		case $n in
		*+kmc) run_test "$3$n" $tries "$tmo" sh /kmc/tests/kmc_bound.sh $split "$bin" $args ;;
		*) run_test "$3$n" $tries "$tmo" "$bin" $args ;;
		esac
	done
}

run_mode() {	# mode
	mode=$1
	# Resuming in a later mode.
	[ -e /tmp/resume ] && [ "$(cut -d/ -f1 /tmp/resume)" != "$mode" ] && return
	kmsg "kmc-mode: $mode begin"
	if ! run_step "$mode/setup/kvm_load" kvm_load "$mode"; then
		kvm_unload 2>/dev/null
		kmsg "kmc-mode: $mode end"
		return
	fi
	echo "@@@ INFO $mode: kvm.tdp_mmu=$(cat /sys/module/kvm/parameters/tdp_mmu) kvm_amd.npt=$(cat /sys/module/kvm_amd/parameters/npt)"
	run_phase base "$mode" "$mode/"
	precondition base "$mode/" base-phase
	if run_step "$mode/setup/kmc_load" kmc_load; then
		run_phase module "$mode" "$mode/"
		precondition module "$mode/" module-phase
		run_step "$mode/teardown/kmc_unload" kmc_unload
	fi
	run_step "$mode/teardown/kvm_unload" kvm_unload
	kmemleak_window "$mode/"
	kmsg "kmc-mode: $mode end"
	# The boot resumed after a step of this mode that is not a test (a
	# setup or teardown step hung): go on with the next modes.
	rm -f /tmp/resume
}

run_mutants() {	# mode
	mode=$1
	run_step "mutant/setup/kvm_load" kvm_load "$mode" || return
	cp $KO/kvm_mmu_cache.ko /tmp/kvm_mmu_cache.ko.good
	for m in $MUTANTS; do
		# Resuming after a test of a later mutant hung the guest.
		[ -e /tmp/resume ] && [ "$(cut -d/ -f2 /tmp/resume)" != "$m" ] && continue
		# It hung or oopsed the guest (caught): go on with the next.
		if [ -e /tmp/resume ] && [ "$KMC_RESUME_HOW" = next-mutant ]; then
			rm /tmp/resume
			echo "@@@ INFO mutant $m hung or oopsed the guest in $KMC_RESUME: its other tests are not run"
			continue
		fi
		MUTANT=$m
		kmsg "kmc-mutant: $m begin"
		cp $KO/mutants/$m.ko $KO/kvm_mmu_cache.ko
		if run_step "mutant/$m/setup/kmc_load" kmc_load; then
			run_phase module "$mode" "mutant/$m/"
			kmc_loaded && rmmod kvm_mmu_cache
		fi
		kmemleak_window "mutant/$m/"
		kmsg "kmc-mutant: $m end"
		if kmc_loaded; then
			echo "@@@ INFO mutant $m could not be unloaded: the rest need a new boot"
			break
		fi
	done
	MUTANT=
	cp /tmp/kvm_mmu_cache.ko.good $KO/kvm_mmu_cache.ko
	kmc_loaded || run_step "mutant/teardown/kvm_unload" kvm_unload
}

kmemleak_scan() {
	if ! [ -e /sys/kernel/debug/kmemleak ]; then
		grep -q '^CONFIG_DEBUG_KMEMLEAK=y' /tmp/config 2>/dev/null &&
			{ echo "kmemleak is configured but not active"; return 1; }
		echo "kmemleak not configured on this kernel"
		return 0
	fi
	# kmemleak reports an object unreferenced in two scans in a row (the
	# first records its checksum), the second begun at least 5 s
	# (MSECS_MIN_AGE) after its allocation: the first scan takes about
	# 7 s on the debug kernel; wait only for what is left of 6 s.
	t0=$(date +%s)
	echo scan >/sys/kernel/debug/kmemleak || { echo "kmemleak scan failed"; return 1; }
	while [ $(($(date +%s) - t0)) -lt 6 ]; do sleep 1; done
	echo scan >/sys/kernel/debug/kmemleak || { echo "kmemleak scan failed"; return 1; }
	echo "kmemleak scanned"
}

# At the end of a mode's (or mutant's) window: scan, hand the host what
# kmemleak found, attributed to the window, and clear it for the next one.
kmemleak_window() {	# prefix
	run_step "$1teardown/kmemleak_scan" kmemleak_scan
	[ -e /sys/kernel/debug/kmemleak ] || return 0
	echo "@@@ KMEMLEAK ${1%/}"
	cat /sys/kernel/debug/kmemleak
	echo "@@@ ENDDMESG"
	echo clear >/sys/kernel/debug/kmemleak
}

zcat /proc/config.gz >/tmp/config 2>/dev/null
if [ -n "$MUTANTS" ]; then
	run_mutants "${MODES%% *}"
else
	for mode in $MODES; do
		run_mode "$mode"
	done
fi

echo "@@@ DMESG"
dmesg
echo "@@@ ENDDMESG"
