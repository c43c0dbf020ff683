// SPDX-License-Identifier: GPL-2.0

//! Supplying the page-table pages of KVM's x86 MMU.
//!
//! C header: [`arch/x86/include/asm/kvm_host.h`](srctree/arch/x86/include/asm/kvm_host.h)
//!
//! A [`Provider`] is registered with KVM through a [`Registration`]; KVM binds
//! each VM created afterwards to it and calls it through a C ops table whose
//! entries, defined here, turn the C calls into calls of the trait's safe
//! methods on the provider's own VM and vCPU data.

use crate::bindings;
use core::{
    cell::UnsafeCell,
    marker::PhantomData,
    mem::MaybeUninit,
    ptr::NonNull, //
};
use kernel::{
    error::{
        from_err_ptr,
        to_result,
        VTABLE_DEFAULT_ERROR, //
    },
    prelude::*,
    sync::{
        atomic::{
            Atomic,
            Full,
            Release, //
        },
        Arc,
        ArcBorrow, //
    },
    types::{
        ForeignOwnable,
        NotThreadSafe,
        Opaque, //
    },
};

/// The per-vCPU caches KVM asks a provider for.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum CacheType {
    /// Page-table pages.
    PageTable,
    /// Shadow paging's gfn/access arrays.
    ShadowedInfo,
}

impl CacheType {
    /// Every cache type.
    pub(crate) const ALL: [CacheType; 2] = [CacheType::PageTable, CacheType::ShadowedInfo];

    fn from_raw(raw: bindings::kvm_mmu_cache_type) -> Option<Self> {
        match raw {
            bindings::kvm_mmu_cache_type_KVM_MMU_CACHE_PAGE_TABLE => Some(Self::PageTable),
            bindings::kvm_mmu_cache_type_KVM_MMU_CACHE_SHADOWED_INFO => Some(Self::ShadowedInfo),
            _ => None,
        }
    }
}

/// A NUMA node that has memory, as KVM names it.
///
/// The kernel crate's `NumaNode` cannot be read back in 7.2 (its id is
/// private), so the module keeps its own.
///
/// # Invariants
///
/// The id is below `nr_node_ids` and names a node with memory (the node of
/// an online page KVM found, or the current CPU's memory node): allocating
/// on it is valid.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct NumaNodeId(i32);

impl NumaNodeId {
    /// The node id.
    pub(crate) fn id(self) -> i32 {
        self.0
    }

    /// The node id as an index below [`nr_node_ids`].
    pub(crate) fn index(self) -> usize {
        // CAST: by the type invariants the id is not negative.
        self.0 as usize
    }
}

/// A NUMA node, or none (`NUMA_NO_NODE` in C).
pub(crate) type Node = Option<NumaNodeId>;

/// The node KVM passes, if it is one with memory: not, for example, the
/// node of a device's memory (`ZONE_DEVICE`) that has none of its own.
fn node_from_raw(nid: c_int) -> Node {
    let index = usize::try_from(nid).ok()?;
    // INVARIANT: below `nr_node_ids`, and a node with memory.
    (index < nr_node_ids() && node_has_memory(index)).then_some(NumaNodeId(nid))
}

/// The node KVM passes with a topup, checked only when asked for: a VM
/// without the NUMA capability never looks at it.
#[derive(Clone, Copy)]
pub(crate) struct RawNode(c_int);

impl RawNode {
    /// The node, if it is one with memory.
    pub(crate) fn node(self) -> Node {
        node_from_raw(self.0)
    }
}

/// Whether the node `index` has memory (`N_MEMORY`), as C's `node_state()`
/// reads it: racily, memory hotplug may change it.
#[inline]
fn node_has_memory(index: usize) -> bool {
    const WORD_BITS: usize = c_ulong::BITS as usize;
    const MASK_WORDS: usize =
        core::mem::size_of::<kernel::bindings::nodemask_t>() / core::mem::size_of::<c_ulong>();
    let word = index / WORD_BITS;
    if word >= MASK_WORDS {
        return false;
    }
    // SAFETY: `node_states` is a static array, changed only by hotplug with
    // atomic bit operations on its words; a racy read of one word, as C's
    // `test_bit()` does, sees a whole value. `N_MEMORY` is one of its
    // indices, and `word` is within its mask (checked above).
    let bits = unsafe {
        core::ptr::addr_of!(
            kernel::bindings::node_states[kernel::bindings::node_states_N_MEMORY as usize].bits
        )
        .cast::<c_ulong>()
        .add(word)
        .read_volatile()
    };
    (bits >> (index % WORD_BITS)) & 1 != 0
}

