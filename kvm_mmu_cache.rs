// SPDX-License-Identifier: GPL-2.0

//! Page-table page caches for the x86 KVM MMU.
//!
//! Loaded next to KVM, this module supplies the pages KVM's MMU builds its
//! page tables from. Its state is visible under
//! `/sys/kernel/debug/kvm_mmu_cache/`.

use kernel::{
    debugfs,
    prelude::*, //
};

module! {
    type: KvmMmuCache,
    name: "kvm_mmu_cache",
    authors: ["kvm_mmu_cache developers"],
    description: "Reclaimable, NUMA-aware page-table page caches for the KVM MMU",
    license: "GPL",
}

/// The module's state, alive from `insmod` to `rmmod`.
struct KvmMmuCache {
    /// `/sys/kernel/debug/kvm_mmu_cache/`, removed when dropped.
    _debugfs: debugfs::Dir,
}

impl kernel::Module for KvmMmuCache {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let debugfs = debugfs::Dir::new(c"kvm_mmu_cache");
        pr_info!("loaded\n");
        Ok(Self { _debugfs: debugfs })
    }
}

impl Drop for KvmMmuCache {
    fn drop(&mut self) {
        pr_info!("unloaded\n");
    }
}
