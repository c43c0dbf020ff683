#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Boot the QEMU test bench once and collect what the guest reports.
#
#   bench.sh [--flavor release|debug|noseam|bench|bench-noseam] [--mode MODE[,MODE...]]
#            [--run suite|demo|bench|mutants] [--nodes 2|4] [--filter REGEX]
#            [--out DIR] [--timeout SECONDS] [--mutants "NAME..."] [--icount]
#
# --icount: QEMU's instruction counter (-icount shift=0,sleep=off, single-
# threaded TCG, one CPU, no NUMA): guest time counts guest instructions,
# for the benchmark (see make bench). KMC_ROUNDS, KMC_VARIANTS, KMC_VCPUS
# and KMC_TESTS are passed to a benchmark run (selftests/bench/bench.sh), and
# KMC_ALT_KO=<path> goes in as its "alt" module.
#
# MODE is tdp, legacy or shadow; a suite run takes several, each run in the
# same boot with KVM reloaded (see selftests/bench/run-suite.sh).
# KMC_KO=<path> boots with that kvm_mmu_cache.ko (one built elsewhere, by
# DKMS say) instead of building the module.
# Builds (or reuses) the kernel, the module, the selftests and the
# initramfs, boots a nested-KVM guest under TCG, and writes to DIR:
# console.log (kernel console), results.log (guest output; both the
# concatenation of each boot's, console.boot<N>.log and results.boot<N>.log,
# when a hung guest was booted again), tests/<name>.log,
# dmesg.log, reports.log and summary ("PASSED FAILED SKIPPED FLAKY"). Prints one
# line per test. Exits non-zero when a test fails, the guest does not
# finish, or the kernel printed a report (WARNING, BUG, lockdep, KASAN,
# UBSAN, kmemleak, ...).
set -euo pipefail
. "$(dirname "$0")/env.sh"

flavor=release mode=tdp run=suite nodes=2 filter=. out= tmo= mutants= icount=
while [ $# -gt 0 ]; do
	case $1 in
	--icount) icount=1 nodes=1; shift; continue ;;
	--flavor) flavor=$2 ;;
	--mode) mode=$2 ;;
	--run) run=$2 ;;
	--nodes) nodes=$2 ;;
	--filter) filter=$2 ;;
	--out) out=$2 ;;
	--timeout) tmo=$2 ;;
	--mutants) mutants=$2 ;;
	*) die "unknown option $1" ;;
	esac
	shift 2
done
for m in ${mode//,/ }; do
	case $m in tdp | legacy | shadow) ;; *) die "bad --mode $mode" ;; esac
done
case $nodes in 1 | 2 | 4) ;; *) die "--nodes must be 1, 2 or 4" ;; esac
out=${out:-$KMC_ROOT/out/$flavor-${mode//,/-}-$run}
tmo=${tmo:-$([ "$flavor" = debug ] && echo 5400 || echo 2700)}

kdir=$("$KMC_ROOT/scripts/build-kernel.sh" "$flavor")
ksrc=$(readlink -f "$kdir/source")
key=$(basename "$kdir")

# The module, built apart for each kernel (and mutant) so that builds
# never share objects.
build_module() {	# [mutant]
	"$KMC_ROOT/scripts/build-module.sh" "$kdir" "$KMC_CACHE/module-$key${1:+-mutant-$1}" \
		${1:+KMC_MUTANT=$1}
}

# Upstream KVM selftests named in tests.list, plus the project's own.
list_cmds() {
	grep -vE '^\s*(#|$)' "$KMC_ROOT/selftests/tests.list" | awk '{ print $4 }' | sort -u
}
# Sets $st (output directory) and $bins (binaries for the initramfs).
build_selftests() {
	local ours=() upstream=() c
	st=$KMC_CACHE/selftests-$(basename "$ksrc")
	for c in $(list_cmds); do
		case $c in
		sh) ;;
		kmc_*) ours+=("$c") ;;
		*) upstream+=("$c") ;;
		esac
	done
	mkdir -p "$st"
	# make check's two boots build the same tree's selftests at once.
	exec 8>"$st.lock"
	flock 8
	make -s -C "$ksrc/tools/testing/selftests/kvm" \
		-f Makefile -f "$KMC_ROOT/selftests/kvm_mmu_cache.mk" \
		OUTPUT="$st" KHDR_INCLUDES="-isystem $kdir/usr/include" \
		EXTRA_CFLAGS=-static KMC_SELFTEST_DIR="$KMC_ROOT/selftests" \
		KMC_SELFTESTS="${ours[*]}" -j"$(($(nproc) + 1))" \
		"${upstream[@]/#/$st/}" kmc-selftests >&2 || die "selftests build failed"
	exec 8>&-
	bins="${ours[*]} ${upstream[*]}"
}

