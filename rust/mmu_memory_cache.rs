// SPDX-License-Identifier: GPL-2.0

//! A KVM MMU memory cache that counts its unused objects.
//!
//! C header: [`include/linux/kvm_types.h`](srctree/include/linux/kvm_types.h)
//!
//! Wraps a real `struct kvm_mmu_memory_cache`, filled and emptied with KVM's
//! own helpers, so that every page the cache gains or loses is added to the
//! shared [`PercpuCounters`] of its node: over all caches, each node's counter
//! is exactly the number of unused cached pages on that node.
//!
//! Each cache belongs to one vCPU. From a topup to its release (a fault or
//! a root load) the cache is *in use*: the vCPU's callbacks, which KVM runs
//! one at a time, have it to themselves without a lock, so that nothing can
//! empty it between the topup and the allocations under `mmu_lock`, and a
//! fault whose cache is full calls no lock at all. Anyone else (debugfs, the
//! recount, a shrinker) tries the cache's mutex, never waiting for it, and
//! touches the cache only if it is not in use; a vCPU starting a fault
//! waits for such a task to be done, never the other way round.
//!
//! Lock order: a cache's mutex is a leaf but for the shrinker, which only
//! ever trylocks it, holding the VM list and a VM's vCPU list (see
//! `reclaim.rs`). The vCPU takes it only to wait for
//! another task (in `topup`, holding `vcpu->mutex` and KVM's SRCU read lock,
//! no spinlock); other tasks only ever trylock it.

use crate::{
    bindings,
    percpu_counter::PercpuCounters,
    provider::{
        page_nid,
        KvmPage,
        MaySleep,
        Node,
        VcpuCallback,
        VcpuId, //
    }, //
};
use core::{
    cell::UnsafeCell,
    ptr::NonNull, //
};
use kernel::{
    error::to_result,
    prelude::*,
    sync::{
        atomic::{
            Acquire,
            Atomic,
            AtomicFlag,
            Full,
            Relaxed,
            Release, //
        },
        Arc,
        LockClassKey, //
    },
    types::Opaque, //
};

/// Topup and allocation statistics of one cache.
pub(crate) struct CacheStats {
    /// Topups that added at least one object.
    pub(crate) topups: Atomic<u64>,
    /// Objects handed to KVM from the cache.
    pub(crate) allocs: Atomic<u64>,
    /// Objects KVM needed that the cache could not supply.
    pub(crate) misses: Atomic<u64>,
    /// Pages for a node's cache that came from another node (the
    /// allocator's fallback), at topup or, for a miss, at allocation.
    pub(crate) fallbacks: Atomic<u64>,
}

impl CacheStats {
    const fn new() -> Self {
        Self {
            topups: Atomic::new(0),
            allocs: Atomic::new(0),
            misses: Atomic::new(0),
            fallbacks: Atomic::new(0),
        }
    }
}

/// An empty C page cache whose pages hold `init` in every 64-bit word
/// (zeroed if 0; `None`: left as allocated), from `node` if given.
fn c_cache(init: Option<u64>, node: Node) -> bindings::kvm_mmu_memory_cache {
    // As KVM's own caches: `init_value` if non-zero, else `__GFP_ZERO`.
    // The `uninit_pages` mutant fills page tables with the complement of
    // what KVM expects, as garbage would be.
    let (gfp_zero, init_value) = match init {
        None => (0, 0),
        Some(v) if cfg!(kmc_mutant = "uninit_pages") => (0, !v),
        Some(0) => (kernel::bindings::__GFP_ZERO, 0),
        Some(v) => (0, v),
    };
    bindings::kvm_mmu_memory_cache {
        gfp_zero,
        init_value,
        has_node: node.is_some(),
        node: node.map_or(kernel::bindings::NUMA_NO_NODE, |n| n.id()),
        ..Default::default()
    }
}

/// What [`MmuMemoryCache::reclaim`] did.
#[derive(Default)]
pub(crate) struct Reclaimed {
    /// Pages of the node looked at, freed or not.
    pub(crate) scanned: usize,
    /// Pages freed.
    pub(crate) freed: usize,
}

