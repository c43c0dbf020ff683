#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# Runs an upstream KVM selftest with kvm_mmu_cache loaded and checks that
# the module really served it: kmc_bound.sh [--split] COMMAND...
#
# From debugfs "stats" (counts since load) before and after the test: at
# least one VM was bound and took pages from the module, no cache missed,
# and with --split the TDP MMU's eager splits took pages from the module.
# Afterwards every VM is gone: unused_pages and recount are 0 and KVM's
# SecPageTables is back to its value before the test.
. /kmc/lib.sh
D=/sys/kernel/debug/kvm_mmu_cache
want_split=0
[ "$1" = --split ] && { want_split=1; shift; }
fail() { echo "FAIL (kmc_bound): $*"; exit 1; }
stat_of() { awk -v k="$1" '{ for (i = 1; i < NF; i++) if ($i == k) print $(i + 1) }' $D/stats; }

kmc_loaded || fail "kvm_mmu_cache is not loaded"
vms0=$(stat_of vms_bound) allocs0=$(stat_of allocs)
misses0=$(stat_of misses) split0=$(stat_of split_pages)
kb0=$(sec_page_tables_kb)
"$@"
rc=$?
[ $rc -eq 0 ] || exit $rc
vms=$(($(stat_of vms_bound) - vms0))
allocs=$(($(stat_of allocs) - allocs0))
misses=$(($(stat_of misses) - misses0))
split=$(($(stat_of split_pages) - split0))
echo "kmc_bound: $vms VMs bound, $allocs pages from the module, $misses misses, $split eager-split pages"
[ $vms -gt 0 ] || fail "no VM was bound to the module"
[ $allocs -gt 0 ] || fail "no page came from the module"
[ $misses -eq 0 ] || fail "$misses allocations missed the module's caches"
[ $want_split = 0 ] || [ $split -gt 0 ] || fail "no eager-split page came from the module"
[ "$(cat $D/unused_pages)" = 0 ] || fail "unused_pages $(cat $D/unused_pages) after the test"
[ "$(cat $D/recount)" = 0 ] || fail "recount $(cat $D/recount) after the test"
wait_sec_page_tables "$kb0" || fail "SecPageTables $(sec_page_tables_kb) kB after the test, $kb0 kB before"
exit 0
