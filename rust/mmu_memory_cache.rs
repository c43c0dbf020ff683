// SPDX-License-Identifier: GPL-2.0

//! A KVM MMU memory cache that counts its unused objects.
//!
//! C header: [`include/linux/kvm_types.h`](srctree/include/linux/kvm_types.h)
//!
//! Wraps a real `struct kvm_mmu_memory_cache`, filled and emptied with KVM's
//! own helpers, so that every page the cache gains or loses is added to a
//! shared [`PercpuCounter`] under the cache's own mutex: the sum of the
//! counter over all caches is, exactly, the number of unused cached pages.
//!
//! Lock order: a cache's mutex, then KVM's `mmu_lock`. The vCPU that tops a
//! cache up holds the mutex from the topup to the end of the fault or root
//! load, taking `mmu_lock` in between; anyone else (debugfs, a shrinker)
//! only locks a cache while holding no KVM lock, and a shrinker only ever
//! trylocks it. Each cache belongs to one vCPU, and only that vCPU's
//! callbacks, proved by a [`VcpuCallback`] naming it, hold, allocate or
//! release: KVM runs a vCPU's callbacks one at a time, so the record of the
//! hold is plain memory and the fault path calls nothing but the mutex. A
//! holder must release the cache before it returns to user space (KVM pairs
//! every topup with a release in the same ioctl); one that did not would
//! keep every other task from the cache.

use crate::{
    bindings,
    percpu_counter::PercpuCounter,
    provider::{
        KvmPage,
        Node, //
    }, //
};
use core::{
    cell::UnsafeCell,
    marker::PhantomData,
    ptr::NonNull, //
};
use kernel::{
    error::to_result,
    prelude::*,
    sync::{
        atomic::{
            Atomic,
            Relaxed, //
        },
        Arc,
        LockClassKey, //
    },
    types::Opaque, //
};

/// Proof that the code holding it runs inside one of KVM's callbacks
/// (`topup`, `alloc`, `release`) for the vCPU whose provider data is at
/// `vcpu`: in task context, with the vCPU's mutex held, so that no other
/// callback for that vCPU runs meanwhile. Only the C trampolines make one,
/// for the length of a callback; it cannot be sent to another task or kept.
pub(crate) struct VcpuCallback<'a> {
    vcpu: *const c_void,
    _callback: PhantomData<&'a ()>,
}

impl<'a> VcpuCallback<'a> {
    /// # Safety
    ///
    /// The caller is one of KVM's vCPU callbacks for the vCPU whose data is
    /// `vcpu`, which KVM calls in task context, one at a time per vCPU;
    /// the value does not outlive the callback (nor, by its lifetime, the
    /// borrow of `vcpu`).
    pub(crate) unsafe fn new<T>(vcpu: &'a T) -> Self {
        Self {
            vcpu: core::ptr::from_ref(vcpu).cast(),
            _callback: PhantomData,
        }
    }

    /// The vCPU data the callback is for, as an identity.
    pub(crate) fn vcpu(&self) -> *const c_void {
        self.vcpu
    }
}

/// Topup and allocation statistics of one cache.
pub(crate) struct CacheStats {
    /// Topups that added at least one object.
    pub(crate) topups: Atomic<u64>,
    /// Objects handed to KVM from the cache.
    pub(crate) allocs: Atomic<u64>,
    /// Objects KVM needed that the cache could not supply.
    pub(crate) misses: Atomic<u64>,
}

impl CacheStats {
    const fn new() -> Self {
        Self {
            topups: Atomic::new(0),
            allocs: Atomic::new(0),
            misses: Atomic::new(0),
        }
    }
}