/// A `struct kvm_mmu_memory_cache` of pages owned by one vCPU, whose pages
/// are counted in shared per-node counters.
///
/// # Invariants
///
/// - `lock` is an initialised mutex. `cache` is a page cache (`kmem_cache`
///   is NULL) of at most `capacity` objects, accessed only:
///   - by callbacks of the vCPU `owner` while `in_use` is set and was seen
///     by every task that then held `lock` with `busy` set: they set
///     `in_use` (a full barrier), then waited for `lock` if `busy` was set;
///   - by a task holding `lock` that set `busy` (a full barrier) and then
///     found `in_use` clear, until it clears `busy` (release) again;
///   - through the `Pin<&mut Self>` of `drop()`.
/// - Every page that enters or leaves `cache.objects` is added to or
///   subtracted from the counter of its node in `counters`, and every change
///   of `cache.nobjs` stored in `free`, by whoever may access `cache` at the
///   time.
/// - `held` is only accessed by callbacks of the vCPU `owner`, which KVM
///   runs one at a time, or by `drop()`; it is true from
///   [`MmuMemoryCache::topup_and_hold`] to [`MmuMemoryCache::release`],
///   set just before `in_use` and cleared just after it: whenever `in_use`
///   is set, `held` is true.
#[pin_data(PinnedDrop)]
pub(crate) struct MmuMemoryCache {
    #[pin]
    lock: Opaque<kernel::bindings::mutex>,
    cache: UnsafeCell<bindings::kvm_mmu_memory_cache>,
    capacity: i32,
    /// The node the cache's pages are for, if any.
    node: Node,
    /// Unused cached pages, one counter per node.
    counters: Arc<PercpuCounters>,
    /// The vCPU whose callbacks alone may use the cache.
    owner: VcpuId,
    /// The owner's own record of `in_use`, read without a barrier.
    held: UnsafeCell<bool>,
    /// The owner's callbacks have the cache, from a topup to its release.
    in_use: AtomicFlag,
    /// A task holding `lock` may be touching the cache.
    busy: AtomicFlag,
    /// `cache.nobjs`, for readers that may not touch `cache`.
    free: Atomic<i32>,
    /// Statistics, for debugfs.
    pub(crate) stats: CacheStats,
}

// SAFETY: The C cache's pages and object array may be freed by any task;
// `owner` is an identity, compared and never dereferenced.
unsafe impl Send for MmuMemoryCache {}
// SAFETY: Shared access to `cache` and `held` is ordered as the type
// invariants say; the rest is atomics and a shared reference to a `Sync`
// counter.
unsafe impl Sync for MmuMemoryCache {}

/// A task other than the owner's callbacks, holding the cache's mutex while
/// the cache is not in use: it may touch the cache until dropped.
///
/// # Invariants
///
/// `cache.lock` is held by this task, which set `cache.busy` with a full
/// barrier and then found `cache.in_use` clear with an acquire load.
struct IdleGuard<'a> {
    cache: &'a MmuMemoryCache,
    _not_send: kernel::types::NotThreadSafe,
}

impl IdleGuard<'_> {
    fn nobjs(&self) -> i32 {
        // SAFETY: By the type invariants this task may touch `cache`.
        unsafe { self.cache.nobjs() }
    }
}

impl Drop for IdleGuard<'_> {
    fn drop(&mut self) {
        // Release: the owner's next topup, which reads `busy` with acquire,
        // sees what this task did to the cache.
        self.cache.busy.store(false, Release);
        // SAFETY: By the type invariants this task holds `lock`.
        unsafe { self.cache.unlock() };
    }
}

