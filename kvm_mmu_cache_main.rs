// SPDX-License-Identifier: GPL-2.0

//! Page-table page caches for the x86 KVM MMU.
//!
//! Loaded next to KVM (with the seam in `patches/` applied), this module
//! supplies the pages KVM's MMU builds its page tables from: each VM created
//! while it is loaded gets, per vCPU, a page-table cache and a shadowed-info
//! cache, each a [`MmuMemoryCache`] whose unused pages are counted exactly in
//! one [`PercpuCounters`] per node, and its eager splits' page tables. A
//! shrinker (`reclaim.rs`) gives unused pages back under memory pressure.
//! Counts are visible under `/sys/kernel/debug/kvm_mmu_cache/` (see
//! `Documentation/kvm_mmu_cache.rst`).
//!
//! Lock order: `Shared::vms`, then a VM's `vcpus`, then its `dir`. A
//! cache's mutex comes last, and only the shrinker holds it with another of
//! the module's locks (trylocking all of them): the debugfs recount copies
//! the lists first. A vCPU leaving `vcpus` folds
//! its statistics into its VM's `retired` under `vcpus`, a VM leaving `vms`
//! its own into `Shared::retired` under `vms`, so that [`Shared::totals`] is
//! exact. The fault path takes no lock of the module's but, briefly, a
//! cache's mutex to wait for a task that is reading or emptying that cache.
//! The shrinker takes the same locks in the same order, but only trylocks.
//! A vCPU's debugfs file is removed under `vcpus`, which waits for the
//! file's shows in progress: `show_vcpu` must take no lock.

// Every `unsafe` block is in `rust/` (allowed per module below), behind a
// safe API. The one exception is the link sections that
// `ranged_u32_param!` (`rust/module_param.rs`) expands here, which allow
// themselves: a static in `__param` is what the lint objects to.
#![deny(unsafe_code)]
// The `no_bind` mutant leaves the registration code unused.
#![cfg_attr(kmc_mutant = "no_bind", allow(dead_code, unused))]

#[allow(unsafe_code)]
#[path = "rust/bindings.rs"]
mod bindings;
#[allow(unsafe_code)]
#[path = "rust/debugfs.rs"]
mod debugfs;
mod debugfs_files;
#[allow(unsafe_code)]
#[path = "rust/mmu_memory_cache.rs"]
mod mmu_memory_cache;
#[allow(unsafe_code)]
#[path = "rust/module_param.rs"]
mod module_param;
mod numa;
#[allow(unsafe_code)]
#[path = "rust/percpu_counter.rs"]
mod percpu_counter;
#[allow(unsafe_code)]
#[path = "rust/provider.rs"]
mod provider;
mod reclaim;
#[allow(unsafe_code)]
#[path = "rust/shrinker.rs"]
mod shrinker;

use kernel::{
    new_mutex,
    prelude::*,
    str::CString,
    sync::{
        atomic::{
            Atomic,
            Relaxed, //
        },
        static_lock_class,
        Arc,
        LockClassKey,
        Mutex, //
    }, //
};
use mmu_memory_cache::MmuMemoryCache;
use numa::NodeCaches;
use percpu_counter::PercpuCounters;
use provider::{
    atomic_kvm_page,
    current_node,
    new_kvm_page,
    nr_node_ids,
    CacheType,
    EnableCap,
    Gfp,
    Kvm,
    KvmPage,
    MaySleep,
    NoSleep,
    Node,
    NumaNodeId,
    Provider,
    RawNode,
    Registration,
    Vcpu,
    VcpuCallback,
    VcpuId, //
};
use reclaim::{
    NodeReclaimStats,
    PageShrinker, //
};

module! {
    type: KvmMmuCache,
    name: "kvm_mmu_cache",
    authors: ["kvm_mmu_cache developers"],
    description: "Counted, NUMA-aware page-table page caches for the KVM MMU",
    license: "GPL",
}

/// The minimum KVM asks a topup for: one page per level of the deepest
/// page table (`PT64_ROOT_MAX_LEVEL`).
const MIN_CAPACITY: u32 = 5;
/// KVM's own cache size (`KVM_ARCH_NR_OBJS_PER_MEMORY_CACHE`).
const MAX_CAPACITY: u32 = 40;

