// SPDX-License-Identifier: GPL-2.0

//! NUMA-aware page tables, for the VMs that enable
//! `KVM_CAP_NUMA_AWARE_PAGE_TABLE`: each page table a fault creates goes on
//! the node of the memory the fault maps.
//!
//! A vCPU of such a VM has one page-table cache per node it has faulted on,
//! created by the first topup for that node (which may sleep: never under
//! `mmu_lock`). A topup fills only the cache of its fault's node, which the
//! seam tells it once the pfn is resolved, and that fault's allocations take
//! from it. Roots and memory without a node use the vCPU's default cache,
//! which allocates as KVM does (the task's memory policy: local by default).
//! Pages come from `alloc_pages_node()` without `__GFP_THISNODE`, as KVM's
//! own caches would: a full node falls back to another one.
//!
//! Lock order: a node's cache is a cache like the vCPU's others (see the
//! crate root); the fault in progress holds at most one of them.

use crate::mmu_memory_cache::{
    MmuMemoryCache,
    VcpuCallback, //
};
use crate::provider::{
    nr_node_ids,
    KvmPage,
    NumaNodeId, //
};
use kernel::{
    prelude::*,
    sync::{
        atomic::{
            Atomic,
            Relaxed, //
        },
        SetOnce,
    },
};

/// A vCPU's page-table caches, one per node, each created on first use.
pub(crate) struct NodeCaches {
    /// Indexed by node id, `nr_node_ids` of them.
    caches: KVec<SetOnce<Pin<KBox<MmuMemoryCache>>>>,
    /// The node whose cache the fault in progress topped up, or -1: where
    /// its allocations go. Only the vCPU's own callbacks, one at a time
    /// (under the vCPU's mutex), write it; soundness rests on the caches'
    /// own holder checks, not on it.
    held: Atomic<i32>,
}

impl NodeCaches {
    /// No cache yet.
    pub(crate) fn new() -> Result<Self> {
        let nodes = nr_node_ids();
        let mut caches = KVec::with_capacity(nodes, GFP_KERNEL)?;
        for _ in 0..nodes {
            caches.push(SetOnce::new(), GFP_KERNEL)?;
        }
        Ok(Self {
            caches,
            held: Atomic::new(-1),
        })
    }

    /// The cache of node `index`, if it was created.
    fn get(&self, index: i32) -> Option<&MmuMemoryCache> {
        let slot = self.caches.get(usize::try_from(index).ok()?)?;
        slot.as_ref().map(|cache| &**cache)
    }

    /// Tops up the cache of `node`, created by `new_cache` first if need
    /// be, and holds it for the fault until [`Self::release`]. May sleep.
    pub(crate) fn topup(
        &self,
        cb: &VcpuCallback,
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
        self.held.store(node.id(), Relaxed);
        cache.topup_and_hold(cb, min)
    }

    /// Whether the fault in progress topped up a node's cache.
    pub(crate) fn holds_one(&self) -> bool {
        self.held.load(Relaxed) >= 0
    }

    /// A page from the cache the fault in progress topped up, if any.
    pub(crate) fn alloc(&self, cb: &VcpuCallback) -> Option<KvmPage> {
        self.get(self.held.load(Relaxed))?.alloc_held(cb)
    }

    /// Ends the holds of [`Self::topup`]: of every node's cache, not only
    /// the last one topped up, so that none stays held whatever the order
    /// of the calls (a cache only releases its own holder's hold).
    pub(crate) fn release(&self, cb: &VcpuCallback) {
        self.held.store(-1, Relaxed);
        for slot in self.caches.iter() {
            if let Some(cache) = slot.as_ref() {
                cache.release(cb);
            }
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