impl MmuMemoryCache {
    /// Creates an empty cache of `capacity` pages, each holding `init` in
    /// every 64-bit word (zeroed if 0; `None`: left as allocated), on
    /// `node` if given, for the vCPU `owner`.
    pub(crate) fn new(
        owner: VcpuId,
        init: Option<u64>,
        node: Node,
        capacity: i32,
        counters: Arc<PercpuCounters>,
        name: &'static CStr,
        key: Pin<&'static LockClassKey>,
    ) -> Result<impl PinInit<Self, Error>> {
        if capacity <= 0 {
            return Err(EINVAL);
        }
        let cache = c_cache(init, node);
        // INVARIANT: a page cache that starts empty, counted as zero in
        // `counters` and `free`; not in use, not held, nobody busy.
        Ok(try_pin_init!(Self {
            lock <- Opaque::ffi_init(|slot: *mut kernel::bindings::mutex| {
                // SAFETY: `slot` is valid for writes and pinned; `name` and
                // `key` are static, as lockdep requires.
                unsafe { kernel::bindings::__mutex_init(slot, name.as_char_ptr(), key.as_ptr()) }
            }),
            cache: UnsafeCell::new(cache),
            capacity,
            node,
            counters,
            owner,
            held: UnsafeCell::new(false),
            in_use: AtomicFlag::new(false),
            busy: AtomicFlag::new(false),
            free: Atomic::new(0),
            stats: CacheStats::new(),
        }))
    }

    fn lock(&self) {
        // SAFETY: By the type invariants, `lock` is an initialised mutex.
        unsafe { kernel::bindings::mutex_lock(self.lock.get()) };
    }

    /// # Safety
    ///
    /// The caller holds `lock`, taken in this task.
    unsafe fn unlock(&self) {
        // SAFETY: The caller holds the initialised mutex `lock`.
        unsafe { kernel::bindings::mutex_unlock(self.lock.get()) };
    }