module_param::ranged_u32_param!(
    CAPACITY,
    "capacity",
    MIN_CAPACITY,
    MAX_CAPACITY,
    MIN_CAPACITY,
    "Pages each cache holds at most (5..40, default 5: the minimum KVM tops up to)"
);

/// State shared by every VM bound to the module.
#[pin_data]
struct Shared {
    /// Unused pages in all caches, exactly, one counter per node (see
    /// [`MmuMemoryCache`]).
    unused_pages: Arc<PercpuCounters>,
    /// What the shrinker did, per node.
    reclaim_stats: KVec<NodeReclaimStats>,
    /// Pages each cache holds at most.
    capacity: i32,
    /// Live VMs, for the recount and debugfs.
    #[pin]
    vms: Mutex<KVec<Arc<VmState>>>,
    /// Numbers VMs in creation order.
    next_vm_id: Atomic<u64>,
    /// Statistics of destroyed VMs, folded in under `vms`.
    retired: Totals,
    /// `/sys/kernel/debug/kvm_mmu_cache/vms/`.
    vms_dir: debugfs::Dir,
}

/// A VM bound to the module.
#[pin_data]
struct VmState {
    /// The module's number for the VM, in creation order.
    id: u64,
    /// The creating task's thread id (KVM's `task_pid_nr()`).
    pid: i32,
    /// Numbers the VM's vCPUs in creation order.
    next_vcpu_index: Atomic<u32>,
    /// What KVM's page-table pages hold in every 64-bit word when new.
    pte_init: u64,
    /// Whether the VM enabled `KVM_CAP_NUMA_AWARE_PAGE_TABLE`: set before
    /// its first vCPU (KVM enforces that), read when each is created.
    numa_aware: Atomic<bool>,
    /// Pages handed to eager splits.
    split_pages: Atomic<u64>,
    /// Statistics of destroyed vCPUs, folded in under `vcpus`.
    retired: Totals,
    /// The VM's vCPUs with their debugfs files.
    #[pin]
    vcpus: Mutex<KVec<VcpuEntry>>,
    /// `vms/<name>/`: named after KVM's own `<pid>-<fd>` directory for the
    /// VM, created at the first `vcpu_init()` (KVM's exists by then) and
    /// removed at `vm_destroy()`.
    #[pin]
    dir: Mutex<Option<debugfs::Dir>>,
    /// The module's shared state.
    shared: Arc<Shared>,
}

/// Module-wide statistics since load, for `stats` in debugfs.
struct Totals {
    /// VMs that were bound.
    vms: Atomic<u64>,
    /// Cached pages handed to KVM.
    allocs: Atomic<u64>,
    /// Pages KVM needed that a cache could not supply.
    misses: Atomic<u64>,
    /// Pages handed to eager splits.
    split_pages: Atomic<u64>,
}

impl Totals {
    /// All zero.
    const fn new() -> Self {
        Self {
            vms: Atomic::new(0),
            allocs: Atomic::new(0),
            misses: Atomic::new(0),
            split_pages: Atomic::new(0),
        }
    }

    /// Adds the statistics of `c`.
    fn add_cache(&self, c: &MmuMemoryCache) {
        self.allocs.add(c.stats.allocs.load(Relaxed), Relaxed);
        self.misses.add(c.stats.misses.load(Relaxed), Relaxed);
    }

    /// Adds what `vm` holds itself: its split pages and its destroyed
    /// vCPUs (not its live ones, nor the VM count).
    fn add_vm(&self, vm: &VmState) {
        self.split_pages.add(vm.split_pages.load(Relaxed), Relaxed);
        self.add(&vm.retired);
    }

    /// Adds `other`, but for its VM count.
    fn add(&self, other: &Totals) {
        self.allocs.add(other.allocs.load(Relaxed), Relaxed);
        self.misses.add(other.misses.load(Relaxed), Relaxed);
        self.split_pages
            .add(other.split_pages.load(Relaxed), Relaxed);
    }
}

