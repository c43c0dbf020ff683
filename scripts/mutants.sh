#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# make mutants: build deliberately broken variants of the module (the
# KMC_MUTANT build switch, see Kbuild; nothing of it is in a real build),
# boot the release bench kernel once, run the suite's module phase against
# each (TDP MMU) and print which tests caught it. Exits non-zero if a mutant
# survives or the run itself fails.
#   KMC_MUTANTS="..."   mutants to run (default: all)
#   KMC_FILTER=<regex>  module-phase tests to run (default: the project's own
#                       and one upstream test)
set -euo pipefail
. "$(dirname "$0")/env.sh"

ALL="no_bind uncounted_alloc short_topup no_release uninit_pages early_release
	reclaim_any_node uncounted_reclaim reclaim_in_use debugfs_no_owner
	numa_any_node numa_roots_default"
mutants=$(echo ${KMC_MUTANTS:-$ALL})
filter=${KMC_FILTER:-'^(kmc/|upstream/demand_paging_test\+kmc$)'}
out=$KMC_ROOT/out/mutants

"$KMC_ROOT/scripts/setup.sh"
# A fresh clone has no out/ yet, and the log sits beside the run's own dir.
mkdir -p "$(dirname "$out")"
rc=0
"$KMC_ROOT/scripts/bench.sh" --flavor release --mode tdp --run mutants \
	--mutants "$mutants" --filter "$filter" --out "$out" >"$out.log" 2>&1 || rc=$?
if ! [ -f "$out/results.txt" ]; then
	echo "error: the mutant boot did not run (bench.sh exit $rc); see $out.log" >&2
	tail -n 20 "$out.log" >&2
	exit 1
fi

survivors=0
printf '%-16s %s\n' mutant "caught by"
for m in $mutants; do
	caught=$(awk -v p="@@@ END mutant/$m/" 'index($0, p) == 1 && $4 == "FAIL" {
			sub("mutant/[^/]*/", "", $3)
			if ($3 !~ /^setup\//) { printf "%s%s", sep, $3; sep = ", " } }' "$out/results.txt")
	# A test that never ended hung the guest: the suite fails on its timeout.
	hung=$(awk -v p="mutant/$m/" '$1 == "@@@" && index($3, p) == 1 {
			if ($2 == "BEGIN") open[$3] = 1; else if ($2 == "END") delete open[$3] }
		END { for (t in open) { sub("mutant/[^/]*/", "", t); print t } }' "$out/results.txt")
	[ -n "$hung" ] && caught="${caught:+$caught, }hung in $hung (guest timeout)"
	n=$(awk -F'\t' -v w="mutant/$m" '$1 == w' "$out/reports.log" | wc -l)
	[ "$n" -gt 0 ] && caught="${caught:+$caught, }kernel reports ($n lines)"
	# A mutant that did not load was not tested.
	if ! grep -qE "^@@@ END mutant/$m/setup/kmc_load(@boot[0-9]+)? PASS" "$out/results.txt"; then
		caught="NOT RUN"
	fi
	case $caught in "" | "NOT RUN") survivors=$((survivors + 1)) ;; esac
	printf '%-16s %s\n' "$m" "${caught:-SURVIVED}"
done
# The run's own health: the boot finished and printed no report outside
# the mutants' windows.
grep -E '^(FAIL|PASS) .*(kernel-reports|guest-finished)' "$out.log" || true
grep -qE '^FAIL .*(boot@[^/]*/kernel-reports|guest-finished)' "$out.log" && rc=1 || rc=0
echo "$(( $(echo $mutants | wc -w) - survivors )) of $(echo $mutants | wc -w) mutants caught"
[ $survivors -eq 0 ] && [ $rc -eq 0 ]