/// The node with memory nearest to the CPU the caller runs on (which it
/// may leave right after): where the page allocator would put its pages.
pub(crate) fn current_node() -> Node {
    // SAFETY: Reading the current CPU's memory node has no preconditions.
    node_from_raw(unsafe { bindings::kmc_numa_mem_id() })
}

/// The number of possible node ids (`nr_node_ids`), fixed at boot.
pub(crate) fn nr_node_ids() -> usize {
    // SAFETY: `nr_node_ids` is set during early boot and only read after;
    // a plain read of an aligned `unsigned int`.
    let nodes = unsafe { kernel::bindings::nr_node_ids };
    // CAST: `nr_node_ids` is at most `MAX_NUMNODES` (1 << 10).
    nodes as usize
}

/// Raw allocation flags, as KVM passes them (the kernel crate's `Flags`
/// cannot be made from C's).
pub(crate) type Gfp = kernel::bindings::gfp_t;

/// A page for KVM: handed to KVM, which owns it from then on and frees it
/// with `free_page()`, or freed here if dropped.
///
/// # Invariants
///
/// An order-0 page from the page allocator, in the direct map, owned by
/// this value alone.
pub(crate) struct KvmPage(NonNull<c_void>);

impl KvmPage {
    /// # Safety
    ///
    /// `addr` is an order-0 page from the page allocator, in the direct map,
    /// that nothing else owns.
    pub(crate) unsafe fn from_raw(addr: NonNull<c_void>) -> Self {
        // INVARIANT: by the caller's contract.
        Self(addr)
    }

    /// The NUMA node the page is on.
    pub(crate) fn nid(&self) -> usize {
        // SAFETY: By the type invariants the page is in the direct map.
        unsafe { page_nid(self.0.as_ptr()) }
    }

    /// Hands the page over; whoever receives it frees it.
    fn into_raw(self) -> *mut c_void {
        core::mem::ManuallyDrop::new(self).0.as_ptr()
    }
}

impl Drop for KvmPage {
    fn drop(&mut self) {
        // SAFETY: By the type invariants the page came from the page
        // allocator and is owned here alone.
        unsafe { kernel::bindings::free_pages(self.0.as_ptr() as usize, 0) };
    }
}

/// The NUMA node of the page at `addr`.
///
/// # Safety
///
/// `addr` is in the direct map.
#[inline]
pub(crate) unsafe fn page_nid(addr: *const c_void) -> usize {
    // SAFETY: By the caller's contract, `addr` is in the direct map.
    let nid = unsafe { bindings::kmc_virt_to_nid(addr) };
    // A page's node is never negative.
    usize::try_from(nid).unwrap_or(0)
}

/// A fresh page for KVM, allocated with `gfp`, preferably on `node` (else
/// as the task's memory policy says), and filled with `init` in every
/// 64-bit word, or `None` if none is free.
pub(crate) fn new_kvm_page(gfp: Gfp, node: Node, init: u64) -> Option<KvmPage> {
    // As KVM's own caches: zeroed by the allocator only when there is no
    // other value to write, so that each word is written once.
    let gfp = if init == 0 {
        gfp | kernel::bindings::__GFP_ZERO
    } else {
        gfp
    };
    let addr: *mut u64 = match node {
        // SAFETY: By the type invariants `node` is a valid node to allocate
        // on.
        Some(node) => unsafe { bindings::kmc_get_free_page_node(node.id(), gfp) }.cast(),
        None => {
            // SAFETY: Allocating a page has no preconditions.
            let addr = unsafe { kernel::bindings::get_free_pages_noprof(gfp, 0) };
            addr as *mut u64
        }
    };
    let page = NonNull::new(addr)?;
    if init != 0 {
        // SAFETY: `page` is a fresh, page-aligned (so `u64`-aligned) page of
        // `PAGE_SIZE` bytes, owned here until it is handed to KVM. Every
        // word is written before it is read.
        unsafe { core::slice::from_raw_parts_mut(page.as_ptr(), kernel::page::PAGE_SIZE / 8) }
            .fill(init);
    }
    // SAFETY: Both allocators return an order-0 direct-map page, ours.
    Some(unsafe { KvmPage::from_raw(page.cast()) })
}

/// A page for KVM allocated without sleeping, as KVM's own caches allocate
/// when they are empty at allocation (`GFP_ATOMIC`, charged to the memory
/// cgroup), preferably on `node`.
pub(crate) fn atomic_kvm_page(node: Node, init: u64) -> Option<KvmPage> {
    // __GFP_ACCOUNT, which bindgen leaves out: charge the page to the VM's
    // memory cgroup as KVM does.
    let gfp = kernel::bindings::GFP_ATOMIC | (1 << kernel::bindings::___GFP_ACCOUNT_BIT);
    new_kvm_page(gfp, node, init)
}