/// A vCPU and the debugfs file that shows it.
struct VcpuEntry {
    vcpu: Arc<VcpuState>,
    _file: debugfs::File<Arc<VcpuState>>,
}

/// A vCPU's caches.
#[pin_data]
struct VcpuState {
    /// The vCPU's creation index within its VM.
    index: u32,
    /// The VM; the VM's list of vCPUs refers back until `vcpu_destroy()`.
    vm: Arc<VmState>,
    #[pin]
    page_table: MmuMemoryCache,
    #[pin]
    shadowed_info: MmuMemoryCache,
    /// Per-node page-table caches, if the VM is NUMA-aware: they take the
    /// faults whose memory has a node, `page_table` the rest.
    nodes: Option<NodeCaches>,
}

impl VcpuState {
    fn cache(&self, ty: CacheType) -> &MmuMemoryCache {
        match ty {
            CacheType::PageTable => &self.page_table,
            CacheType::ShadowedInfo => &self.shadowed_info,
        }
    }

    /// Tops up the page-table cache of `node` in `nodes`, creating it
    /// first if need be.
    #[inline]
    fn topup_node(
        &self,
        cb: &VcpuCallback<MaySleep>,
        nodes: &NodeCaches,
        node: NumaNodeId,
        min: i32,
    ) -> Result {
        nodes.topup(cb, node, min, || {
            KBox::pin_init(
                self.vm.shared.new_cache(
                    cb.vcpu(),
                    Some(self.vm.pte_init),
                    Some(node),
                    c"kvm_mmu_cache:node_page_table",
                    static_lock_class!(),
                )?,
                GFP_KERNEL_ACCOUNT,
            )
        })
    }

    /// Calls `f` on every cache of the vCPU, with its node if it is a
    /// node's.
    fn for_each_cache(&self, mut f: impl FnMut(Option<usize>, &MmuMemoryCache)) {
        f(None, &self.page_table);
        f(None, &self.shadowed_info);
        if let Some(nodes) = &self.nodes {
            nodes.for_each(|node, cache| f(Some(node), cache));
        }
    }
}

/// The provider registered with KVM.
struct CacheProvider {
    shared: Arc<Shared>,
}

#[vtable]
impl Provider for CacheProvider {
    type Vm = VmState;
    type Vcpu = VcpuState;

    fn vm_init(&self, _kvm: &Kvm, pte_init: u64) -> Result<Arc<VmState>> {
        let shared = &self.shared;
        let id = shared.next_vm_id.fetch_add(1, Relaxed);
        let pid = kernel::current!().pid();
        let vm = Arc::pin_init(
            try_pin_init!(VmState {
                id,
                pid,
                next_vcpu_index: Atomic::new(0),
                pte_init,
                numa_aware: Atomic::new(false),
                split_pages: Atomic::new(0),
                retired: Totals::new(),
                vcpus <- new_mutex!(KVec::new()),
                dir <- new_mutex!(None),
                shared: shared.clone(),
            }),
            GFP_KERNEL_ACCOUNT,
        )?;
        shared.vms.lock().push(vm.clone(), GFP_KERNEL)?;
        Ok(vm)
    }

    fn vm_destroy(&self, vm: Arc<VmState>) {
        {
            let mut vms = self.shared.vms.lock();
            let retired = &self.shared.retired;
            retired.vms.add(1, Relaxed);
            retired.add_vm(&vm);
            vms.retain(|v| !Arc::ptr_eq(v, &vm));
        }
        // The directory goes now, not with the last reference (a recount in
        // progress may hold one): the next VM may get the same name at once.
        // Two statements: the guard goes at the `;`, so that the removal
        // (which waits for shows) runs with no lock held.
        let dir = vm.dir.lock().take();
        drop(dir);
    }

