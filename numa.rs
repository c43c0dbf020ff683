// SPDX-License-Identifier: GPL-2.0

//! NUMA-aware page tables, for the VMs that enable
//! `KVM_CAP_NUMA_AWARE_PAGE_TABLE`: each page table a fault creates goes on
//! the node of the memory the fault maps.
//!
//! A vCPU of such a VM has one page-table cache per node it has faulted on,
//! created by the first topup for that node (which may sleep: never under
//! `mmu_lock`). A topup fills only the cache of its fault's node, which the
//! seam tells it once the pfn is resolved, and that fault's allocations take
//! from it. Roots and memory without a node go on the faulting thread's
//! node (its nearest node with memory), so that the vCPU holds at most one
//! capacity of unused page-table pages per node it faults on.
//! Pages come from `alloc_pages_node()` without `__GFP_THISNODE`, as KVM's
//! own caches would: a full node falls back to another one (counted, as
//! `fallbacks`). A fault that finds its node's cache empty (a miss) gets a
//! page on that node allocated without sleeping.
//!
//! Lock order: a node's cache is a cache like the vCPU's others (see the
//! crate root); the fault in progress holds at most one of them.

use crate::mmu_memory_cache::MmuMemoryCache;
use crate::provider::{
    atomic_kvm_page,
    nr_node_ids,
    KvmPage,
    MaySleep,
    NumaNodeId,
    VcpuCallback,
    VcpuId,
    VcpuLocal, //
};
use kernel::{
    prelude::*,
    sync::{
        atomic::Relaxed,
        SetOnce, //
    },
};

/// A vCPU's page-table caches, one per node, each created on first use.
///
/// # Invariants
///
/// No node's cache is held by the vCPU's callbacks but the one `held`
/// names, if any.
pub(crate) struct NodeCaches {
    /// Indexed by node id, `nr_node_ids` of them.
    caches: KVec<SetOnce<Pin<KBox<MmuMemoryCache>>>>,
    /// The node whose cache the fault in progress topped up: so that the
    /// fault path finds it without looking at every node.
    held: VcpuLocal<Option<usize>>,
}

impl NodeCaches {
    /// No cache yet, for the vCPU `owner`.
    pub(crate) fn new(owner: VcpuId) -> Result<Self> {
        let nodes = nr_node_ids();
        // Charged to the VMM's memory cgroup, as KVM's per-vCPU state is.
        let mut caches = KVec::with_capacity(nodes, GFP_KERNEL_ACCOUNT)?;
        for _ in 0..nodes {
            caches.push(SetOnce::new(), GFP_KERNEL_ACCOUNT)?;
        }
        // INVARIANT: no cache exists, so none is held.
        Ok(Self {
            caches,
            held: VcpuLocal::new(owner, None),
        })
    }

    /// The cache of node `index`, if created.
    fn cache(&self, index: usize) -> Option<&MmuMemoryCache> {
        self.caches.get(index)?.as_ref().map(|cache| &**cache)
    }

    /// The cache the owner's callback `cb` holds, if any.
    fn held<C>(&self, cb: &VcpuCallback<C>) -> Option<&MmuMemoryCache> {
        self.cache(self.held.get(cb)??)
    }

    /// Tops up the cache of `node`, created by `new_cache` first if need
    /// be, and holds it for the fault until [`Self::release`]. May sleep.
    pub(crate) fn topup(
        &self,
        cb: &VcpuCallback<MaySleep>,
        node: NumaNodeId,
        min: i32,
        new_cache: impl FnOnce() -> Result<Pin<KBox<MmuMemoryCache>>>,
    ) -> Result {
        // Another vCPU's callback (a WARN) creates and holds no cache here.
        let held = self.held.get(cb).ok_or(EINVAL)?;
        let slot = self.caches.get(node.index()).ok_or(EINVAL)?;
        let cache = match slot.as_ref() {
            Some(cache) => cache,
            None => {
                // Only this vCPU's topups create its caches, one at a time;
                // one that lost a race anyway finds the winner's cache, or
                // EAGAIN while the winner is still storing it.
                slot.populate(new_cache()?);
                slot.as_ref().ok_or(EAGAIN)?
            }
        };
        // A fault tops up one node: its pfn's. Should KVM ever top up twice,
        // the last node wins.
        if held.is_some_and(|held| held != node.index()) {
            self.release(cb);
        }
        // INVARIANT: recorded before the hold, which even a failed topup
        // may leave for `release()` to end.
        self.held.set(cb, Some(node.index()));
        cache.topup_and_hold(cb, min)
    }

    /// A page from the node cache the fault in progress topped up, or
    /// `None` if it topped up none. If that cache is empty (a miss), a page
    /// preferably on its node, filled with `init()`, allocated without
    /// sleeping: placement never fails the fault, and the page may come
    /// from another node (a fallback). Only `None` inside if there is no
    /// page at all.
    pub(crate) fn alloc<C>(
        &self,
        cb: &VcpuCallback<C>,
        init: impl FnOnce() -> u64,
    ) -> Option<Option<KvmPage>> {
        let cache = self.held(cb)?;
        Some(cache.alloc_held(cb).or_else(|| {
            let page = atomic_kvm_page(cache.node(), init())?;
            if cache.node().is_some_and(|node| node.index() != page.nid()) {
                cache.stats.fallbacks.add(1, Relaxed);
            }
            Some(page)
        }))
    }

    /// Ends the hold of [`Self::topup`], if any. Out of line: the release
    /// of a VM without the capability stays small.
    #[inline(never)]
    pub(crate) fn release(&self, cb: &VcpuCallback<MaySleep>) {
        if let Some(cache) = self.held(cb) {
            cache.release(cb);
        }
        // INVARIANT: the one cache that may have been held is released.
        self.held.set(cb, None);
    }

    /// Calls `f` on each cache created so far, with its node.
    pub(crate) fn for_each(&self, mut f: impl FnMut(usize, &MmuMemoryCache)) {
        for (node, slot) in self.caches.iter().enumerate() {
            if let Some(cache) = slot.as_ref() {
                f(node, cache);
            }
        }
    }
}