/// The KVM VM a provider's VM data belongs to; used only as an identity.
#[repr(transparent)]
pub(crate) struct Kvm(Opaque<bindings::kvm>);

/// A KVM vCPU being created, as `vcpu_init()` sees it.
///
/// # Invariants
///
/// Wraps a live `struct kvm_vcpu` whose VM is alive.
#[repr(transparent)]
pub(crate) struct Vcpu(Opaque<bindings::kvm_vcpu>);

impl Vcpu {
    /// The name of KVM's debugfs directory for the vCPU's VM
    /// (`<pid>-<fd>`), which KVM creates before any vCPU, or `None` without
    /// debugfs.
    pub(crate) fn kvm_debugfs_name(&self) -> Option<&CStr> {
        let vcpu = self.0.get().cast::<u8>();
        // SAFETY: By the type invariants `vcpu` is a live `struct kvm_vcpu`,
        // whose `kvm` member is at the offset clang computed from KVM's own
        // headers with the kernel's flags (bindgen.sh); it points to the
        // live VM.
        let kvm = unsafe {
            // CAST: an offset within a struct fits in `usize`.
            vcpu.add(bindings::KMC_VCPU_KVM_OFFSET as usize)
                .cast::<*mut u8>()
                .read()
        };
        // SAFETY: As above, for the VM's `debugfs_dentry`, set before any
        // vCPU is created and not changed until the VM is destroyed.
        let dir = unsafe {
            // CAST: as above.
            kvm.add(bindings::KMC_KVM_DEBUGFS_DENTRY_OFFSET as usize)
                .cast::<*mut kernel::bindings::dentry>()
                .read()
        };
        // `IS_ERR_OR_NULL()`: KVM leaves an error or NULL without debugfs.
        if !from_err_ptr(dir).is_ok_and(|dir| !dir.is_null()) {
            return None;
        }
        // SAFETY: `dir` is the VM's live debugfs directory, whose `d_name`
        // is the active member of the union; KVM neither renames nor
        // removes it before the VM is destroyed, so the name stays valid and
        // NUL-terminated while the borrow of `self` (the `vcpu_init()` call)
        // lives.
        Some(unsafe { CStr::from_char_ptr((*dir).__bindgen_anon_1.d_name.name.cast()) })
    }
}

/// One KVM vCPU bound to the provider, while it lives: the address of the
/// slot `vcpu_init_c()` allocated for it, which no other live vCPU shares.
///
/// Only this file makes one. Whatever the provider does with its vCPU data
/// (two vCPUs may even share it), the callbacks that carry one `VcpuId` are
/// one vCPU's, which KVM runs one at a time. An id comes back for a later
/// vCPU once its slot is freed (after `vcpu_destroy()`, or a failed
/// `vcpu_init()`), when the earlier vCPU has no callback left: the two
/// vCPUs' callbacks are still one at a time.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct VcpuId(*const c_void);

/// A vCPU callback KVM makes in task context with no spinlock held: it may
/// sleep (`topup()`, `release()`).
pub(crate) enum MaySleep {}

/// A vCPU callback KVM makes under `mmu_lock`: it must not sleep
/// (`alloc()`).
pub(crate) enum NoSleep {}

/// Proof that the code holding it runs inside one of KVM's callbacks for
/// the vCPU [`Self::vcpu`], in the context `C` names, in the vCPU's task
/// with its mutex held: no other callback for that vCPU runs meanwhile.
///
/// Only the trampolines below make one, on their stack, and lend it to the
/// provider for the length of the call: it cannot be cloned, kept or sent
/// to another task.
pub(crate) struct VcpuCallback<C> {
    vcpu: VcpuId,
    _context: PhantomData<C>,
    _not_send: NotThreadSafe,
}

impl<C> VcpuCallback<C> {
    /// # Safety
    ///
    /// The caller is one of KVM's callbacks for the vCPU `vcpu`, in the
    /// context `C` names, and lends the value out only for its own length.
    unsafe fn new(vcpu: VcpuId) -> Self {
        Self {
            vcpu,
            _context: PhantomData,
            _not_send: NotThreadSafe,
        }
    }

    /// The vCPU the callback is for.
    pub(crate) fn vcpu(&self) -> VcpuId {
        self.vcpu
    }
}

/// A value that only the callbacks of one vCPU read and write: no lock and
/// no atomic, since KVM runs them one at a time.
///
/// # Invariants
///
/// `value` is only accessed by callbacks of the vCPU `owner`.
pub(crate) struct VcpuLocal<T: Copy> {
    owner: VcpuId,
    value: UnsafeCell<T>,
}