    fn vcpu_init(&self, vm: &Arc<VmState>, kvm_vcpu: &Vcpu, id: VcpuId) -> Result<Arc<VcpuState>> {
        let shared = &vm.shared;
        let nodes = if vm.numa_aware.load(Relaxed) {
            Some(NodeCaches::new(id)?)
        } else {
            None
        };
        let mut vcpus = vm.vcpus.lock();
        let index = vm.next_vcpu_index.fetch_add(1, Relaxed);
        let vcpu = Arc::pin_init(
            // The vCPU `id` owns its caches: only its callbacks use them.
            try_pin_init!(VcpuState {
                index,
                vm: vm.clone(),
                page_table <- shared.new_cache(
                    id,
                    Some(vm.pte_init),
                    None,
                    c"kvm_mmu_cache:page_table",
                    static_lock_class!(),
                )?,
                // KVM writes a shadowed-info array before reading it.
                shadowed_info <- shared.new_cache(
                    id,
                    None,
                    None,
                    c"kvm_mmu_cache:shadowed_info",
                    static_lock_class!(),
                )?,
                nodes,
            }),
            GFP_KERNEL_ACCOUNT,
        )?;
        let name = CString::try_from_fmt(fmt!("vcpu{index}"))?;
        let mut dir = vm.dir.lock();
        let vm_dir = match dir.take() {
            Some(vm_dir) => vm_dir,
            // Named after KVM's own directory for the VM, if there is one
            // and the name is free: KVM removes its directory before the
            // VM's `vm_destroy()` removes ours, and a new VM may reuse the
            // fd in between.
            None => match kvm_vcpu
                .kvm_debugfs_name()
                .map(|kvm_name| shared.vms_dir.subdir(kvm_name))
                .transpose()?
                .filter(debugfs::Dir::exists)
            {
                Some(vm_dir) => vm_dir,
                None => {
                    let own_name = CString::try_from_fmt(fmt!("{}-vm{}", vm.pid, vm.id))?;
                    shared.vms_dir.subdir(&own_name)?
                }
            },
        };
        let file = vm_dir.show_file(&name, vcpu.clone(), debugfs_files::show_vcpu);
        *dir = Some(vm_dir);
        let file = file?;
        drop(dir);
        vcpus.push(
            VcpuEntry {
                vcpu: vcpu.clone(),
                _file: file,
            },
            GFP_KERNEL,
        )?;
        Ok(vcpu)
    }

    fn vcpu_destroy(&self, vcpu: Arc<VcpuState>) {
        let mut vcpus = vcpu.vm.vcpus.lock();
        vcpu.for_each_cache(|_, cache| vcpu.vm.retired.add_cache(cache));
        vcpus.retain(|e| !Arc::ptr_eq(&e.vcpu, &vcpu));
    }

    // The three fault-path methods are inlined into the callbacks KVM calls
    // (`rust/provider.rs`); a NUMA-aware release stays out of line.
    #[inline]
    fn topup(
        &self,
        cb: &VcpuCallback<MaySleep>,
        vcpu: &VcpuState,
        nid: RawNode,
        min: i32,
        shadowed_info: bool,
    ) -> Result {
        match &vcpu.nodes {
            // Roots and memory without a node go on the faulting thread's
            // node: a NUMA-aware vCPU's page tables all come from its node
            // caches, at most one capacity per node in use.
            Some(nodes) => {
                // Mutants: every fault's tables on the thread's node; roots
                // in the default cache.
                let nid = nid.node().filter(|_| !cfg!(kmc_mutant = "numa_any_node"));
                let node = match nid {
                    None if !cfg!(kmc_mutant = "numa_roots_default") => current_node(),
                    nid => nid,
                };
                match node {
                    Some(node) => vcpu.topup_node(cb, nodes, node, min)?,
                    None => vcpu.page_table.topup_and_hold(cb, min)?,
                }
            }
            None => vcpu.page_table.topup_and_hold(cb, min)?,
        }
        if shadowed_info {
            vcpu.shadowed_info.topup_and_hold(cb, min)?;
        }
        Ok(())
    }

    #[inline]
    fn alloc(
        &self,
        cb: &VcpuCallback<NoSleep>,
        vcpu: &VcpuState,
        ty: CacheType,
    ) -> Option<KvmPage> {
        let init = || match ty {
            CacheType::PageTable => vcpu.vm.pte_init,
            CacheType::ShadowedInfo => 0,
        };
        if let (CacheType::PageTable, Some(nodes)) = (ty, &vcpu.nodes) {
            if let Some(page) = nodes.alloc(cb, init) {
                return page;
            }
        }
        vcpu.cache(ty)
            .alloc_held(cb)
            .or_else(|| atomic_kvm_page(None, init()))
    }

