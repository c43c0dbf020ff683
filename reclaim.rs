// SPDX-License-Identifier: GPL-2.0

//! Gives the caches' unused pages back under memory pressure: a NUMA-aware
//! shrinker, `kvm_mmu_cache` in `/sys/kernel/debug/shrinker/`.
//!
//! The count is a node's counter: its O(1) read, or its exact sum when the
//! read says none (pending per-CPU deltas), so that a node with pages is
//! never reported empty. A scan of a node walks the VMs, and each VM's
//! vCPUs, from a point that moves on at every scan of that node, so that no
//! VM is always drained first, and frees the node's pages from every cache
//! it can take until it has freed what reclaim asked for.
//! A vCPU's next fault tops its caches up again.
//!
//! Only unused pages are freed: page tables in use are KVM's, and a cache
//! whose vCPU is in a fault or a root load (in use from its topup to its
//! release) is skipped, so that a fault always finds the pages it topped up
//! for. The module keeps no cache for eager splits (their pages are
//! allocated when needed): there is nothing else to reclaim.
//!
//! Lock order: `Shared::vms`, then a VM's `vcpus`, then a cache's mutex, as
//! everywhere in the module, but a scan only ever trylocks them and skips
//! what it cannot take. Reclaim runs inside allocations, and the module
//! allocates under `vms` and `vcpus` (creating a VM or a vCPU): a scan that
//! waited for either could wait for itself. A vCPU waits for a cache's mutex
//! while a scan empties that cache (at most `capacity` frees), never longer.
//!
//! Not memcg-aware: a cgroup's own limit does not reach these pages (see
//! `Documentation/kvm_mmu_cache.rst`, "Shrinker").

use crate::{
    mmu_memory_cache::Reclaimed,
    shrinker::{
        self,
        CountObjects,
        ScanObjects,
        ShrinkControl,
        Shrinker, //
    },
    Shared, //
};
use kernel::{
    prelude::*,
    sync::{
        atomic::{
            Atomic,
            Relaxed, //
        },
        Arc,
    },
};

/// What the shrinker did on one node since load, for debugfs.
pub(crate) struct NodeReclaimStats {
    /// Scans of the node.
    pub(crate) scans: Atomic<u64>,
    /// Pages of the node looked at.
    pub(crate) scanned: Atomic<u64>,
    /// Pages of the node freed.
    pub(crate) freed: Atomic<u64>,
    /// Caches with pages looked at.
    pub(crate) visited: Atomic<u64>,
    /// Caches (of those visited) and lists skipped because a vCPU had them
    /// in use or another task had them locked.
    pub(crate) busy: Atomic<u64>,
    /// Where the next scan of the node starts in the VM list.
    cursor: Atomic<u64>,
}

impl NodeReclaimStats {
    /// One per node, all zero.
    pub(crate) fn per_node(nodes: usize) -> Result<KVec<Self>> {
        let mut stats = KVec::with_capacity(nodes, GFP_KERNEL)?;
        for _ in 0..nodes {
            stats.push(
                Self {
                    scans: Atomic::new(0),
                    scanned: Atomic::new(0),
                    freed: Atomic::new(0),
                    visited: Atomic::new(0),
                    busy: Atomic::new(0),
                    cursor: Atomic::new(0),
                },
                GFP_KERNEL,
            )?;
        }
        Ok(stats)
    }
}

/// The shrinker's data.
pub(crate) struct PageShrinker {
    pub(crate) shared: Arc<Shared>,
}

impl Shrinker for PageShrinker {
    fn count_objects(&self, sc: &ShrinkControl<'_>) -> CountObjects {
        self.shared.reclaimable(sc.nid())
    }

    fn scan_objects(&self, sc: &mut ShrinkControl<'_>) -> ScanObjects {
        let done = self.shared.reclaim(sc.nid(), sc.nr_to_scan());
        sc.set_nr_scanned(done.scanned);
        if done.freed == 0 {
            return ScanObjects::STOP;
        }
        // Pages freed outside the LRU count as reclaim's progress, so that
        // kswapd and direct reclaim stop once these do.
        shrinker::account_reclaimed_pages(done.freed);
        ScanObjects::freed(done.freed)
    }
}

impl Shared {
    /// The unused cached pages on `node`: the counter's O(1) read, but its
    /// exact sum when the read says none, so that a node with pages in the
    /// counter's per-CPU deltas only is never reported empty.
    pub(crate) fn reclaimable(&self, node: usize) -> CountObjects {
        let counters = &self.unused_pages;
        if node >= counters.len() {
            return CountObjects::EMPTY;
        }
        let read = counters.read_positive(node);
        let pages = if read > 0 { read } else { counters.sum(node) };
        match u64::try_from(pages) {
            Ok(0) => CountObjects::EMPTY,
            Ok(n) => CountObjects::new(n),
            // A negative count is an accounting bug.
            Err(_) => {
                kernel::warn_on!(true);
                CountObjects::EMPTY
            }
        }
    }

    /// Frees up to `budget` unused pages of `node` from the caches it can
    /// take without waiting.
    pub(crate) fn reclaim(&self, node: usize, budget: usize) -> Reclaimed {
        let mut done = Reclaimed::default();
        let Some(stats) = self.reclaim_stats.get(node) else {
            return done;
        };
        stats.scans.add(1, Relaxed);
        let (mut visited, mut busy) = (0u64, 0u64);
        // CAST: only the cursor's change matters, not its width.
        let start = stats.cursor.fetch_add(1, Relaxed) as usize;
        if let Some(vms) = self.vms.try_lock() {
            let nr_vms = vms.len();
            'vms: for k in 0..nr_vms {
                let vm = &vms[(start % nr_vms + k) % nr_vms];
                let Some(vcpus) = vm.vcpus.try_lock() else {
                    busy += 1;
                    continue;
                };
                // The first vCPU moves on once per round of the VMs.
                let nr_vcpus = vcpus.len();
                for j in 0..nr_vcpus {
                    let vcpu = &vcpus[(start / nr_vms % nr_vcpus.max(1) + j) % nr_vcpus].vcpu;
                    vcpu.for_each_cache(|_, cache| {
                        let left = budget - done.freed;
                        // Racy looks first: an empty cache or one in use is
                        // not worth its mutex, nor worth making its vCPU's
                        // next topup wait for it.
                        if left == 0 || cache.nr_free_racy() == 0 {
                            return;
                        }
                        visited += 1;
                        // The `reclaim_in_use` mutant does not keep off.
                        let r = if cache.in_use() && !cfg!(kmc_mutant = "reclaim_in_use") {
                            None
                        } else {
                            cache.reclaim(node, left)
                        };
                        match r {
                            Some(r) => {
                                done.scanned += r.scanned;
                                done.freed += r.freed;
                            }
                            None => busy += 1,
                        }
                    });
                    if done.freed >= budget {
                        break 'vms;
                    }
                }
            }
        } else {
            busy += 1;
        }
        // CAST: page counts of one scan fit in `u64`.
        stats.scanned.add(done.scanned as u64, Relaxed);
        stats.freed.add(done.freed as u64, Relaxed);
        stats.visited.add(visited, Relaxed);
        stats.busy.add(busy, Relaxed);
        done
    }
}