// SAFETY: Only the owner's callbacks access `value`, one at a time, in
// whichever task; `owner` is an identity, compared and never dereferenced.
unsafe impl<T: Copy + Send> Send for VcpuLocal<T> {}
// SAFETY: As above: shared references give no concurrent access to `value`.
unsafe impl<T: Copy + Send> Sync for VcpuLocal<T> {}

impl<T: Copy> VcpuLocal<T> {
    /// `value`, for the callbacks of the vCPU `owner`.
    pub(crate) fn new(owner: VcpuId, value: T) -> Self {
        // INVARIANT: nothing has accessed `value` yet.
        Self {
            owner,
            value: UnsafeCell::new(value),
        }
    }

    /// Whether `cb` is a callback of the owner; another vCPU's gets a WARN.
    fn is_owner<C>(&self, cb: &VcpuCallback<C>) -> bool {
        !kernel::warn_on!(cb.vcpu() != self.owner)
    }

    /// The value, for a callback of the owner; `None` for another vCPU's.
    pub(crate) fn get<C>(&self, cb: &VcpuCallback<C>) -> Option<T> {
        // SAFETY: `cb` is a callback of the owner (checked first), the only
        // code that accesses `value`, one callback at a time.
        self.is_owner(cb).then(|| unsafe { *self.value.get() })
    }

    /// Sets the value, for a callback of the owner; a no-op for another
    /// vCPU's.
    pub(crate) fn set<C>(&self, cb: &VcpuCallback<C>, value: T) {
        if self.is_owner(cb) {
            // SAFETY: As in `get()`.
            unsafe { *self.value.get() = value };
        }
    }
}

/// What KVM keeps for a vCPU (`vcpu->arch.mmu_cache_data`): the provider's
/// data for it, in a slot of its own, whose address is the vCPU's
/// [`VcpuId`].
struct VcpuSlot<T> {
    vcpu: Arc<T>,
}

/// Arguments of `KVM_ENABLE_CAP` for a capability KVM does not know; KVM
/// has checked that `flags` is 0.
pub(crate) type EnableCap = bindings::kvm_enable_cap;

/// A supplier of page-table pages for the VMs bound to it.
///
/// KVM calls `topup()`, `alloc()` and `release()` from the vCPU's task, one
/// vCPU ioctl at a time (under `vcpu->mutex`): each fault or root load that
/// calls `topup()` calls `release()` once it is over, whether `topup()`
/// succeeded or not, and `alloc()` only in between. Each call gets a
/// [`VcpuCallback`] naming its vCPU: what one vCPU's callbacks share needs no
/// lock between them. A topup never released leaves its cache in use, and
/// out of reach of everyone else, until the vCPU's next release.
#[vtable]
pub(crate) trait Provider: Send + Sync + 'static {
    /// Per-VM data.
    type Vm: Send + Sync;
    /// Per-vCPU data.
    type Vcpu: Send + Sync;

    /// A VM is being created, before any vCPU. Page-table pages hold
    /// `pte_init` in every 64-bit word.
    fn vm_init(&self, kvm: &Kvm, pte_init: u64) -> Result<Arc<Self::Vm>>;
    /// The VM is being destroyed, after all its vCPUs.
    fn vm_destroy(&self, vm: Arc<Self::Vm>);
    /// A vCPU of `vm` is being created; `id` names it in its callbacks.
    fn vcpu_init(&self, vm: &Arc<Self::Vm>, vcpu: &Vcpu, id: VcpuId) -> Result<Arc<Self::Vcpu>>;
    /// The vCPU is being destroyed.
    fn vcpu_destroy(&self, vcpu: Arc<Self::Vcpu>);
    /// Without `mmu_lock`, may sleep: keep `min` page-table pages available
    /// until `release()`, and `min` shadowed-info pages too if
    /// `shadowed_info` (shadow paging), for page tables mapping memory on
    /// `nid` (a fault whose pfn is resolved), or anywhere (`nid.node()` is
    /// `None`: roots, memory KVM holds no page reference on, a node without
    /// memory).
    fn topup(
        &self,
        cb: &VcpuCallback<MaySleep>,
        vcpu: &Self::Vcpu,
        nid: RawNode,
        min: i32,
        shadowed_info: bool,
    ) -> Result;
    /// Under `mmu_lock`, never sleeps: an object of `ty` for the fault or
    /// root load `topup()` prepared for. On `None` KVM allocates the object
    /// itself, without sleeping, and WARNs once.
    fn alloc(
        &self,
        cb: &VcpuCallback<NoSleep>,
        vcpu: &Self::Vcpu,
        ty: CacheType,
    ) -> Option<KvmPage>;
    /// The fault or root load that `topup()` prepared for is over.
    fn release(&self, cb: &VcpuCallback<MaySleep>, vcpu: &Self::Vcpu);
    /// Eager split: a page table for a huge page on `nid`, allocated with
    /// `gfp` (which says whether it may sleep), or `None`, and KVM
    /// allocates it itself.
    fn split_page(&self, _vm: &Self::Vm, _nid: Node, _gfp: Gfp) -> Option<KvmPage> {
        build_error!(VTABLE_DEFAULT_ERROR)
    }
    /// `KVM_CHECK_EXTENSION` of a capability KVM does not know, on a bound
    /// VM's fd, or on `/dev/kvm` (`vm` is `None`): 0 if unknown.
    fn check_extension(&self, _vm: Option<&Self::Vm>, _ext: c_long) -> c_int {
        build_error!(VTABLE_DEFAULT_ERROR)
    }
    /// `KVM_ENABLE_CAP` of a capability KVM does not know, on a bound VM's
    /// fd, before the VM has vCPUs (KVM checks that under `kvm->lock`,
    /// held during the call): `EINVAL` if unknown.
    fn enable_cap(&self, _vm: &Self::Vm, _cap: &EnableCap) -> Result {
        build_error!(VTABLE_DEFAULT_ERROR)
    }
}