/// A `struct kvm_mmu_memory_cache` of pages, guarded by its own mutex, whose
/// object count is mirrored in a shared counter.
///
/// # Invariants
///
/// - `lock` is an initialised mutex; `cache` is only accessed with it held,
///   but for the racy read of `nobjs` in [`MmuMemoryCache::nr_free_racy`].
/// - `cache` is a page cache (`kmem_cache` is NULL) of at most `capacity`
///   objects.
/// - Every change of `cache.nobjs` is added to `counter` while `lock` is
///   held, so `counter` carries exactly this cache's `nobjs`.
/// - `held` is only accessed by KVM's callbacks for the vCPU `owner` (a
///   [`VcpuCallback`] naming it), which run one at a time, or through the
///   `Pin<&mut Self>` of `drop()`. It is true exactly while those callbacks
///   hold `lock` across calls, from [`MmuMemoryCache::topup_and_hold`] to
///   [`MmuMemoryCache::release`]: set after `lock()`, cleared before
///   `unlock()`.
#[pin_data(PinnedDrop)]
pub(crate) struct MmuMemoryCache {
    #[pin]
    lock: Opaque<kernel::bindings::mutex>,
    cache: UnsafeCell<bindings::kvm_mmu_memory_cache>,
    capacity: i32,
    counter: Arc<PercpuCounter>,
    /// The vCPU data whose callbacks alone may hold the cache.
    owner: *const c_void,
    held: UnsafeCell<bool>,
    /// Statistics, for debugfs.
    pub(crate) stats: CacheStats,
}

// SAFETY: The C cache's pages and object array may be freed by any task;
// `owner` is an identity, compared and never dereferenced.
unsafe impl Send for MmuMemoryCache {}
// SAFETY: Shared access to the C cache goes through `lock` (type
// invariants), but for a racy read of an `int`; `held` is only accessed by
// one vCPU's callbacks, one at a time (type invariants); the rest is
// atomics and a shared reference to a `Sync` counter.
unsafe impl Sync for MmuMemoryCache {}

impl MmuMemoryCache {
    /// Creates an empty cache of `capacity` pages, each holding `init` in
    /// every 64-bit word (zeroed if 0; `None`: left as allocated), on
    /// `node` if given, for the vCPU whose provider data is at `owner`.
    pub(crate) fn new(
        owner: *const c_void,
        init: Option<u64>,
        node: Node,
        capacity: i32,
        counter: Arc<PercpuCounter>,
        name: &'static CStr,
        key: Pin<&'static LockClassKey>,
    ) -> Result<impl PinInit<Self, Error>> {
        if capacity <= 0 {
            return Err(EINVAL);
        }
        // As KVM's own caches: `init_value` if non-zero, else `__GFP_ZERO`.
        // The `uninit_pages` mutant fills page tables with the complement
        // of what KVM expects, as garbage would be.
        let (gfp_zero, init_value) = match init {
            None => (0, 0),
            Some(v) if cfg!(kmc_mutant = "uninit_pages") => (0, !v),
            Some(0) => (kernel::bindings::__GFP_ZERO, 0),
            Some(v) => (0, v),
        };
        let cache = bindings::kvm_mmu_memory_cache {
            gfp_zero,
            init_value,
            has_node: node.is_some(),
            node: node.map_or(kernel::bindings::NUMA_NO_NODE, |n| n.id()),
            ..Default::default()
        };
        // INVARIANT: a page cache that starts empty, counted as zero in
        // `counter`; not held, with `lock` unlocked.
        Ok(try_pin_init!(Self {
            lock <- Opaque::ffi_init(|slot: *mut kernel::bindings::mutex| {
                // SAFETY: `slot` is valid for writes and pinned; `name` and
                // `key` are static, as lockdep requires.
                unsafe { kernel::bindings::__mutex_init(slot, name.as_char_ptr(), key.as_ptr()) }
            }),
            cache: UnsafeCell::new(cache),
            capacity,
            counter,
            owner,
            held: UnsafeCell::new(false),
            stats: CacheStats::new(),
        }))
    }

    fn lock(&self) {
        // SAFETY: By the type invariants, `lock` is an initialised mutex.
        unsafe { kernel::bindings::mutex_lock(self.lock.get()) };
    }

    /// # Safety
    ///
    /// The caller holds `lock`, taken by `lock()` in this task.
    unsafe fn unlock(&self) {
        // SAFETY: The caller holds the initialised mutex `lock`.
        unsafe { kernel::bindings::mutex_unlock(self.lock.get()) };
    }

    /// # Safety
    ///
    /// The caller holds `lock`.
    unsafe fn nobjs(&self) -> i32 {
        // SAFETY: The caller holds `lock`, which guards `cache`.
        unsafe { (*self.cache.get()).nobjs }
    }