build_initramfs() {	# ko selftest-dir binaries...
	local ko=$1 st=$2 root=$out/initramfs b
	shift 2
	rm -rf "$root"
	mkdir -p "$root"/{bin,sbin,proc,sys,dev,tmp,kmc/bin,kmc/modules,kmc/tests}
	cp /bin/busybox "$root/bin/busybox"
	for b in $("$root/bin/busybox" --list); do
		[ "$b" = busybox ] || ln -s busybox "$root/bin/$b"
	done
	install -m 755 "$KMC_ROOT/selftests/bench/init" "$root/init"
	cp "$KMC_ROOT"/selftests/bench/*.sh "$KMC_ROOT/selftests/tests.list" "$root/kmc/"
	cp "$KMC_ROOT"/selftests/tests/*.sh "$root/kmc/tests/"
	cp "$kdir/virt/lib/irqbypass.ko" "$kdir/arch/x86/kvm/kvm.ko" \
		"$kdir/arch/x86/kvm/kvm-amd.ko" "$root/kmc/modules/"
	# Under the name the guest loads it by, whatever KMC_KO called it.
	[ -z "$ko" ] || cp "$ko" "$root/kmc/modules/kvm_mmu_cache.ko"
	if [ -n "$mutants" ]; then
		mkdir -p "$root/kmc/modules/mutants"
		for m in $mutants; do
			cp "${mutant_ko[$m]}" "$root/kmc/modules/mutants/$m.ko"
		done
	fi
	if [ -n "${KMC_ALT_KO:-}" ]; then
		mkdir -p "$root/kmc/modules/alt"
		cp "$KMC_ALT_KO" "$root/kmc/modules/alt/kvm_mmu_cache.ko"
	fi
	for b in "$@"; do cp "$st/$b" "$root/kmc/bin/"; done
	(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) >"$out/initramfs.gz"
}

# The test still running in a results log, if any: "LINE NAME TIMEOUT TRY"
# (LINE identifies the attempt: the line of its BEGIN or RETRY).
running_test() {	# results-log
	tr -d '\r' <"$1" | awk '
		/^@@@ (BEGIN|RETRY) / {
			k = NR; n = $3; t = 900; try = 1
			for (i = 4; i <= NF; i++) {
				if ($i ~ /^tmo=/) t = substr($i, 5)
				if ($i ~ /^try=/) try = substr($i, 5)
			}
		}
		/^@@@ END / { k = "" }
		END { if (k != "") print k, n, t, try }'
}

# One boot, watched: a test that has printed nothing that ends it HANG_GRACE
# seconds after its own timeout (which the guest enforces) hung the guest,
# either in the kernel (SIGKILL does not end it) or in the emulator. Then
# QEMU is stopped and $hung/$hung_try name the test.
HANG_GRACE=${KMC_HANG_GRACE:-150}
boot_once() {	# boot-number timeout extra-kernel-args
	local n=$1 left=$2 args=$3 qpid rc=0 key= seen=0 now cur name ttmo try
	local res=$out/results.boot$n.log
	hung= hung_try=
	rm -f "$res" "$out/console.boot$n.log"
	timeout -s KILL "$left" qemu-system-x86_64 -M q35 "${accel[@]}" \
		-cpu max -smp "$smp,sockets=$smp,cores=1,threads=1" -m "${mem}M" "${numa[@]}" \
		-kernel "$kdir/arch/x86/boot/bzImage" -initrd "$out/initramfs.gz" \
		-append "$args" -display none -monitor none -no-reboot \
		-d cpu_reset,guest_errors -D "$out/qemu-debug.boot$n.log" \
		-serial "file:$out/console.boot$n.log" -serial "file:$res" \
		</dev/null >>"$out/qemu.log" 2>&1 &
	qpid=$!
	while kill -0 $qpid 2>/dev/null; do
		sleep 5
		[ -f "$res" ] || continue
		cur=$(running_test "$res")
		now=$(date +%s)
		if [ "${cur%% *}" != "$key" ]; then
			key=${cur%% *} seen=$now
			continue
		fi
		[ -n "$key" ] || continue
		read -r _ name ttmo try <<<"$cur"
		if [ $((now - seen)) -gt $((ttmo + HANG_GRACE)) ]; then
			hung=$name hung_try=$try
			echo "boot $n: $name printed no result $((now - seen))s after it began (timeout ${ttmo}s): guest stopped" >>"$out/qemu.log"
			kill -TERM $qpid
			break
		fi
	done
	wait $qpid || rc=$?
	echo "boot $n: qemu exit status $rc" >>"$out/qemu.log"
	# A mutant run's guest panics on an oops (oops=panic): the test it
	# was running ended the boot, as a hang does.
	if [ -z "$hung" ] && [ "$run" = mutants ] && ! grep -q '^@@@ DONE' "$res"; then
		cur=$(running_test "$res")
		if [ -n "$cur" ]; then
			read -r _ name ttmo try <<<"$cur"
			hung=$name hung_try=$try now=$(date +%s) seen=$now
			echo "boot $n: the guest died during $name (see console.boot$n.log)" >>"$out/qemu.log"
		fi
	fi
	[ -z "$hung" ] ||
		echo "host: no result $((now - seen))s after this run began (timeout ${ttmo}s): the guest was stopped (boot $n)" >>"$res"
	[ $rc -eq 137 ] && echo "guest killed after ${left}s" >>"$out/qemu.log"
	return 0
}

# Boots until the run finishes, at most 4 times, within $tmo seconds in
# all. After a hang the guest resumes at the hung test: it runs again if it
# may be retried (an upstream test without the module, fewer than 3 runs so
# far), and is otherwise recorded as failed and skipped.
boot() {
	local mem=4096 smp numa=() i extra_args= n=1 resume= start left accel
	accel=(-accel tcg,thread=multi)
	[ -n "$icount" ] && accel=(-accel tcg -icount shift=0,sleep=off)
	# With 5-level paging (-cpu max has LA57), KASAN reports a
	# wild-memory-access at early boot, before any KVM code runs, when TCG
	# delivers an interrupt during identify_cpu(): the debug kernel boots
	# with 4-level paging; the release kernel keeps 5-level paging.
	[ "$flavor" = debug ] && extra_args=no5lvl
	# One vCPU and one socket per node (a socket split over nodes makes
	# the guest warn about its topology), 4 GiB split evenly.
	smp=$nodes
	for ((i = 0; i < nodes && nodes > 1; i++)); do
		numa+=(-object "memory-backend-ram,id=m$i,size=$((mem / nodes))M"
			-numa "node,nodeid=$i,cpus=$i,memdev=m$i")
	done
	# A mutant that hangs or oopses (oops=panic) the guest costs a boot:
	# one each; and its hangs need less grace, as it caps each test at 120 s.
	max_boots=4
	if [ "$run" = mutants ]; then
		max_boots=$(($(echo $mutants | wc -w) + 1)) extra_args+=" oops=panic"
		HANG_GRACE=${KMC_HANG_GRACE:-60}
	fi
	rm -f "$out"/console*.log "$out"/results*.log "$out"/qemu-debug*.log "$out/qemu.log"
	log "booting $flavor kernel, mode=$mode run=$run nodes=$nodes (timeout ${tmo}s)"
	start=$(date +%s)
	while :; do
		left=$((tmo - ($(date +%s) - start)))
		[ $left -gt 60 ] || { echo "no time left for boot $n" >>"$out/qemu.log"; break; }
		boot_once $n $left "console=ttyS0 panic=-1 loglevel=6 $extra_args kmc.mode=$mode kmc.run=$run kmc.filter=$filter kmc.flavor=$flavor${KMC_ROUNDS:+ kmc.rounds=$KMC_ROUNDS}${KMC_VARIANTS:+ kmc.variants=$KMC_VARIANTS}${KMC_VCPUS:+ kmc.vcpus=$KMC_VCPUS}${KMC_TESTS:+ kmc.tests=$KMC_TESTS}${mutants:+ kmc.mutants=${mutants// /,}}${KMC_HEAVY:+ kmc.heavy=$KMC_HEAVY} kmc.boot=$n$resume"
		[ -n "$hung" ] || break
		if [ "$run" = suite ] && [ $n -lt $max_boots ] && [ "$hung_try" -lt 3 ] &&
			[[ $hung =~ ^[a-z]+/upstream/[^+]*$ ]]; then
			resume=" kmc.resume=$hung kmc.resume_how=retry:$hung_try"
		else
			echo "@@@ END $hung FAIL rc=hung secs=? tries=$hung_try" >>"$out/results.boot$n.log"
			{ [[ $run =~ ^(suite|mutants)$ ]] && [ $n -lt $max_boots ]; } || break
			resume=" kmc.resume=$hung kmc.resume_how=after"
			# That mutant is caught; its kernel is not to be trusted
			# with its other tests (each could hang it again).
			[ "$run" = mutants ] && resume=" kmc.resume=$hung kmc.resume_how=next-mutant"
		fi
		log "boot $n: $hung hung the guest; booting again"
		n=$((n + 1))
	done
	echo $(($(date +%s) - start)) >"$out/boot-seconds"
	cat "$out"/results.boot*.log >"$out/results.log"
	cat "$out"/console.boot*.log >"$out/console.log"
	return 0
}

# Kernel reports, by their headers (the debug kernel mentions lockdep and
# kmemleak in informational lines at every boot).
REPORTS='WARNING:|BUG:|Oops|general protection fault|kernel BUG at|Kernel panic|'\
'possible circular locking|possible recursive locking|inconsistent lock state|'\
'suspicious RCU usage|INFO: task .* blocked|KASAN:|UBSAN:|unreferenced object|'\
'Call Trace:|scheduling while atomic|sleeping function called from invalid context|'\
'rcu: INFO:|detected stalls? on CPU|hard LOCKUP|non-static key'

# Kernel reports from the console, the guest's dmesg and kmemleak, each
# attributed to the MMU mode (or mutant) whose window it fell in, by the
# "kmc-mode:"/"kmc-mutant:" markers the guest writes to /dev/kmsg (and the
# window each kmemleak dump was taken in); reports outside any window
# belong to "boot". A dmesg line also on the console keeps the console's
# window (dmesg may have lost a marker when its buffer wrapped). Writes
# "WINDOW<TAB>LINE" lines to reports.log.
reports() {
	local f w files=()
	# Each boot's console on its own: a window ends with its boot.
	for f in "$out"/console.boot*.log "$out/dmesg.log"; do
		[ -f "$f" ] && files+=("$f")
	done
	{
		[ ${#files[@]} -eq 0 ] || awk -v re="$REPORTS" '
			FNR == 1 { w = "boot"; split("", expect); pending = 0 }
			{ sub(/\r$/, "") }
			# Reports a test causes on purpose, between its kmc-expect
			# markers only, each excusing the one Call Trace that
			# follows its header: an OOM kill dumps the stack of the
			# task that invoked it (kmc_shrinker_test pressure); an
			# allocation failure that vmalloc or the page allocator
			# reports (kmc_fault_inject_test: injected failures).
			match($0, /kmc-expect: [a-z-]+ (begin|end)/) {
				split(substr($0, RSTART, RLENGTH), m, " ")
				expect[m[2]] = m[3] == "begin"
				pending = 0
				next
			}
			expect["oom-kill"] && /invoked oom-killer/ { pending++ }
			expect["alloc-failure"] && /vmalloc error:|page allocation failure:/ { pending++ }
			pending && /Call Trace:/ { pending--; next }
			match($0, /kmc-(mode|mutant): [^ ]+ (begin|end)/) {
				# A window ends with its mode: a test killed inside one
				# excuses nothing after it.
				split("", expect); pending = 0
				split(substr($0, RSTART, RLENGTH), m, " ")
				w = m[3] == "begin" ? (m[1] == "kmc-mutant:" ? "mutant/" : "") m[2] : "boot"
				next
			}
			$0 ~ re && !seen[$0]++ { print w "\t" $0 }' "${files[@]}"
		for f in "$out"/kmemleak-*.log; do
			[ -f "$f" ] || continue
			w=${f##*/kmemleak-} w=${w%.log} w=${w//__//}
			grep -E "$REPORTS" "$f" | sed "s|^|$w\t|" || true
		done
	} >"$out/reports.log"
}