/// The provider KVM calls back; set while a [`Registration`] exists.
///
/// A plain pointer, so that KVM's callbacks read it with a plain load (an
/// atomic would be a call to a C helper on every fault).
///
/// # Invariants
///
/// `provider` is only written by the [`Registration`] that set `claimed`:
/// before it registers with KVM, and after it unregisters, so never while
/// KVM may call the ops table (KVM's registration lock orders the write
/// before every call). Whenever KVM may call the table, it points to the
/// provider of the live registration: KVM calls it for VMs bound while
/// registered, each of which holds a reference on this module, and for
/// `KVM_CHECK_EXTENSION` on `/dev/kvm`, for which it takes a reference
/// under its registration lock; so the registration (dropped at module
/// exit, after the last reference is put) outlives every call.
struct ActiveProvider {
    claimed: Atomic<bool>,
    provider: UnsafeCell<*const c_void>,
}

// SAFETY: `provider` is written by one registration, only while KVM, the
// only reader, cannot read it (type invariants).
unsafe impl Sync for ActiveProvider {}

static ACTIVE: ActiveProvider = ActiveProvider {
    claimed: Atomic::new(false),
    provider: UnsafeCell::new(core::ptr::null()),
};

/// The registration of `P` with KVM; unregisters on drop.
///
/// Dropped at module exit, when no VM can be bound (each bound VM holds a
/// reference on the module, and an exiting module has none): then KVM no
/// longer uses the table. Dropped while the module is live, VMs may still
/// be bound or binding: then the table and the provider are leaked, with a
/// WARN, rather than freed under them.
///
/// # Invariants
///
/// While `ops` is `Some`, it is registered with KVM and `ACTIVE` points to
/// `provider`, which is `Some`.
#[pin_data(PinnedDrop)]
pub(crate) struct Registration<P: Provider> {
    /// Boxed apart from the registration, so that it can be leaked.
    ops: Option<KBox<Opaque<bindings::kvm_mmu_cache_provider>>>,
    provider: Option<Pin<KBox<P>>>,
    module: &'static ThisModule,
}

// SAFETY: The ops table is read-only once registered; `P` is `Sync`, and
// `ThisModule` is only read.
unsafe impl<P: Provider> Send for Registration<P> {}
// SAFETY: As for `Send`.
unsafe impl<P: Provider> Sync for Registration<P> {}

impl<P: Provider> Registration<P> {
    /// Registers `provider` with KVM. KVM binds no VM to it, nor calls it
    /// for `/dev/kvm`, until module init has returned (it skips a provider
    /// whose module is coming): a later init step may still fail.
    pub(crate) fn new(provider: P, module: &'static ThisModule) -> impl PinInit<Self, Error> {
        pin_init::pin_init_scope(move || {
            let provider = KBox::pin(provider, GFP_KERNEL)?;
            // The provider's heap address, which moving the box does not
            // change.
            let active: *const P = &*provider;
            let mut table = Self::OPS;
            table.owner = module.as_ptr().cast();
            let ops = KBox::new(Opaque::new(table), GFP_KERNEL)?;
            // The table's heap address, as above.
            let table = ops.get();
            Ok(try_pin_init!(Self {
                ops: Some(ops),
                provider: Some(provider),
                module,
                // Registering is the last step of the initialiser: if it
                // fails, no `Registration` exists and `drop()` never runs
                // for a table KVM does not know.
                _: {
                    ACTIVE
                        .claimed
                        .cmpxchg(false, true, Full)
                        .map_err(|_| EBUSY)?;
                    // SAFETY: This registration claimed `ACTIVE`, and KVM
                    // cannot call the table before it is registered below.
                    unsafe { *ACTIVE.provider.get() = active.cast() };
                    // SAFETY: `table` is a fully initialised ops table, which
                    // stays where it is until `drop()` unregisters it or
                    // leaks it.
                    let ret = unsafe { bindings::kvm_mmu_cache_provider_register(table) };
                    if let Err(e) = to_result(ret) {
                        // SAFETY: Not registered: KVM cannot call the table.
                        unsafe { *ACTIVE.provider.get() = core::ptr::null() };
                        ACTIVE.claimed.store(false, Release);
                        return Err(e);
                    }
                    // INVARIANT: registered, and `ACTIVE` points to the provider.
                },
            }))
        })
    }

