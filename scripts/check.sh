#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# The whole test suite (make check). Installs what it needs, builds the
# release and debug bench kernels (cached), runs the static checks on the
# host and the bench suite, one boot per kernel running every MMU
# configuration in turn, and prints "N passed, N failed" as its last line.
# Exits non-zero on any failure.
#
#   KMC_MODES="tdp legacy shadow"  MMU configurations
#   KMC_FLAVORS="debug release"    kernels to run the bench suite on
#   KMC_FILTER=<regex>             only tests whose name matches
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

log "host checks"
"$KMC_ROOT/scripts/lint.sh" --summary "$outdir/lint.summary" | tee "$outdir/lint.lines"
count "$outdir/lint.summary"

# The boots run side by side: alone, the debug boot kept 1.1 to 1.9 of the
# two host CPUs busy, and the release boot (5 min beside it) fits in the
# rest (2026-12-03: 17 min for all of make check, the debug boot 16.5).
# The first flavor's lines are shown as they come, the others' once it is
# done; failures are counted from each boot's summary.
set -- ${KMC_FLAVORS:-debug release}
boot() {	# flavor
	log "bench: $1 kernel, MMU modes: $modes"
	"$KMC_ROOT/scripts/bench.sh" --flavor "$1" --mode "${modes// /,}" --run suite \
		--filter "$filter" --out "$outdir/$1"
}
for flavor in "${@:2}"; do
	boot "$flavor" >"$outdir/$flavor.lines" 2>"$outdir/$flavor.stderr" &
done
boot "$1" | tee "$outdir/$1.lines" || true
wait
for flavor in "$@"; do
	if [ "$flavor" != "$1" ]; then
		cat "$outdir/$flavor.stderr" >&2
		cat "$outdir/$flavor.lines"
	fi
	count "$outdir/$flavor/summary"
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
