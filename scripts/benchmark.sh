#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# make bench: the fault path's cost, as figures (nothing here passes or
# fails on a timing).
#
# 1. kvm_mmu_cache against KVM's built-in caches, on the bench kernel (the
#    release kernel with jump labels; under wall clock the release kernel
#    itself), in one boot: per MMU mode, test and vCPU count, ROUNDS rounds
#    of the three variants interleaved (selftests/bench/bench.sh).
# 2. The seam's own cost without a module: that kernel against the same
#    configuration built without patches/ (build-kernel.sh bench-noseam,
#    or noseam), KVM's built-in caches in both, in alternating boots.
# 3. The fault path under a shrinker storm: the module alone against the
#    module with every node scanned every 10 ms, interleaved in one boot
#    (fault_bench and demand_paging), with what the scans found.
# 4. NUMA-aware page tables: fault_bench with its memory on the last node
#    and its vCPU on node 0, in a 2-node and a 4-node guest, built-in
#    against the module against the module with the VM NUMA-aware,
#    interleaved in one boot per node count: the cost (numa/module), the
#    locality (share of the new page tables on the memory's node, from
#    KVM's per-node SecPageTables) and the unused cached pages per vCPU.
#    Emulation has no remote-memory latency: this part reports placement
#    and work, not the time remote page tables would cost.
#
# By default under QEMU's instruction counter (-icount shift=0,sleep=off,
# one CPU, no NUMA): guest time is a count of guest instructions, which
# repeats to about 0.1% where wall-clock runs spread by 5% or more. It
# cannot see cache misses, remote memory, lock contention between real
# CPUs or retpoline stalls: the ratios say how much work the module and
# the seam add to a fault, nothing else.
#
#   KMC_BENCH_CLOCK=icount|wall  wall: multi-threaded TCG, 2 CPUs, 2 nodes
#   KMC_MODES="tdp legacy shadow"  KMC_VCPUS="1 2"  KMC_ROUNDS=5
#   KMC_SEAM_BOOTS=3   boots of each kernel for part 2 (0: skip part 2)
#   KMC_PARTS="1 2 3 4"  the parts to run (part 2 also needs KMC_SEAM_BOOTS > 0)
#   KMC_ALT_KO=<path>  a throw-away build of the module timed as a fourth
#                      variant, "alt" (to count what one change costs)
set -euo pipefail
. "$(dirname "$0")/env.sh"

clock=${KMC_BENCH_CLOCK:-icount}
modes=${KMC_MODES:-tdp legacy shadow}
vcpus=${KMC_VCPUS:-1 2}
rounds=${KMC_ROUNDS:-5}
seam_boots=${KMC_SEAM_BOOTS:-3}
parts=" ${KMC_PARTS:-1 2 3 4} "
out=$KMC_ROOT/out/bench
# Under icount (one vCPU thread) the kernels have jump labels, as
# distributions' do (config/bench.config); under multi-threaded TCG they
# cannot (see there), and the release kernel is used.
case $clock in
icount) clockopt=--icount kernel=bench noseam=bench-noseam ;;
wall) clockopt= kernel=release noseam=noseam ;;
*) die "KMC_BENCH_CLOCK must be icount or wall" ;;
esac

"$KMC_ROOT/scripts/setup.sh"
rm -rf "$out"
mkdir -p "$out"

bench_boot() {	# flavor name variants rounds [bench.sh options]
	local dir=$out/$2 rc=0
	KMC_ROUNDS=$4 KMC_VARIANTS=$3 KMC_VCPUS=${vcpus// /,} \
		"$KMC_ROOT/scripts/bench.sh" --flavor "$1" --mode "${modes// /,}" --run bench \
		$clockopt "${@:5}" --timeout 14400 --out "$dir" >"$dir.log" 2>&1 || rc=$?
	if ! [ -f "$dir/results.txt" ] || ! grep -q '^@@@ DONE' "$dir/results.txt"; then
		echo "error: benchmark boot $2 did not finish (bench.sh exit $rc); see $dir.log" >&2
		tail -n 20 "$dir.log" >&2
		exit 1
	fi
	grep -E '^FAIL' "$dir.log" >&2 || true
}

case $parts in *" 1 "*)
	log "part 1: module vs built-in, $kernel kernel, $clock"
	bench_boot "$kernel" module "builtin,module,module40${KMC_ALT_KO:+,alt}" "$rounds"
