// SPDX-License-Identifier: GPL-2.0

//! What `/sys/kernel/debug/kvm_mmu_cache/` shows: the module-wide files and
//! the per-vCPU file (see `Documentation/kvm_mmu_cache.rst`).
//!
//! Lock order: `Shared::vms`, then a VM's `vcpus` (`vm_list`); no cache lock
//! but through [`Shared::recount`], which takes them with no list locked.

use super::{
    debugfs,
    MmuMemoryCache,
    Shared,
    VcpuState, //
};
use kernel::{
    prelude::*,
    sync::{
        atomic::Relaxed,
        Arc, //
    },
};

/// A module-wide debugfs file.
pub(crate) type GlobalFile = debugfs::File<Arc<Shared>>;

/// The module-wide files: `unused_pages`, `recount`, `vm_list`, `stats`
/// and `nodes`, allocated by [`GlobalFiles::new`] and created in a
/// directory by [`GlobalFiles::publish`], which cannot fail.
pub(crate) struct GlobalFiles {
    data: KVec<(&'static CStr, debugfs::FileData<Arc<Shared>>)>,
    // Room for every file, so that publishing allocates nothing.
    files: KVec<GlobalFile>,
}

impl GlobalFiles {
    pub(crate) fn new(shared: &Arc<Shared>) -> Result<Self> {
        const FILES: [(&CStr, debugfs::ShowFn<Arc<Shared>>); 5] = [
            (c"unused_pages", show_unused_pages),
            (c"recount", show_recount),
            (c"vm_list", show_vms),
            (c"stats", show_stats),
            (c"nodes", show_nodes),
        ];
        let mut data = KVec::with_capacity(FILES.len(), GFP_KERNEL)?;
        for (name, show) in FILES {
            data.push(
                (name, debugfs::FileData::new(shared.clone(), show)?),
                GFP_KERNEL,
            )?;
        }
        Ok(Self {
            data,
            files: KVec::with_capacity(FILES.len(), GFP_KERNEL)?,
        })
    }

    pub(crate) fn publish(mut self, dir: &debugfs::Dir) -> KVec<GlobalFile> {
        for (name, data) in self.data.drain_all() {
            // Never an error: `files` has room for every file (on one, the
            // file would be removed again).
            let _ = self.files.push_within_capacity(dir.publish(name, data));
        }
        self.files
    }
}

fn show_cache(
    f: &mut core::fmt::Formatter<'_>,
    name: impl core::fmt::Display,
    c: &MmuMemoryCache,
) -> core::fmt::Result {
    writeln!(
        f,
        "{name}: free {} capacity {} held {} topups {} allocs {} misses {} fallbacks {}",
        c.nr_free_racy(),
        c.capacity(),
        u8::from(c.in_use()),
        c.stats.topups.load(Relaxed),
        c.stats.allocs.load(Relaxed),
        c.stats.misses.load(Relaxed),
        c.stats.fallbacks.load(Relaxed),
    )
}

/// A vCPU's file: one line per cache, its nodes' last.
pub(crate) fn show_vcpu(
    vcpu: &Arc<VcpuState>,
    f: &mut core::fmt::Formatter<'_>,
) -> core::fmt::Result {
    show_cache(f, "page_table", &vcpu.page_table)?;
    show_cache(f, "shadowed_info", &vcpu.shadowed_info)?;
    let mut result = Ok(());
    if let Some(nodes) = &vcpu.nodes {
        nodes.for_each(|node, cache| {
            if result.is_ok() {
                result = show_cache(f, fmt!("node{node}_page_table"), cache);
            }
        });
    }
    result
}

fn show_unused_pages(shared: &Arc<Shared>, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
    writeln!(f, "{}", shared.unused_pages.sum_all())
}

fn show_recount(shared: &Arc<Shared>, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
    let total = shared.recount().map_err(|_| core::fmt::Error)?;
    writeln!(f, "{total}")
}

/// Shows the module-wide statistics (`stats`).
fn show_stats(shared: &Arc<Shared>, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
    let (vms_bound, allocs, misses, split_pages) = shared.totals();
    writeln!(
        f,
        "vms_bound {vms_bound} allocs {allocs} misses {misses} split_pages {split_pages}"
    )
}

/// Per node: the unused cached pages on it (exact) and what the shrinker
/// did there (`nodes`).
fn show_nodes(shared: &Arc<Shared>, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
    for (node, stats) in shared.reclaim_stats.iter().enumerate() {
        writeln!(
            f,
            "node{node} unused {} scans {} scanned {} freed {} visited {} busy {}",
            shared.unused_pages.sum(node),
            stats.scans.load(Relaxed),
            stats.scanned.load(Relaxed),
            stats.freed.load(Relaxed),
            stats.visited.load(Relaxed),
            stats.busy.load(Relaxed),
        )?;
    }
    Ok(())
}

fn show_vms(shared: &Arc<Shared>, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
    for vm in shared.vms.lock().iter() {
        writeln!(
            f,
            "vm {} pid {} vcpus {} numa_aware {} split_pages {}",
            vm.id,
            vm.pid,
            vm.vcpus.lock().len(),
            u8::from(vm.numa_aware.load(Relaxed)),
            vm.split_pages.load(Relaxed),
        )?;
    }
    Ok(())
}