    /// Frees every cached object; returns how many.
    ///
    /// # Safety
    ///
    /// The caller holds `lock`.
    unsafe fn free_locked(&self) -> usize {
        // SAFETY: The caller holds `lock`.
        let nobjs = unsafe { self.nobjs() };
        // SAFETY: `cache` is a valid cache, guarded by `lock` which the
        // caller holds.
        unsafe { bindings::kvm_mmu_free_memory_cache(self.cache.get()) };
        // INVARIANT: the cache lost `nobjs` objects, under `lock`.
        self.counter.add(-i64::from(nobjs));
        nobjs as usize
    }

    /// Whether `cb` is a callback of the vCPU that owns the cache; a
    /// callback of another one gets a WARN.
    #[inline]
    fn is_owner(&self, cb: &VcpuCallback<'_>) -> bool {
        !kernel::warn_on!(cb.vcpu() != self.owner)
    }

    /// Whether the owner's callbacks hold the cache.
    ///
    /// # Safety
    ///
    /// The caller runs in a callback of the owner (`is_owner()`): the only
    /// code that accesses `held`, one callback at a time.
    unsafe fn is_held(&self) -> bool {
        // SAFETY: By the caller's contract no other access to `held` runs.
        unsafe { *self.held.get() }
    }

    /// # Safety
    ///
    /// The caller runs in a callback of the owner, the only code that
    /// accesses `held`, one callback at a time; `held` only changes as the
    /// type invariants say.
    unsafe fn set_held(&self, held: bool) {
        // SAFETY: By the caller's contract no other access to `held` runs.
        unsafe { *self.held.get() = held };
    }

    /// Whether the owner's callback `cb` holds the cache: `false` for a
    /// callback of another vCPU.
    #[inline]
    pub(crate) fn held_by(&self, cb: &VcpuCallback<'_>) -> bool {
        // SAFETY: `cb` is a callback of the owner, checked first.
        self.is_owner(cb) && unsafe { self.is_held() }
    }

    /// Makes at least `min` objects available and keeps the cache locked for
    /// its vCPU's callbacks until [`Self::release`], so that nobody else can
    /// empty it between the topup and the allocations that follow. May
    /// sleep: waits for whoever else has the cache locked. On any error but
    /// `EINVAL` the cache is held all the same: call `release()` regardless.
    ///
    /// Inlined into KVM's callback: most faults find the cache full (a 4 KiB
    /// fault takes a table once per 2 MiB), and then this is all they run.
    #[inline]
    pub(crate) fn topup_and_hold(&self, cb: &VcpuCallback<'_>, min: i32) -> Result {
        if min > self.capacity || !self.is_owner(cb) {
            return Err(EINVAL);
        }
        // SAFETY: `cb` is a callback of the owner (checked above).
        if !unsafe { self.is_held() } {
            self.lock();
            // SAFETY: `cb` is the owner's callback (checked above).
            // INVARIANT: the owner's callbacks now hold `lock` across calls.
            unsafe { self.set_held(true) };
        }
        // SAFETY: `lock` is held: taken just above, or by an earlier
        // callback of the owner that has not released it.
        let before = unsafe { self.nobjs() };
        if before >= self.fill_level() {
            return Ok(());
        }
        // SAFETY: The owner's callbacks hold `lock` (above).
        unsafe { self.fill_held(before, min) }
    }

    /// The number of objects a topup fills the cache to.
    ///
    /// Whenever the cache is below capacity, not only below `min`: a quiet
    /// cache then holds exactly `capacity` pages, which is what the counts
    /// in debugfs can be checked against.
    #[inline]
    fn fill_level(&self) -> i32 {
        if cfg!(kmc_mutant = "short_topup") {
            self.capacity - 1
        } else {
            self.capacity
        }
    }

    /// Fills the cache, which holds `before` objects, to its fill level;
    /// only an error if fewer than `min` are then available. Kept out of
    /// line, so that the inlined check of a full cache stays small.
    ///
    /// # Safety
    ///
    /// The owner's callbacks hold `lock`.
    #[inline(never)]
    unsafe fn fill_held(&self, before: i32, min: i32) -> Result {
        let fill = self.fill_level();
        // SAFETY: `cache` is a valid page cache, guarded by `lock`, which
        // the owner's callbacks hold; capacity never changes for a cache.
        let ret = unsafe { bindings::__kvm_mmu_topup_memory_cache(self.cache.get(), fill, fill) };
        // SAFETY: As above.
        let nobjs = unsafe { self.nobjs() };
        // INVARIANT: the change in `nobjs` is counted under `lock`.
        self.counter.add(i64::from(nobjs - before));
        if nobjs > before {
            self.stats.topups.add(1, Relaxed);
        }
        if nobjs >= min {
            return Ok(());
        }
        to_result(ret)
    }