esac
case $parts in *" 2 "*) ;; *) seam_boots=0 ;; esac
if [ "$seam_boots" -gt 0 ]; then
	log "part 2: seam without module vs kernel without the seam, $seam_boots boots each"
	"$KMC_ROOT/scripts/build-kernel.sh" "$noseam" >/dev/null
	for i in $(seq 1 "$seam_boots"); do
		bench_boot "$noseam" noseam$i builtin 2
		bench_boot "$kernel" seam$i builtin 2
	done
fi

if [[ $parts == *" 3 "* ]]; then
	log "part 3: the module under a shrinker storm vs the module alone"
	KMC_TESTS=fault_bench,demand_paging bench_boot "$kernel" storm module,loop,storm "$rounds"
fi

if [[ $parts == *" 4 "* ]]; then
	for nodes in 2 4; do
		log "part 4: NUMA-aware page tables, $nodes nodes"
		KMC_TESTS=fault_bench_remote bench_boot "$kernel" numa$nodes builtin,module,numa \
			"$rounds" --nodes $nodes
	done
fi

python3 - "$out" "$clock" "$rounds" "$kernel" <<'PY' | tee "$out/summary.txt"
import glob, os, re, statistics, sys
out, clock, rounds, kernel = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
LINE = re.compile(r"@@@ BENCH mode=(\S+) test=(\S+) v=(\d+) variant=(\S+) round=(\d+) secs=(\S+)")

def read(path):
    """{(mode, test, vcpus): {round: {variant: secs}}} and the wrong-variant runs."""
    runs, wrong = {}, []
    for line in open(path, errors="replace"):
        m = LINE.match(line.strip())
        if not m:
            continue
        mode, test, v, var, rnd, s = m.groups()
        row = runs.setdefault((mode, test, int(v)), {}).setdefault(int(rnd), {})
        if s == "wrong-variant":
            wrong.append(f"{mode} {test} v={v} {var} round {rnd}")
        try:
            row[var] = float(s)
        except ValueError:
            pass  # killed, no figure or wrong variant: left out
    return runs, wrong

def spread(xs):
    return f"{min(xs):.3f}..{max(xs):.3f}"

unit = "M guest instructions" if clock == "icount" else "ms wall-clock"
def fmt(secs):
    return f"{secs * 1e3:.2f}"

failed = []
part1 = os.path.join(out, "module", "results.txt")
runs, wrong = read(part1) if os.path.exists(part1) else ({}, [])
failed += wrong
print(f"kvm_mmu_cache fault-path benchmark ({clock}): {kernel} kernel, nested KVM under TCG")
print(f"{rounds} interleaved rounds per row after a warm-up run; THP off; 32 MiB per vCPU")
print(f"figures: median {unit}; ratio: median of per-round ratios to built-in, [min..max]")
print("fault_bench: only the faulting KVM_RUN; demand_paging: demand_paging_test total guest")
print("execution time; dirty_log_populate: dirty_log_perf_test populate phase")
print()
variants = ["module", "module40"] + (["alt"] if any("alt" in r for rows in runs.values() for r in rows.values()) else [])
print(f"{'mode':<7}{'test':<19}{'vCPUs':>5} {'built-in':>9}" +
      "".join(f" {v:>9} {'ratio':>6} {'[spread]':<13}" for v in variants))
order = {"tdp": 0, "legacy": 1, "shadow": 2}
for (mode, test, v), rows in sorted(runs.items(), key=lambda kv: (order.get(kv[0][0], 9),) + kv[0][1:]):
    full = [r for r in rows.values() if all(k in r for k in ["builtin"] + variants) and r["builtin"] > 0]
    if not full:
        print(f"{mode:<7}{test:<19}{v:>5}  no complete round")
        failed.append(f"{mode} {test} v={v}: no complete round")
        continue
    line = f"{mode:<7}{test:<19}{v:>5} {fmt(statistics.median(r['builtin'] for r in full)):>9}"
    for var in variants:
        rs = [r[var] / r["builtin"] for r in full]
        line += f" {fmt(statistics.median(r[var] for r in full)):>9} {statistics.median(rs):>6.3f} [{spread(rs)}]"
    if len(full) < len(rows):
        line += f"  ({len(rows) - len(full)} incomplete rounds left out)"
    print(line)