    #[inline]
    fn release(&self, cb: &VcpuCallback<MaySleep>, vcpu: &VcpuState) {
        for ty in CacheType::ALL {
            vcpu.cache(ty).release(cb);
        }
        if let Some(nodes) = &vcpu.nodes {
            nodes.release(cb);
        }
    }

    fn split_page(&self, vm: &VmState, nid: Node, gfp: Gfp) -> Option<KvmPage> {
        // A NUMA-aware VM's split tables go on the node of the huge page
        // they replace, allocated as the caller asks: the TDP MMU may sleep,
        // the shadow MMU (under mmu_lock) may not, and takes a page from
        // KVM's own split cache if there is none at once.
        let node = nid.filter(|_| vm.numa_aware.load(Relaxed));
        let page = new_kvm_page(gfp, node, vm.pte_init)?;
        vm.split_pages.add(1, Relaxed);
        Some(page)
    }

    fn check_extension(&self, _vm: Option<&VmState>, ext: c_long) -> c_int {
        c_int::from(u32::try_from(ext) == Ok(bindings::KVM_CAP_NUMA_AWARE_PAGE_TABLE))
    }

    fn enable_cap(&self, vm: &VmState, cap: &EnableCap) -> Result {
        // `args[0]`: 1 on, 0 off; nothing else is defined.
        let on = match cap.args {
            [on @ (0 | 1), 0, 0, 0] if cap.cap == bindings::KVM_CAP_NUMA_AWARE_PAGE_TABLE => on,
            _ => return Err(EINVAL),
        };
        // Enabling twice is allowed, and idempotent.
        vm.numa_aware.store(on == 1, Relaxed);
        Ok(())
    }
}

impl Shared {
    /// A cache of at most `capacity` pages for the vCPU `owner`, counted in
    /// `unused_pages`, each page holding `init` in every
    /// 64-bit word (`None`: anything), from `node` if given. Each kind of
    /// cache passes its own lock class.
    fn new_cache(
        &self,
        owner: VcpuId,
        init: Option<u64>,
        node: Node,
        name: &'static CStr,
        key: Pin<&'static LockClassKey>,
    ) -> Result<impl PinInit<MmuMemoryCache, Error>> {
        MmuMemoryCache::new(
            owner,
            init,
            node,
            self.capacity,
            self.unused_pages.clone(),
            name,
            key,
        )
    }

    /// The unused cached pages, counted one cache at a time under each
    /// cache's lock: what `unused_pages` must equal whenever vCPUs are quiet.
    /// A cache whose vCPU is in a fault, or that the shrinker has locked
    /// (its count is changing), counts what it last recorded: a recount
    /// never waits for a cache's lock.
    ///
    /// The lists are copied and their locks dropped before any cache is
    /// locked, so that a recount never holds up VM or vCPU creation.
    fn recount(&self) -> Result<i64> {
        let count = |cache: &MmuMemoryCache| {
            i64::from(cache.nr_free_idle().unwrap_or_else(|| cache.nr_free_racy()))
        };
        let mut total = 0i64;
        // Each copy in a `let` of its own: a lock guard made in a `for`
        // loop's head would live until the end of the loop.
        let vms = snapshot(&self.vms.lock(), Arc::clone)?;
        for vm in vms {
            let vcpus = snapshot(&vm.vcpus.lock(), |e| e.vcpu.clone())?;
            for vcpu in vcpus {
                vcpu.for_each_cache(|_, cache| total += count(cache));
            }
        }
        Ok(total)
    }

    /// Statistics since load, exact whenever no vCPU is in a fault and no
    /// eager split runs: `(vms_bound, allocs, misses, split_pages)`.
    fn totals(&self) -> (u64, u64, u64, u64) {
        let vms = self.vms.lock();
        let sum = Totals::new();
        sum.add(&self.retired);
        for vm in vms.iter() {
            // Under `vcpus`, so that no vCPU moves into `retired` meanwhile.
            let vcpus = vm.vcpus.lock();
            sum.add_vm(vm);
            for entry in vcpus.iter() {
                entry.vcpu.for_each_cache(|_, cache| sum.add_cache(cache));
            }
        }
        // CAST: a `usize` count of VMs always fits in `u64`.
        let vms_bound = self.retired.vms.load(Relaxed) + vms.len() as u64;
        let (allocs, misses) = (sum.allocs.load(Relaxed), sum.misses.load(Relaxed));
        let split_pages = sum.split_pages.load(Relaxed);
        (vms_bound, allocs, misses, split_pages)
    }
}