    /// Whether the module is past its init and not exiting: VMs may be
    /// bound to it, or binding.
    fn module_live(&self) -> bool {
        // SAFETY: `module` is this module, alive while its code runs; `state`
        // is a plain aligned `enum` the module loader writes (`READ_ONCE()`).
        let state = unsafe { core::ptr::addr_of!((*self.module.as_ptr()).state).read_volatile() };
        state == kernel::bindings::module_state_MODULE_STATE_LIVE
    }

    /// # Safety
    ///
    /// Called by KVM through the ops table, which it uses only while the
    /// registration is alive (see [`ActiveProvider`]).
    unsafe fn active() -> &'static P {
        // SAFETY: KVM calls the table only while `provider` is not written
        // (`ActiveProvider` invariants).
        let p = unsafe { *ACTIVE.provider.get() };
        // SAFETY: By the `ActiveProvider` invariants and the caller's
        // contract, `p` points to the live provider `P` of the registration.
        unsafe { &*p.cast::<P>() }
    }

    /// # Safety
    ///
    /// `data` was returned by `vm_init()` and not yet passed to `vm_destroy()`.
    unsafe fn vm<'a>(data: *mut c_void) -> ArcBorrow<'a, P::Vm> {
        // SAFETY: By the caller's contract `data` came from `into_foreign()`
        // and has not been reclaimed.
        unsafe { <Arc<P::Vm> as ForeignOwnable>::borrow(data.cast()) }
    }

    /// The vCPU's slot, and a token for the callback in progress.
    ///
    /// # Safety
    ///
    /// `data` was returned by `vcpu_init_c()` and not yet passed to
    /// `vcpu_destroy_c()`; the caller is one of KVM's callbacks for that
    /// vCPU, in the context `C` names.
    unsafe fn vcpu<'a, C>(data: *mut c_void) -> (&'a VcpuSlot<P::Vcpu>, VcpuCallback<C>) {
        // SAFETY: By the caller's contract `data` is a live slot from
        // `KBox::into_raw()`, freed only by `vcpu_destroy_c()`.
        let slot = unsafe { &*data.cast::<VcpuSlot<P::Vcpu>>() };
        // SAFETY: A callback for the vCPU whose slot is at `data` (the
        // caller's contract), in context `C`; the token lives on the
        // caller's stack.
        let cb = unsafe { VcpuCallback::new(VcpuId(data.cast_const())) };
        (slot, cb)
    }

    const OPS: bindings::kvm_mmu_cache_provider = bindings::kvm_mmu_cache_provider {
        owner: core::ptr::null_mut(),
        vm_init: Some(Self::vm_init_c),
        vm_destroy: Some(Self::vm_destroy_c),
        vcpu_init: Some(Self::vcpu_init_c),
        vcpu_destroy: Some(Self::vcpu_destroy_c),
        topup: Some(Self::topup_c),
        alloc: Some(Self::alloc_c),
        release: Some(Self::release_c),
        split_page: if P::HAS_SPLIT_PAGE {
            Some(Self::split_page_c)
        } else {
            None
        },
        check_extension: if P::HAS_CHECK_EXTENSION {
            Some(Self::check_extension_c)
        } else {
            None
        },
        enable_cap: if P::HAS_ENABLE_CAP {
            Some(Self::enable_cap_c)
        } else {
            None
        },
    };

    fn into_data<T: Send + Sync + 'static>(r: Result<Arc<T>>) -> *mut c_void {
        match r {
            Ok(arc) => arc.into_foreign().cast(),
            Err(e) => e.to_ptr(),
        }
    }

    fn page_ptr(page: Option<KvmPage>) -> *mut c_void {
        page.map_or(core::ptr::null_mut(), KvmPage::into_raw)
    }

    /// # Safety
    ///
    /// Called only by KVM through the registered ops table, with the
    /// arguments `struct kvm_mmu_cache_provider` documents.
    unsafe extern "C" fn vm_init_c(kvm: *mut bindings::kvm, pte_init: u64) -> *mut c_void {
        // SAFETY: KVM passes its live VM, valid for the duration of the call;
        // `Kvm` is a transparent wrapper used only as an identity.
        let kvm = unsafe { &*kvm.cast::<Kvm>() };
        // SAFETY: Called by KVM through the registered ops table.
        Self::into_data(unsafe { Self::active() }.vm_init(kvm, pte_init))
    }

    /// # Safety
    ///
    /// Called only by KVM through the registered ops table, with the
    /// arguments `struct kvm_mmu_cache_provider` documents.
    unsafe extern "C" fn vm_destroy_c(vm: *mut c_void) {
        // SAFETY: KVM passes the data `vm_init()` returned, once, at the end
        // of the VM's life.
        let vm = unsafe { <Arc<P::Vm> as ForeignOwnable>::from_foreign(vm.cast()) };
        // SAFETY: Called by KVM through the registered ops table.
        unsafe { Self::active() }.vm_destroy(vm);
    }

    /// # Safety
    ///
    /// Called only by KVM through the registered ops table, with the
    /// arguments `struct kvm_mmu_cache_provider` documents.
    unsafe extern "C" fn vcpu_init_c(
        vm: *mut c_void,
        vcpu: *mut bindings::kvm_vcpu,
    ) -> *mut c_void {
        // SAFETY: KVM passes the VM's data, alive until `vm_destroy()`.
        let vm = unsafe { Self::vm(vm) };
        // SAFETY: KVM passes the live vCPU it is creating, of a live VM,
        // valid for the duration of the call; `Vcpu` is transparent.
        // INVARIANT: the vCPU and its VM are alive.
        let vcpu = unsafe { &*vcpu.cast::<Vcpu>() };
        let vm: Arc<P::Vm> = vm.into();
        // The slot first: its address names the vCPU. Charged to the VMM,
        // as KVM charges its own per-vCPU state.
        let slot = match KBox::<VcpuSlot<P::Vcpu>>::new_uninit(GFP_KERNEL_ACCOUNT) {
            Ok(slot) => slot,
            Err(_) => return ENOMEM.to_ptr(),
        };
        let id = VcpuId(MaybeUninit::as_ptr(&slot).cast());
        // SAFETY: Called by KVM through the registered ops table.
        match unsafe { Self::active() }.vcpu_init(&vm, vcpu, id) {
            // The slot does not move: KVM keeps its address until
            // `vcpu_destroy_c()`.
            Ok(data) => KBox::into_raw(KBox::write(slot, VcpuSlot { vcpu: data })).cast(),
            Err(e) => e.to_ptr(),
        }
    }

    /// # Safety
    ///
    /// Called only by KVM through the registered ops table, with the
    /// arguments `struct kvm_mmu_cache_provider` documents.
    unsafe extern "C" fn vcpu_destroy_c(vcpu: *mut c_void) {
        // SAFETY: KVM passes the slot `vcpu_init_c()` returned, once, when
        // the vCPU is destroyed, after its last callback.
        let slot = unsafe { KBox::from_raw(vcpu.cast::<VcpuSlot<P::Vcpu>>()) };
        // SAFETY: Called by KVM through the registered ops table.
        unsafe { Self::active() }.vcpu_destroy(KBox::into_inner(slot).vcpu);
    }

    fn errno(r: Result) -> c_int {
        match r {
            Ok(()) => 0,
            Err(e) => e.to_errno(),
        }
    }

    /// # Safety
    ///
    /// Called only by KVM through the registered ops table, with the
    /// arguments `struct kvm_mmu_cache_provider` documents.
    unsafe extern "C" fn topup_c(
        vcpu: *mut c_void,
        nid: c_int,
        min: c_int,
        shadowed_info: bool,
    ) -> c_int {
        // SAFETY: KVM passes the vCPU's slot, and calls `topup()` in the
        // vCPU's task, before taking `mmu_lock`.
        let (slot, cb) = unsafe { Self::vcpu::<MaySleep>(vcpu) };
        // SAFETY: Called by KVM through the registered ops table.
        let provider = unsafe { Self::active() };
        Self::errno(provider.topup(&cb, &slot.vcpu, RawNode(nid), min, shadowed_info))
    }

    /// # Safety
    ///
    /// Called only by KVM through the registered ops table, with the
    /// arguments `struct kvm_mmu_cache_provider` documents.
    unsafe extern "C" fn alloc_c(
        vcpu: *mut c_void,
        ty: bindings::kvm_mmu_cache_type,
    ) -> *mut c_void {
        // An unknown type gets nothing: KVM then allocates the object itself.
        let Some(ty) = CacheType::from_raw(ty) else {
            return core::ptr::null_mut();
        };
        // SAFETY: KVM passes the vCPU's slot, and calls `alloc()` in the
        // vCPU's task, under `mmu_lock`.
        let (slot, cb) = unsafe { Self::vcpu::<NoSleep>(vcpu) };
        // SAFETY: Called by KVM through the registered ops table.
        Self::page_ptr(unsafe { Self::active() }.alloc(&cb, &slot.vcpu, ty))
    }

    /// # Safety
    ///
    /// Called only by KVM through the registered ops table, with the
    /// arguments `struct kvm_mmu_cache_provider` documents.
    unsafe extern "C" fn release_c(vcpu: *mut c_void) {
        // SAFETY: KVM passes the vCPU's slot, and calls `release()` in the
        // vCPU's task, after dropping `mmu_lock`.
        let (slot, cb) = unsafe { Self::vcpu::<MaySleep>(vcpu) };
        // SAFETY: Called by KVM through the registered ops table.
        unsafe { Self::active() }.release(&cb, &slot.vcpu);
    }

    /// # Safety
    ///
    /// Called only by KVM through the registered ops table, with the
    /// arguments `struct kvm_mmu_cache_provider` documents.
    unsafe extern "C" fn split_page_c(
        vm: *mut c_void,
        nid: c_int,
        gfp: kernel::bindings::gfp_t,
    ) -> *mut c_void {
        // SAFETY: KVM passes the VM's data, alive until `vm_destroy()`.
        let vm = unsafe { Self::vm(vm) };
        // SAFETY: Called by KVM through the registered ops table.
        Self::page_ptr(unsafe { Self::active() }.split_page(&vm, node_from_raw(nid), gfp))
    }

    /// # Safety
    ///
    /// Called only by KVM through the registered ops table, with the
    /// arguments `struct kvm_mmu_cache_provider` documents.
    unsafe extern "C" fn check_extension_c(vm: *mut c_void, ext: c_long) -> c_int {
        let vm = if vm.is_null() {
            None
        } else {
            // SAFETY: KVM passes a bound VM's data, alive until
            // `vm_destroy()`, or NULL for `/dev/kvm`.
            Some(unsafe { Self::vm(vm) })
        };
        // SAFETY: Called by KVM through the registered ops table.
        unsafe { Self::active() }.check_extension(vm.as_deref(), ext)
    }

    /// # Safety
    ///
    /// Called only by KVM through the registered ops table, with the
    /// arguments `struct kvm_mmu_cache_provider` documents.
    unsafe extern "C" fn enable_cap_c(
        vm: *mut c_void,
        cap: *mut bindings::kvm_enable_cap,
    ) -> c_int {
        // SAFETY: KVM passes the VM's data, alive until `vm_destroy()`.
        let vm = unsafe { Self::vm(vm) };
        // SAFETY: KVM passes the ioctl's arguments, copied from user space,
        // valid and not changed for the duration of the call.
        let cap = unsafe { &*cap };
        // SAFETY: Called by KVM through the registered ops table.
        Self::errno(unsafe { Self::active() }.enable_cap(&vm, cap))
    }
}

