#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# The whole test suite (make check). Installs what it needs, builds the
# release and debug bench kernels (cached), runs the static checks on the
# host and the bench suite in three boots side by side (the debug kernel
# twice: TDP MMU, then legacy MMU and shadow paging; the release kernel
# once, every MMU configuration in turn), and prints "N passed, N failed"
# as its last line. Exits non-zero on any failure.
#
#   KMC_MODES="tdp legacy shadow"  MMU configurations
#   KMC_FLAVORS="debug release"    kernels to run the bench suite on
#   KMC_FILTER=<regex>             only tests whose name matches
#   KMC_BOOTS="FLAVOR:MODE,...  ..." the boots (default above)
set -uo pipefail
. "$(dirname "$0")/env.sh"

modes=${KMC_MODES:-tdp legacy shadow}
filter=${KMC_FILTER:-.}
outdir=$KMC_ROOT/out/check
rm -rf "$outdir"
mkdir -p "$outdir"
passed=0 failed=0 skipped=0 flaky=0
start=$(date +%s)

count() {	# summary-file
	local p f s k
	read -r p f s k <"$1" || { p=0 f=1 s=0; }
	passed=$((passed + p)) failed=$((failed + f)) skipped=$((skipped + s))
	flaky=$((flaky + ${k:-0}))
}

"$KMC_ROOT/scripts/setup.sh" || { echo "0 passed, 1 failed"; exit 1; }
for flavor in release debug; do
	if ! "$KMC_ROOT/scripts/build-kernel.sh" $flavor >/dev/null; then
		echo "FAIL build/kernel-$flavor"
		echo "$passed passed, $((failed + 1)) failed"
		exit 1
	fi
done

# The host checks run beside the boots (their lines are shown after the
# first boot's).
log "host checks"
"$KMC_ROOT/scripts/lint.sh" --summary "$outdir/lint.summary" >"$outdir/lint.lines" 2>&1 &

# The boots, FLAVOR:MODES, run side by side. Two boots left a host CPU
# idle for a third of the run (1.5 of 2 busy on average, 2026-12-04: the
# debug boot 601 s, its legacy MMU tests on one vCPU, the release boot 321
# s beside its TDP part); three fill both. The first boot's lines are shown
# as they come, the others' once it is done; failures are counted from each
# boot's summary. KMC_MODES and KMC_FLAVORS narrow the list.
boots=()
for b in ${KMC_BOOTS:-debug:tdp debug:legacy,shadow release:tdp,legacy,shadow}; do
	case " ${KMC_FLAVORS:-debug release} " in *" ${b%%:*} "*) ;; *) continue ;; esac
	m=
	mm=${b#*:}
	for x in ${mm//,/ }; do
		case " $modes " in *" $x "*) m=${m:+$m,}$x ;; esac
	done
	[ -n "$m" ] && boots+=("${b%%:*}:$m")
done
[ ${#boots[@]} -gt 0 ] || { echo "no boot left (KMC_FLAVORS, KMC_MODES)"; echo "0 passed, 1 failed"; exit 1; }
boot() {	# flavor:modes
	log "bench: ${1%%:*} kernel, MMU modes: ${1#*:}"
	"$KMC_ROOT/scripts/bench.sh" --flavor "${1%%:*}" --mode "${1#*:}" --run suite \
		--filter "$filter" --out "$outdir/$(bootdir "$1")"
}
bootdir() { local d=${1//:/-}; echo "${d//,/-}"; }
for b in "${boots[@]:1}"; do
	boot "$b" >"$outdir/$(bootdir "$b").lines" 2>"$outdir/$(bootdir "$b").stderr" &
done
boot "${boots[0]}" | tee "$outdir/$(bootdir "${boots[0]}").lines" || true
wait
cat "$outdir/lint.lines"
count "$outdir/lint.summary"
for b in "${boots[@]}"; do
	d=$(bootdir "$b")
	if [ "$b" != "${boots[0]}" ]; then
		cat "$outdir/$d.stderr" >&2
		cat "$outdir/$d.lines"
	fi
	count "$outdir/$d/summary"
done

log "suite took $(($(date +%s) - start)) s; logs in $outdir"
[ $skipped -gt 0 ] && echo "($skipped skipped)"
[ $flaky -gt 0 ] && echo "($flaky flaky: failed, then passed on a later run; grep FLAKY above)"
# Again, next to the count: a CI excerpt may show only the end.
if [ $failed -gt 0 ]; then
	echo "failed:"
	grep -h '^FAIL' "$outdir"/*.lines || true
fi
echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