collect() {
	local passed=0 failed=0 skipped=0 flaky=0 name res line log note tries why
	mkdir -p "$out/tests"
	tr -d '\r' <"$out/results.log" >"$out/results.txt"
	awk -v dir="$out/tests" '
		/^@@@ BEGIN / { name = $3; gsub("/", "__", name); f = dir "/" name ".log"; printf "" > f; next }
		/^@@@ RETRY / { close(f); name = $3; gsub("/", "__", name); f = dir "/" name ".retry" ++retry[name] ".log"; printf "" > f; next }
		/^@@@ END / { close(f); f = ""; next }
		/^@@@ DMESG/ { f = dir "/../dmesg.log"; next }
		/^@@@ KMEMLEAK/ { w = $3; gsub("/", "__", w); f = dir "/../kmemleak-" w ".log"; printf "" > f; next }
		/^@@@ ENDDMESG/ { close(f); f = ""; next }
		f != "" { print > f }' "$out/results.txt"
	while read -r line; do
		set -- $line
		name=$flavor/$3 res=$4 log=$out/tests/${3//\//__}
		case $res in
		PASS) passed=$((passed + 1)) ;;
		SKIP) skipped=$((skipped + 1)) ;;
		*) failed=$((failed + 1)) ;;
		esac
		note=
		tries=${7:-tries=1} tries=${tries#tries=}
		if [ "$tries" -gt 1 ] && [ "$res" != FAIL ]; then
			flaky=$((flaky + 1))
			# Why it could be run again (run-suite.sh, run_test).
			why=$(awk -v t="$3" '$2 == "RETRY" && $3 == t {
					for (i = 4; i <= NF; i++) if ($i ~ /^why=/) w = substr($i, 5) }
				END { print w }' "$out/results.txt")
			note="  FLAKY: failed $((tries - 1))x ($log*.log), then passed; retried: ${why:-?}"
		fi
		printf '%-4s %-60s %s%s\n' "$res" "$name" "${6#secs=}s" "$note"
		if [ "$res" = FAIL ]; then
			if [ "$tries" -gt 1 ]; then
				echo "    | failed all $tries runs; the first:"
				sed 's/^/    | /' "$log.log" | tail -n 12
				echo "    | the last:"
				log=$log.retry$((tries - 1))
			fi
			sed 's/^/    | /' "$log.log" | tail -n 20
		fi
	done < <(grep '^@@@ END ' "$out/results.txt")
	# A test that began and has no result (its END line lost, say glued
	# to output that did not end in a newline) is a failure, not nothing.
	while read -r name; do
		failed=$((failed + 1))
		printf '%-4s %-60s\n' FAIL "$flavor/$name (began, no result)"
	done < <(awk '$1 == "@@@" && ($2 == "BEGIN" || $2 == "RETRY") { open[$3] = 1 }
		$1 == "@@@" && $2 == "END" { delete open[$3] }
		END { for (t in open) print t }' "$out/results.txt" | sort)
	reports
	local win n
	# A mutant's reports are its catch (scripts/mutants.sh), not a failure.
	# Outside every mode's window: named by the boot's modes, as make
	# check boots one kernel more than once.
	for win in boot $([ "$run" = suite ] && echo "${mode//,/ }"); do
		n=$(awk -F'\t' -v w="$win" '$1 == w' "$out/reports.log" | wc -l)
		name=$win
		[ "$win" = boot ] && name=boot@${mode//,/+}
		if [ "$n" -gt 0 ]; then
			failed=$((failed + 1))
			printf '%-4s %-60s\n' FAIL "$flavor/$name/kernel-reports ($n lines)"
			awk -F'\t' -v w="$win" '$1 == w { print "    | " $2 }' "$out/reports.log" | head -n 20
		else
			passed=$((passed + 1))
			printf '%-4s %-60s\n' PASS "$flavor/$name/kernel-reports"
		fi
	done
	if ! grep -q '^@@@ DONE' "$out/results.txt"; then
		failed=$((failed + 1))
		printf '%-4s %-60s\n' FAIL "$flavor/$mode/guest-finished (see $out/console.log)"
		sed 's/^/    | /' "$out/qemu.log"
		tail -n 30 "$out/console.log" | sed 's/^/    | /'
	fi
	echo "$passed $failed $skipped $flaky" >"$out/summary"
	[ $failed -eq 0 ]
}

mkdir -p "$out"
if [[ $flavor == *noseam ]]; then
	# Without the seam there is nothing for the module to bind to.
	ko=
elif [ -n "${KMC_KO:-}" ]; then
	[ -f "$KMC_KO" ] || die "KMC_KO=$KMC_KO: no such file"
	ko=$KMC_KO
else
	ko=$(build_module)
fi
declare -A mutant_ko
for m in $mutants; do
	mutant_ko[$m]=$(build_module "$m")
done
build_selftests
build_initramfs "$ko" "$st" $bins
boot
collect
