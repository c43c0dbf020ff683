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
    VcpuCallback, //
};
use kernel::{
    prelude::*,
    sync::{
        atomic::Relaxed,
        SetOnce, //
    },
};

/// A vCPU's page-table caches, one per node, each created on first use.
pub(crate) struct NodeCaches {
    /// Indexed by node id, `nr_node_ids` of them.
    caches: KVec<SetOnce<Pin<KBox<MmuMemoryCache>>>>,
}

impl NodeCaches {
    /// No cache yet.
    pub(crate) fn new() -> Result<Self> {
        let nodes = nr_node_ids();
        let mut caches = KVec::with_capacity(nodes, GFP_KERNEL)?;
        for _ in 0..nodes {
            caches.push(SetOnce::new(), GFP_KERNEL)?;
        }
        Ok(Self { caches })
    }

    /// The caches created so far.
    fn created(&self) -> impl Iterator<Item = &MmuMemoryCache> {
        self.caches
            .iter()
            .filter_map(|slot| slot.as_ref().map(|cache| &**cache))
    }

    /// The cache the fault in progress topped up, if any: a fault holds at
    /// most one node's cache.
    fn held<C>(&self, cb: &VcpuCallback<C>) -> Option<&MmuMemoryCache> {
        self.created().find(|cache| cache.held_by(cb))
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
        let slot = self.caches.get(node.index()).ok_or(EINVAL)?;
        if slot.as_ref().is_none() {
            // Only this vCPU's topups create its caches, one at a time; one
            // that lost a race anyway finds the winner's cache, or EAGAIN
            // while the winner is still storing it.
            slot.populate(new_cache()?);
        }
        let cache = slot.as_ref().ok_or(EAGAIN)?;
        // A fault tops up one node: its pfn's. Should KVM ever top up twice,
        // the last node wins.
        if !cache.held_by(cb) {
            self.release(cb);
        }
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

    /// Ends the holds of [`Self::topup`]: of every node's cache, not only
    /// the last one topped up, so that none stays held whatever the order
    /// of the calls (a cache releases only for its owner's callbacks). Out
    /// of line: the release of a VM without the capability stays small.
    #[inline(never)]
    pub(crate) fn release(&self, cb: &VcpuCallback<MaySleep>) {
        for cache in self.created() {
            cache.release(cb);
        }
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