foot = []
for line in (open(part1, errors="replace") if os.path.exists(part1) else []):
    m = re.match(r"@@@ FOOTPRINT round=(\d+) unused=(\d+) vcpus=(\d+)", line)
    if m:
        foot.append(int(m.group(2)) / int(m.group(3)))
if foot:
    print()
    print(f"unused cached page-table pages per vCPU after faulting (module, capacity 5, TDP, "
          f"kmc_counter_test): median {statistics.median(foot):.1f}, {min(foot):.1f}..{max(foot):.1f}")

seam = sorted(glob.glob(os.path.join(out, "seam*", "results.txt")))
if seam:
    base = {}
    for kind in ("noseam", "seam"):
        for path in sorted(glob.glob(os.path.join(out, kind + "[0-9]*", "results.txt"))):
            boot = int(re.search(r"(\d+)/results.txt$", path).group(1))
            r, w = read(path)
            failed += w
            for key, rows in r.items():
                for rnd, vs in rows.items():
                    if "builtin" in vs:
                        base.setdefault(key, {}).setdefault((boot, rnd), {})[kind] = vs["builtin"]
    print()
    print(f"the seam without a module: {kernel} kernel / the same config without patches/,")
    print("KVM's built-in caches in both; alternating boots, ratio per (boot pair, round)")
    print(f"{'mode':<7}{'test':<19}{'vCPUs':>5} {'no seam':>9} {'seam':>9} {'ratio':>6} {'[spread]':<13}")
    for (mode, test, v), pairs in sorted(base.items()):
        full = [p for p in pairs.values() if "noseam" in p and "seam" in p and p["noseam"] > 0]
        if not full:
            print(f"{mode:<7}{test:<19}{v:>5}  no complete pair")
            continue
        rs = [p["seam"] / p["noseam"] for p in full]
        print(f"{mode:<7}{test:<19}{v:>5} {fmt(statistics.median(p['noseam'] for p in full)):>9} "
              f"{fmt(statistics.median(p['seam'] for p in full)):>9} {statistics.median(rs):>6.3f} [{spread(rs)}]")
storm_path = os.path.join(out, "storm", "results.txt")
if os.path.exists(storm_path):
    r, w = read(storm_path)
    failed += w
    found = {}
    for line in open(storm_path, errors="replace"):
        m = re.match(r"@@@ STORM mode=(\S+) test=(\S+) v=(\d+) round=(\d+) totals=(\d+),(\d+),(\d+),(\d+),(\d+)", line)
        if m:
            key = (m.group(1), m.group(2), int(m.group(3)))
            found.setdefault(key, []).append(tuple(int(x) for x in m.groups()[4:]))
    print()
    print("the fault path under a shrinker storm (every node scanned every 10 ms, 128 pages")
    print("a scan) and under the same loop scanning nothing (its scans to /dev/null): ratios")
    print("per round to the module alone and storm/loop (what the scans add); per run, medians")
    print("of the node scans, the pages they freed, the caches with pages they visited and the")
    print("caches in use or lists locked they kept off (busy)")
    print(f"{'mode':<7}{'test':<15}{'vCPUs':>5} {'module':>8} {'loop':>6} {'[spread]':<13} {'storm':>6} {'[spread]':<13}"
          f" {'s/loop':>6} {'[spread]':<13} {'scans':>5} {'freed':>5} {'visit':>5} {'busy':>4}")
    for (mode, test, v), rows in sorted(r.items(), key=lambda kv: (order.get(kv[0][0], 9),) + kv[0][1:]):
        full = [x for x in rows.values() if all(k in x for k in ("module", "loop", "storm")) and x["module"] > 0]
        if not full:
            print(f"{mode:<7}{test:<15}{v:>5}  no complete round")
            failed.append(f"storm {mode} {test} v={v}: no complete round")
            continue
        ratios = {k: [x[a] / x[b] for x in full] for k, a, b in
                  (("loop", "loop", "module"), ("storm", "storm", "module"), ("sl", "storm", "loop"))}
        f = found.get((mode, test, v), [(0, 0, 0, 0, 0)])
        cols = " ".join(f"{statistics.median(ratios[k]):>6.3f} [{spread(ratios[k])}]" for k in ("loop", "storm", "sl"))
        print(f"{mode:<7}{test:<15}{v:>5} {fmt(statistics.median(x['module'] for x in full)):>8} {cols}"
              f" {statistics.median(t[0] for t in f):>5} {statistics.median(t[2] for t in f):>5}"
              f" {statistics.median(t[3] for t in f):>5} {statistics.median(t[4] for t in f):>4}")