    /// Locks the cache for a task other than its vCPU's callbacks; `None`
    /// if the mutex is taken, or (unlocked again) if those callbacks have
    /// the cache in use. Never sleeps: neither memory reclaim nor a debugfs
    /// reader ever waits for a vCPU, and they keep the mutex only for a
    /// bounded piece of work.
    ///
    /// The vCPU may wait for the mutex in `hold()`, holding `vcpu->mutex`
    /// and KVM's SRCU read lock: while it holds the guard, a caller must not
    /// wait for anything a vCPU may hold there (`vcpu->mutex`,
    /// `synchronize_srcu()` on the VM, `slots_lock`, `mmu_lock`).
    fn try_lock_idle(&self) -> Option<IdleGuard<'_>> {
        // SAFETY: By the type invariants, `lock` is an initialised mutex.
        if unsafe { kernel::bindings::mutex_trylock(self.lock.get()) } == 0 {
            return None;
        }
        // The `reclaim_in_use` mutant breaks the invariant on purpose: the
        // shrinker takes caches whose vCPU is in a fault.
        if cfg!(kmc_mutant = "reclaim_in_use") {
            self.busy.xchg(true, Full);
            return Some(IdleGuard {
                cache: self,
                _not_send: kernel::types::NotThreadSafe,
            });
        }
        // SAFETY: Locked just above, in this task.
        unsafe { self.idle_or_unlock() }
    }

    /// The guard of a task that locked the cache, if its vCPU does not have
    /// it in use; else unlocks it again.
    ///
    /// # Safety
    ///
    /// This task holds `lock`, and nothing but this call will unlock it.
    unsafe fn idle_or_unlock(&self) -> Option<IdleGuard<'_>> {
        // Full barrier, paired with the owner's in `hold()`: either the
        // owner sees `busy` and waits for the mutex, or this task sees
        // `in_use` and keeps off.
        self.busy.xchg(true, Full);
        // Acquire: what the owner did before clearing `in_use` is seen.
        if self.in_use.load(Acquire) {
            // Release, as the guard's drop: the owner may read this store.
            self.busy.store(false, Release);
            // SAFETY: This task holds `lock` (the caller's contract).
            unsafe { self.unlock() };
            return None;
        }
        // INVARIANT: `lock` held, `busy` set, `in_use` found clear after it.
        Some(IdleGuard {
            cache: self,
            _not_send: kernel::types::NotThreadSafe,
        })
    }

    /// # Safety
    ///
    /// The caller may touch `cache` (type invariants).
    unsafe fn nobjs(&self) -> i32 {
        // SAFETY: By the caller's contract.
        unsafe { (*self.cache.get()).nobjs }
    }

    /// Adds `delta` to the node counter of each of the objects `from..to`,
    /// once per run of objects on the same node (usually one run).
    ///
    /// Returns how many of them are not on the cache's node (0 for a
    /// cache without one).
    ///
    /// # Safety
    ///
    /// The caller may touch `cache`, which holds at least `to` objects.
    unsafe fn add_to_node_counters(&self, from: i32, to: i32, delta: i64) -> u64 {
        // SAFETY: By the caller's contract.
        let objects = unsafe { (*self.cache.get()).objects };
        let mut run: Option<(usize, i64)> = None;
        let mut off_node = 0;
        for i in from..to {
            // CAST: `0 <= i < nobjs`, a small non-negative `int`.
            // SAFETY: By the caller's contract `i` is below `nobjs`: a valid
            // object, a page of the direct map.
            let node = unsafe { page_nid(*objects.add(i as usize)) };
            off_node += u64::from(self.node.is_some_and(|want| want.index() != node));
            run = match run {
                Some((n, sum)) if n == node => Some((n, sum + delta)),
                Some((n, sum)) => {
                    self.counters.add(n, sum);
                    Some((node, delta))
                }
                None => Some((node, delta)),
            };
        }
        if let Some((n, sum)) = run {
            self.counters.add(n, sum);
        }
        off_node
    }

    /// Whether `cb` is a callback of the vCPU that owns the cache; a
    /// callback of another one gets a WARN.
    #[inline]
    fn is_owner<C>(&self, cb: &VcpuCallback<C>) -> bool {
        !kernel::warn_on!(cb.vcpu() != self.owner)
    }

    /// Whether the owner's callback `cb` has the cache in use: `false` for a
    /// callback of another vCPU.
    #[inline]
    fn held_by<C>(&self, cb: &VcpuCallback<C>) -> bool {
        // SAFETY: Only callbacks of the owner (checked first), one at a
        // time, access `held` while the cache is shared.
        self.is_owner(cb) && unsafe { *self.held.get() }
    }

    /// Puts the cache in use for the owner's callbacks, waiting for another
    /// task that may be touching it.
    ///
    /// # Safety
    ///
    /// The caller is a callback of the owner, and the cache is not held.
    #[inline]
    unsafe fn hold(&self) {
        // SAFETY: The caller is a callback of the owner.
        unsafe { *self.held.get() = true };
        // Full barrier, paired with the one in `idle_or_unlock()`.
        self.in_use.xchg(true, Full);
        // Acquire: what a task that held the mutex did is seen.
        if self.busy.load(Acquire) {
            // It may not have seen `in_use`: wait until it is done. Tasks
            // that lock the mutex after this see `in_use` and keep off.
            self.lock();
            // SAFETY: Taken just above, in this task.
            unsafe { self.unlock() };
        }
        // INVARIANT: `in_use` is set and everyone who may touch the cache
        // from now on has seen it: the owner's callbacks have the cache.
    }

    /// Makes at least `min` objects available and keeps the cache in use by
    /// its vCPU's callbacks until [`Self::release`], so that nobody else can
    /// empty it between the topup and the allocations that follow. May
    /// sleep. On any error but `EINVAL` the cache is held all the same: call
    /// `release()` regardless.
    ///
    /// Marked `#[inline]` for KVM's callback: most faults find the cache
    /// full (a 4 KiB fault takes a new table once per 2 MiB it maps), and
    /// then they run only this and `hold()`.
    #[inline]
    pub(crate) fn topup_and_hold(&self, cb: &VcpuCallback<MaySleep>, min: i32) -> Result {
        if min > self.capacity || !self.is_owner(cb) {
            return Err(EINVAL);
        }
        // SAFETY: `cb` is a callback of the owner (checked above), the only
        // code that accesses `held` while the cache is shared.
        if !unsafe { *self.held.get() } {
            // SAFETY: As above; not held.
            unsafe { self.hold() };
        }
        // SAFETY: The owner's callbacks have the cache in use.
        let before = unsafe { self.nobjs() };
        let ret = if before >= self.fill_level() {
            Ok(())
        } else {
            // SAFETY: As above.
            unsafe { self.refill(before, min) }
        };
        // The `early_release` mutant lets go of the cache before the
        // fault's allocations.
        if cfg!(kmc_mutant = "early_release") {
            self.release(cb);
        }
        ret
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
    /// only an error if fewer than `min` are then available. Out of line
    /// and cold, so that the inlined check of a full cache stays small.
    ///
    /// # Safety
    ///
    /// The owner's callbacks have the cache in use.
    #[cold]
    #[inline(never)]
    unsafe fn refill(&self, before: i32, min: i32) -> Result {
        let fill = self.fill_level();
        // SAFETY: `cache` is a valid page cache, which the owner's callbacks
        // have in use; capacity never changes for a cache.
        let ret = unsafe { bindings::__kvm_mmu_topup_memory_cache(self.cache.get(), fill, fill) };
        // SAFETY: As above.
        let nobjs = unsafe { self.nobjs() };
        // INVARIANT: a topup only adds objects, after the `before` there
        // were; the owner's callbacks, which have the cache in use, count
        // them.
        // SAFETY: As above; the cache holds `nobjs` objects.
        let fallbacks = unsafe { self.add_to_node_counters(before, nobjs, 1) };
        self.free.store(nobjs, Relaxed);
        if fallbacks > 0 {
            self.stats.fallbacks.add(fallbacks, Relaxed);
        }
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
    pub(crate) fn alloc_held<C>(&self, cb: &VcpuCallback<C>) -> Option<KvmPage> {
        // SAFETY: If the owner's callbacks hold the cache, it is in use.
        if !self.held_by(cb) || unsafe { self.nobjs() } == 0 {
            self.stats.misses.add(1, Relaxed);
            return None;
        }
        // SAFETY: `cache` is valid and non-empty, and the owner's callbacks
        // have it in use.
        let obj = unsafe { bindings::kvm_mmu_memory_cache_alloc(self.cache.get()) };
        // INVARIANT: one object left the cache, counted by the owner's
        // callbacks, which have it in use.
        if !cfg!(kmc_mutant = "uncounted_alloc") {
            // SAFETY: `obj` was a page of the cache.
            self.counters.add(unsafe { page_nid(obj) }, -1);
        }
        // SAFETY: As above.
        self.free.store(unsafe { self.nobjs() }, Relaxed);
        self.stats.allocs.add(1, Relaxed);
        // SAFETY: The cache holds order-0 pages from the page allocator, in
        // the direct map (a page cache, by the type invariants), and the one
        // just popped is no longer the cache's.
        NonNull::new(obj).map(|page| unsafe { KvmPage::from_raw(page) })
    }

    /// Ends what [`Self::topup_and_hold`] started; a no-op if the cache is
    /// not held. Marked `#[inline]` for KVM's callback, as the topup.
    #[inline]
    pub(crate) fn release(&self, cb: &VcpuCallback<MaySleep>) {
        if cfg!(kmc_mutant = "no_release") || !self.held_by(cb) {
            return;
        }
        // Release: a task that finds `in_use` clear sees what the owner's
        // callbacks did to the cache.
        self.in_use.store(false, Release);
        // SAFETY: `cb` is the owner's callback (`held_by()`).
        // INVARIANT: `held` is cleared after `in_use`.
        unsafe { *self.held.get() = false };
    }

    /// The exact number of cached objects if the cache is not in use; else
    /// `None` (its vCPU is in a fault, or the shrinker at work on it: the
    /// number is changing). Never sleeps.
    pub(crate) fn nr_free_idle(&self) -> Option<i32> {
        self.try_lock_idle().map(|guard| guard.nobjs())
    }

    /// Frees up to `budget` of the cache's pages that are on `node`, unless
    /// the cache is in use or another task has its mutex: then `None`. Never
    /// sleeps: for the shrinker.
    pub(crate) fn reclaim(&self, node: usize, budget: usize) -> Option<Reclaimed> {
        let guard = self.try_lock_idle()?;
        let nobjs = guard.nobjs();
        let mut done = Reclaimed::default();
        // SAFETY: This task may touch the cache (`guard`).
        let objects = unsafe { (*self.cache.get()).objects };
        let mut kept = 0;
        for i in 0..nobjs {
            // CAST: `0 <= i < nobjs`, a small non-negative `int`.
            // SAFETY: `i` is below `nobjs`: a valid object, a page of the
            // direct map, which this task may touch (`guard`).
            let obj = unsafe { *objects.add(i as usize) };
            // SAFETY: As above.
            let obj_node = unsafe { page_nid(obj) };
            // The `reclaim_any_node` mutant frees pages of every node.
            let on_node = obj_node == node || cfg!(kmc_mutant = "reclaim_any_node");
            if on_node {
                done.scanned += 1;
            }
            if done.freed < budget && on_node {
                done.freed += 1;
                // SAFETY: A cached page is an unused order-0 page from the
                // page allocator, which no one else refers to; it leaves the
                // cache below.
                unsafe { kernel::bindings::free_pages(obj as usize, 0) };
                // The `uncounted_reclaim` mutant forgets to count it.
                if !cfg!(kmc_mutant = "uncounted_reclaim") {
                    self.counters.add(obj_node, -1);
                }
            } else {
                // CAST: `kept <= i`, as above.
                // SAFETY: `kept <= i < nobjs`, within the array.
                unsafe { *objects.add(kept as usize) = obj };
                kept += 1;
            }
        }
        // INVARIANT: the freed pages left `objects` and their node's counter
        // together, under `guard`.
        // SAFETY: As above.
        unsafe { (*self.cache.get()).nobjs = kept };
        self.free.store(kept, Relaxed);
        drop(guard);
        Some(done)
    }

    /// The number of cached objects, as last recorded: may be stale.
    pub(crate) fn nr_free_racy(&self) -> i32 {
        self.free.load(Relaxed)
    }

    /// Whether the cache's vCPU has it in use (a fault or root load in
    /// progress): a racy read, for debugfs.
    pub(crate) fn in_use(&self) -> bool {
        self.in_use.load(Relaxed)
    }

    /// The most objects the cache holds.
    pub(crate) fn capacity(&self) -> i32 {
        self.capacity
    }

    /// The node the cache's pages are for, if any.
    pub(crate) fn node(&self) -> Node {
        self.node
    }
}

#[pinned_drop]
impl PinnedDrop for MmuMemoryCache {
    fn drop(self: Pin<&mut Self>) {
        // SAFETY: Dropping, the cache is no longer shared: no callback runs.
        let held = unsafe { *self.held.get() };
        // A topup never released is a bug in the caller's pairing. No
        // callback runs any more (`Pin<&mut Self>`) and the pages KVM took
        // are KVM's: the rest can be freed all the same.
        kernel::warn_on!(held);
        // SAFETY: Not shared any more (`Pin<&mut Self>`): this task may
        // touch the cache.
        let nobjs = unsafe { self.nobjs() };
        // INVARIANT: the cache loses all its objects just below.
        // SAFETY: As above; the cache holds `nobjs` objects.
        unsafe { self.add_to_node_counters(0, nobjs, -1) };
        // SAFETY: As above; KVM's helper frees every object.
        unsafe { bindings::kvm_mmu_free_memory_cache(self.cache.get()) };
        // SAFETY: `lock` is initialised and unlocked, and never used again.
        unsafe { kernel::bindings::mutex_destroy(self.lock.get()) };
    }
}