    /// Pops an object for KVM, or returns `None` if the vCPU's callbacks did
    /// not top the cache up or it is empty. Never sleeps.
    pub(crate) fn alloc_held(&self, cb: &VcpuCallback<'_>) -> Option<KvmPage> {
        // SAFETY: If the owner's callbacks hold the cache, `lock` is held.
        if !self.held_by(cb) || unsafe { self.nobjs() } == 0 {
            self.stats.misses.add(1, Relaxed);
            return None;
        }
        // SAFETY: `cache` is valid and non-empty, and guarded by `lock`,
        // which the owner's callbacks hold.
        let obj = unsafe { bindings::kvm_mmu_memory_cache_alloc(self.cache.get()) };
        // INVARIANT: one object left the cache, under `lock`.
        if !cfg!(kmc_mutant = "uncounted_alloc") {
            self.counter.add(-1);
        }
        self.stats.allocs.add(1, Relaxed);
        // SAFETY: The cache holds order-0 pages from the page allocator, in
        // the direct map (a page cache, by the type invariants), and the one
        // just popped is no longer the cache's.
        NonNull::new(obj).map(|page| unsafe { KvmPage::from_raw(page) })
    }

    /// Ends what [`Self::topup_and_hold`] started; a no-op if the cache is
    /// not held. Inlined into KVM's callback, as the topup's check.
    #[inline]
    pub(crate) fn release(&self, cb: &VcpuCallback<'_>) {
        if cfg!(kmc_mutant = "no_release") || !self.held_by(cb) {
            return;
        }
        // SAFETY: `cb` is the owner's callback (`held_by()`).
        // INVARIANT: `held` is cleared before `lock` is dropped.
        unsafe { self.set_held(false) };
        // SAFETY: The owner's callbacks held `lock`, taken by `lock()`; KVM
        // releases in the task that topped up, within the same ioctl.
        unsafe { self.unlock() };
    }

    /// The exact number of cached objects, read under the cache's lock. May
    /// sleep until the holder's fault is over.
    pub(crate) fn nr_free(&self) -> i32 {
        self.lock();
        // SAFETY: `lock` is held, taken just above.
        let nobjs = unsafe { self.nobjs() };
        // SAFETY: `lock` was taken just above, in this task.
        unsafe { self.unlock() };
        nobjs
    }

    /// The number of cached objects, read without the lock: may be stale.
    pub(crate) fn nr_free_racy(&self) -> i32 {
        let cache = self.cache.get();
        // SAFETY: `cache` is valid for the lifetime of `self`; KVM's helpers
        // write `nobjs` with plain aligned `int` stores, which do not tear:
        // a racy read, as C's debug readers do with READ_ONCE().
        unsafe { Atomic::from_ptr(&raw mut (*cache).nobjs) }.load(Relaxed)
    }

    /// Whether anyone has the cache locked (its vCPU, between a topup and
    /// its release, or a reader): a racy read, for debugfs.
    pub(crate) fn is_locked(&self) -> bool {
        // SAFETY: By the type invariants, `lock` is an initialised mutex.
        unsafe { kernel::bindings::mutex_is_locked(self.lock.get()) }
    }

    /// The most objects the cache holds.
    pub(crate) fn capacity(&self) -> i32 {
        self.capacity
    }
}

#[pinned_drop]
impl PinnedDrop for MmuMemoryCache {
    fn drop(self: Pin<&mut Self>) {
        // SAFETY: Dropping, the cache is no longer shared: no callback runs.
        let held = unsafe { *self.held.get() };
        // A holder that never released is a bug in the caller's teardown
        // order; only the locking task may unlock the mutex: leak the pages
        // (and leave their count in the counter) rather than unlock it here.
        if kernel::warn_on!(held) {
            pr_err!("cache dropped while held by its vCPU: pages leaked\n");
            return;
        }
        self.lock();
        // SAFETY: `lock` is held, taken just above.
        unsafe { self.free_locked() };
        // SAFETY: `lock` was taken just above, in this task.
        unsafe { self.unlock() };
        // SAFETY: `lock` is initialised and unlocked, and never used again.
        unsafe { kernel::bindings::mutex_destroy(self.lock.get()) };
    }
}
