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

use crate::mmu_memory_cache::MmuMemoryCache;
use crate::provider::KvmPage;
use kernel::{
    bindings::MAX_NUMNODES,
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
    /// Indexed by node id.
    caches: KVec<SetOnce<Pin<KBox<MmuMemoryCache>>>>,
    /// The node whose cache the fault in progress topped up, or -1. Only
    /// the vCPU's own callbacks, one at a time, write it; soundness rests on
    /// the caches' own holder checks, not on it.
    held: Atomic<i32>,
}

impl NodeCaches {
    /// No cache yet.
    pub(crate) fn new() -> Result<Self> {
        // CAST: `MAX_NUMNODES` is at most 1 << 10.
        let nodes = MAX_NUMNODES as usize;
        let mut caches = KVec::with_capacity(nodes, GFP_KERNEL)?;
        for _ in 0..nodes {
            caches.push(SetOnce::new(), GFP_KERNEL)?;
        }
        Ok(Self {
            caches,
            held: Atomic::new(-1),
        })
    }

    /// The cache of `node`, if it was created.
    fn get(&self, node: i32) -> Option<&MmuMemoryCache> {
        let slot = self.caches.get(usize::try_from(node).ok()?)?;
        slot.as_ref().map(|cache| &**cache)
    }

    /// Tops up the cache of `node`, created by `new_cache` first if need
    /// be, and holds it for the fault until [`Self::release`]. May sleep.
    pub(crate) fn topup(
        &self,
        node: i32,
        min: i32,
        new_cache: impl FnOnce() -> Result<Pin<KBox<MmuMemoryCache>>>,
    ) -> Result {
        let slot = usize::try_from(node)
            .ok()
            .and_then(|i| self.caches.get(i))
            .ok_or(EINVAL)?;
        if slot.as_ref().is_none() {
            // Only this vCPU's topups create its caches, one at a time:
            // `populate()` cannot lose a race.
            slot.populate(new_cache()?);
        }
        let cache = slot.as_ref().ok_or(ENOMEM)?;
        self.held.store(node, Relaxed);
        cache.topup_and_hold(min)
    }

    /// Whether the fault in progress topped up a node's cache.
    pub(crate) fn holds_one(&self) -> bool {
        self.held.load(Relaxed) >= 0
    }

    /// A page from the cache the fault in progress holds, if any.
    pub(crate) fn alloc(&self) -> Option<KvmPage> {
        self.get(self.held.load(Relaxed))?.alloc_held()
    }

    /// Ends the hold [`Self::topup`] took, if any.
    pub(crate) fn release(&self) {
        let node = self.held.xchg(-1, Relaxed);
        if let Some(cache) = self.get(node) {
            cache.release();
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