#[pinned_drop]
impl<P: Provider> PinnedDrop for Registration<P> {
    fn drop(self: Pin<&mut Self>) {
        let live = self.module_live();
        let this = self.project();
        let Some(ops) = this.ops.take() else {
            return;
        };
        if kernel::warn_on!(live) {
            // VMs may be bound to the table and call the provider: keep
            // both registered and alive for good, and the module loaded
            // with them, or a later rmmod would leave KVM the freed table.
            pr_err!("provider registration dropped while the module is live: leaked\n");
            // Without module unloading there is no rmmod to keep off.
            #[cfg(CONFIG_MODULE_UNLOAD)]
            // SAFETY: `module` is this module, live (checked above) and
            // running this code, so not freed under the call; the
            // reference taken is never put.
            unsafe {
                kernel::bindings::__module_get(this.module.as_ptr())
            };
            core::mem::forget(ops);
            core::mem::forget(this.provider.take());
            return;
        }
        // SAFETY: By the type invariants `ops` is registered. The module is
        // exiting, or its init failed: no VM is bound (KVM binds none while
        // the module is coming, and each bound VM holds a reference on it)
        // and none can bind any more.
        unsafe { bindings::kvm_mmu_cache_provider_unregister(ops.get()) };
        // SAFETY: Unregistered: KVM no longer calls the table.
        unsafe { *ACTIVE.provider.get() = core::ptr::null() };
        ACTIVE.claimed.store(false, Release);
    }
}
