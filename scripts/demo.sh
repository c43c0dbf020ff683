#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# The main job (make demo): install the toolchain, build the bench kernel,
# the module and the selftests, boot the QEMU bench (2 NUMA nodes, nested
# KVM), load KVM and kvm_mmu_cache, run a VM and show what the module and
# KVM report. KMC_NODES=4 boots four nodes.
set -euo pipefail
. "$(dirname "$0")/env.sh"

"$KMC_ROOT/scripts/setup.sh"
out=$KMC_ROOT/out/demo
mkdir -p "$out"
"$KMC_ROOT/scripts/bench.sh" --flavor release --mode "${KMC_MODE:-tdp}" \
	--nodes "${KMC_NODES:-2}" --run demo --out "$out" >"$out.tests" 2>&1 || rc=$?
[ -f "$out/results.txt" ] || { cat "$out.tests"; die "the demo boot did not run; see $out.tests"; }
sed -n '/^@@@ BOOT/,/^@@@ DMESG/p' "$out/results.txt" | grep -v '^@@@ DMESG'
cat "$out.tests"
grep -q '^@@@ DEMO OK' "$out/results.txt" || { echo "demo: a step failed (see above)" >&2; exit 1; }
exit ${rc:-0}