/// A copy of `list`, mapped by `f`, taken while the caller holds its lock.
fn snapshot<T, U>(list: &KVec<T>, f: impl Fn(&T) -> U) -> Result<KVec<U>> {
    let mut copy = KVec::with_capacity(list.len(), GFP_KERNEL)?;
    for item in list.iter() {
        copy.push(f(item), GFP_KERNEL)?;
    }
    Ok(copy)
}

/// The module's state, alive from `insmod` to `rmmod`.
///
/// Fields drop in declaration order: the registration first, so that no VM
/// can bind any more (none is bound: each holds a reference on the module),
/// then the shrinker (its drop waits for its callbacks), then the debugfs
/// files, then the shared state, then the directory.
#[pin_data]
struct KvmMmuCache {
    #[cfg(not(kmc_mutant = "no_bind"))]
    #[pin]
    _registration: Registration<CacheProvider>,
    #[pin]
    _shrinker: shrinker::Registration<PageShrinker>,
    _files: KVec<debugfs_files::GlobalFile>,
    _shared: Arc<Shared>,
    _debugfs: debugfs::Dir,
}

impl kernel::InPlaceModule for KvmMmuCache {
    fn init(module: &'static ThisModule) -> impl PinInit<Self, Error> {
        pin_init::pin_init_scope(move || Self::prepare(module))
    }
}

impl KvmMmuCache {
    /// What the module's initialiser needs before its fields: the debugfs
    /// directory, the shared state and the global files, not yet public.
    fn prepare(module: &'static ThisModule) -> Result<impl PinInit<Self, Error>> {
        // Range-checked by the parameter itself: insmod fails with EINVAL.
        let capacity = CAPACITY.get();
        let debugfs = debugfs::Dir::new(c"kvm_mmu_cache")?;
        let vms_dir = debugfs.subdir(c"vms")?;
        let shared = Arc::pin_init(
            try_pin_init!(Shared {
                unused_pages: Arc::new(
                    PercpuCounters::new(nr_node_ids(), static_lock_class!())?,
                    GFP_KERNEL,
                )?,
                reclaim_stats: NodeReclaimStats::per_node(nr_node_ids())?,
                // CAST: `capacity` is at most `MAX_CAPACITY`, enforced by the
                // parameter.
                capacity: capacity as i32,
                vms <- new_mutex!(KVec::new()),
                next_vm_id: Atomic::new(0),
                retired: Totals::new(),
                vms_dir,
            }),
            GFP_KERNEL,
        )?;
        let files = debugfs_files::GlobalFiles::new(&shared)?;
        // Fields are initialised in the order written here; if one fails,
        // those before it are dropped.
        Ok(try_pin_init!(Self {
            _shrinker <- shrinker::Registration::new(
                c"kvm_mmu_cache",
                shrinker::Flags::NUMA_AWARE,
                Ok::<_, Error>(PageShrinker {
                    shared: shared.clone(),
                }),
            ),
            // Last fallible step: VMs may bind once init has returned.
            // The `no_bind` mutant never registers: no VM ever binds.
            #[cfg(not(kmc_mutant = "no_bind"))]
            _registration <- Registration::new(
                CacheProvider {
                    shared: shared.clone(),
                },
                module,
            ),
            // After the last fallible step: a file opened while init fails
            // would be closed through the freed module.
            _files: {
                if cfg!(kmc_mutant_build) {
                    pr_warn!("a deliberately broken build (make mutants): never use it\n");
                }
                pr_info!("loaded, capacity {capacity}\n");
                files.publish(&debugfs)
            },
            _shared: shared,
            _debugfs: debugfs,
        }))
    }
}
