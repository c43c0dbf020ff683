#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# make bench: fault-path cost of kvm_mmu_cache against KVM's built-in caches
# on the same (release) kernel, in one QEMU boot, interleaved A/B pairs.
# Prints the per-pair times, the median of each variant and the median of
# the per-pair ratios (module / built-in; below 1 is faster). Figures only:
# nothing here passes or fails on timing.
#   KMC_PAIRS=6 (the guest's default)  KMC_MODE=tdp|legacy|shadow
set -euo pipefail
. "$(dirname "$0")/env.sh"

"$KMC_ROOT/scripts/setup.sh"
mode=${KMC_MODE:-tdp}
out=$KMC_ROOT/out/bench-$mode
mkdir -p "$out"
rc=0
"$KMC_ROOT/scripts/bench.sh" --flavor release --mode "$mode" --run bench --out "$out" \
	>"$out/bench.log" 2>&1 || rc=$?
grep -E '^(PASS|FAIL)' "$out/bench.log" || true
if ! [ -f "$out/results.txt" ]; then
	echo "error: the benchmark boot did not run (exit $rc); see $out/bench.log" >&2
	tail -n 20 "$out/bench.log" >&2
	exit 1
fi
python3 - "$out/results.txt" "$mode" <<'PY' || rc=$?
import re, statistics, sys
path, mode = sys.argv[1], sys.argv[2]
runs = {}
foot = []
wrong = []
for line in open(path, errors="replace"):
    m = re.match(r"@@@ BENCH (\S+) v=(\d+) variant=(\S+) pair=(\d+) secs=(\S+)", line)
    if m:
        t, v, var, pair, s = m.groups()
        pair_runs = runs.setdefault((t, int(v)), {}).setdefault(int(pair), {})
        if s == "wrong-variant":
            wrong.append(f"{t} v={v} {var} round {pair}")
        try:
            pair_runs[var] = float(s)
        except ValueError:
            pass  # killed, no figure or wrong variant: the round is left out
    m = re.match(r"@@@ FOOTPRINT round=(\d+) unused=(\d+) vcpus=(\d+)", line)
    if m:
        foot.append(int(m.group(2)) / int(m.group(3)))
pairs = max((max(ps) for ps in runs.values()), default=0)
print(f"kvm_mmu_cache fault-path benchmark: {mode} MMU, release kernel, nested KVM under TCG,")
print(f"64 MiB per test, THP off, {pairs} interleaved rounds per row (the six orders of the three variants in turn)")
print()
print("ratio = module time / built-in time of the same pair (below 1: faster);")
print("module40 = the module with capacity=40, KVM's own cache size")
print()
print(f"{'test':<20} {'vCPUs':>5} {'built-in':>9} {'module':>9} {'ratio':>7} {'module40':>9} {'ratio40':>8}  module ratios per pair")
for (t, v), ps in sorted(runs.items()):
    full = [p for p in ps.values()
            if all(k in p for k in ("builtin", "module", "module40")) and p["builtin"] > 0]
    dropped = len(ps) - len(full)
    if not full:
        print(f"{t:<20} {v:>5}  no complete round ({dropped} incomplete)")
        continue
    ratios = [p["module"] / p["builtin"] for p in full]
    ratios40 = [p["module40"] / p["builtin"] for p in full]
    b = statistics.median(p["builtin"] for p in full)
    mo = statistics.median(p["module"] for p in full)
    m40 = statistics.median(p["module40"] for p in full)
    print(f"{t:<20} {v:>5} {b:>9.3f} {mo:>9.3f} {statistics.median(ratios):>7.3f} {m40:>9.3f} "
          f"{statistics.median(ratios40):>8.3f}  " + " ".join(f"{r:.3f}" for r in ratios)
          + (f"  ({dropped} incomplete rounds left out)" if dropped else ""))
print("(built-in, module, module40: median seconds; ratio, ratio40: median of per-pair ratios)")
print()
if foot:
    print(f"unused cached page-table pages per vCPU after faulting (module, capacity 4, "
          f"counter test): median {statistics.median(foot):.1f}, {min(foot):.1f}..{max(foot):.1f}")
if wrong:
    print(f"FAIL: {len(wrong)} rounds ran in the wrong variant and were left out: " + "; ".join(wrong))
    sys.exit(1)
PY
exit $rc