numa_paths = sorted(glob.glob(os.path.join(out, "numa[0-9]*", "results.txt")))
if numa_paths:
    print()
    print("NUMA-aware page tables: fault_bench, 32 MiB per vCPU on the last node, vCPUs on")
    print("node 0; cost: median of per-round ratios [min..max]; locality: share of the new")
    print("page tables (SecPageTables) on the memory's node, median over rounds; unused:")
    print("unused cached pages per vCPU after the run, median (node caches in use)")
    print(f"{'nodes':<6}{'mode':<7}{'vCPUs':>5} {'module/built-in':>16} {'[spread]':<13} {'numa/module':>11} {'[spread]':<13}"
          f" {'locality: built-in':>18} {'module':>6} {'numa':>5} {'unused: module':>14} {'numa':>9}")
    PL = re.compile(r"@@@ PLACEMENT mode=(\S+) v=(\d+) variant=(\S+) round=(\d+) nodes=(\d+) (\S*) unused=(\S*)")
    for path in numa_paths:
        r, w = read(path)
        failed += w
        place = {}
        for line in open(path, errors="replace"):
            m = PL.match(line.strip())
            if not m:
                continue
            mode, v, var, rnd, nodes, tables, unused = m.groups()
            kb = [int(x.split("=")[1]) for x in tables.split(",") if "=" in x]
            loc = kb[-1] / sum(kb) if kb and sum(kb) > 0 else float("nan")
            un = [tuple(int(y) for y in x.split(":")) for x in unused.split(",") if ":" in x]
            place.setdefault((mode, int(v)), {}).setdefault(var, []).append((loc, un, int(nodes)))
        for (mode, test, v), rows in sorted(r.items(), key=lambda kv: (order.get(kv[0][0], 9),) + kv[0][1:]):
            full = [x for x in rows.values() if all(k in x for k in ("builtin", "module", "numa")) and x["builtin"] > 0]
            pl = place.get((mode, v), {})
            nodes = next((t[2] for ts in pl.values() for t in ts), 0)
            if not full:
                print(f"{nodes:<6}{mode:<7}{v:>5}  no complete round")
                failed.append(f"numa {mode} v={v}: no complete round")
                continue
            mb = [x["module"] / x["builtin"] for x in full]
            nm = [x["numa"] / x["module"] for x in full]
            def loc(var):
                xs = [t[0] for t in pl.get(var, [])]
                return f"{100 * statistics.median(xs):.1f}%" if xs else "-"
            def unused(var):
                xs = [u for t in pl.get(var, []) for u in t[1]]
                if not xs:
                    return "-"
                return f"{statistics.median(u[0] for u in xs):.0f} ({statistics.median(u[1] for u in xs):.0f})"
            print(f"{nodes:<6}{mode:<7}{v:>5} {statistics.median(mb):>16.3f} [{spread(mb)}] {statistics.median(nm):>11.3f} [{spread(nm)}]"
                  f" {loc('builtin'):>18} {loc('module'):>6} {loc('numa'):>5} {unused('module'):>14} {unused('numa'):>9}")

if failed:
    print()
    print(f"FAIL: {len(failed)} runs or rows in the wrong state, left out: " + "; ".join(failed))
    sys.exit(1)
PY
