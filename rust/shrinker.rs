// SPDX-License-Identifier: GPL-2.0

//! Shrinkers: callbacks through which memory reclaim frees cached objects.
//!
//! C header: [`include/linux/shrinker.h`](srctree/include/linux/shrinker.h)
//!
//! Shaped after the Rust shrinker abstraction proposed upstream (a count
//! that can say "empty", a scan that can say "stop", a shrink control), but
//! the registration is a `PinInit` that holds the shrinker's data in place
//! rather than a `ForeignOwnable` pointer: the data lives exactly as long as
//! the shrinker, with no reference to drop from a callback.

use crate::bindings;
use core::{
    marker::{
        PhantomData,
        PhantomPinned, //
    },
    ptr::NonNull, //
};
use kernel::{
    ffi::c_ulong,
    prelude::*, //
};

/// `SHRINK_STOP`, which bindgen does not evaluate (checked by `helpers.c`).
const SHRINK_STOP: c_ulong = !0;
/// `SHRINK_EMPTY`, as `SHRINK_STOP`.
const SHRINK_EMPTY: c_ulong = !0 - 1;

/// The callbacks of a shrinker.
///
/// Reclaim may call them from any task that allocates memory, at any time
/// between registration and drop, several at once: they must not sleep for
/// long, and must never wait for a lock that may be held across an
/// allocation (they should trylock).
pub(crate) trait Shrinker: Sync {
    /// How many objects of node `sc.nid()` could be freed.
    fn count_objects(&self, sc: &ShrinkControl<'_>) -> CountObjects;

    /// Frees up to `sc.nr_to_scan()` objects of node `sc.nid()`, setting
    /// [`ShrinkControl::set_nr_scanned`] to those it looked at.
    fn scan_objects(&self, sc: &mut ShrinkControl<'_>) -> ScanObjects;
}

/// What [`Shrinker::count_objects`] returns. Never `SHRINK_STOP`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CountObjects(c_ulong);

impl CountObjects {
    /// Nothing is cached: reclaim may skip the shrinker (`SHRINK_EMPTY`).
    pub(crate) const EMPTY: Self = Self(SHRINK_EMPTY);

    /// Objects are cached, but none can be freed now (a count of 0). For a
    /// shrinker that is not memcg-aware, reclaim treats it as [`Self::EMPTY`].
    #[expect(dead_code)]
    pub(crate) const NONE_NOW: Self = Self(0);

    /// The largest count: reclaim doubles a count without checking for
    /// overflow.
    const MAX: c_ulong = c_ulong::MAX / 2;

    /// `n` objects could be freed (0: none now, see [`Self::NONE_NOW`]).
    pub(crate) fn new(n: u64) -> Self {
        Self(c_ulong::try_from(n).unwrap_or(Self::MAX).min(Self::MAX))
    }
}

/// What [`Shrinker::scan_objects`] returns. Never `SHRINK_EMPTY`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ScanObjects(c_ulong);

impl ScanObjects {
    /// No progress is possible now: reclaim stops calling the shrinker for
    /// this pass (`SHRINK_STOP`).
    pub(crate) const STOP: Self = Self(SHRINK_STOP);

    /// The most a scan can report freed: below both sentinels.
    const MAX: c_ulong = SHRINK_EMPTY - 1;

    /// `n` objects were freed.
    pub(crate) fn freed(n: usize) -> Self {
        Self(n.min(Self::MAX))
    }
}

/// What reclaim asks of a shrinker: a `struct shrink_control`. (Its
/// `gfp_mask` is not offered: a shrinker that neither sleeps, nor does I/O,
/// nor enters a file system can run under any of them.)
///
/// # Invariants
///
/// `ptr` is a valid `struct shrink_control` for `'a`, which only this
/// callback accesses meanwhile.
pub(crate) struct ShrinkControl<'a> {
    ptr: NonNull<bindings::shrink_control>,
    _p: PhantomData<&'a mut bindings::shrink_control>,
}

impl ShrinkControl<'_> {
    /// # Safety
    ///
    /// `ptr` is a valid `struct shrink_control` that only the caller
    /// accesses for the lifetime of the result.
    unsafe fn from_raw(ptr: NonNull<bindings::shrink_control>) -> Self {
        // INVARIANT: By the caller's contract.
        Self {
            ptr,
            _p: PhantomData,
        }
    }

    fn raw(&self) -> &bindings::shrink_control {
        // SAFETY: By the type invariants `ptr` is valid, and nothing else
        // writes it meanwhile.
        unsafe { self.ptr.as_ref() }
    }

    /// The node to count or free objects of: always 0 unless the shrinker
    /// is NUMA-aware (and the kernel is NUMA).
    pub(crate) fn nid(&self) -> usize {
        // A node id is never negative.
        usize::try_from(self.raw().nid).unwrap_or(0)
    }

    /// How many objects a scan should look at.
    pub(crate) fn nr_to_scan(&self) -> usize {
        self.raw().nr_to_scan
    }

    /// Records how many objects the scan looked at (freed or not): reclaim
    /// takes it off what it still asks of the shrinker. Not clamped to
    /// [`Self::nr_to_scan`].
    pub(crate) fn set_nr_scanned(&mut self, n: usize) {
        // SAFETY: By the type invariants `ptr` is valid and only this
        // callback accesses it.
        unsafe { (*self.ptr.as_ptr()).nr_scanned = n };
    }
}

/// Credits `pages` pages freed by a scan to the reclaim the current task is
/// doing, if any: pages freed outside the LRU count as its progress only
/// this way.
pub(crate) fn account_reclaimed_pages(pages: usize) {
    // SAFETY: Always safe to call: it only touches the current task's
    // reclaim state, if it has one.
    unsafe { bindings::kmc_account_reclaimed_pages(pages) };
}

/// Options of a shrinker, set before it is registered.
#[derive(Clone, Copy)]
pub(crate) struct Flags(u32);

impl Flags {
    /// Called once per node, with [`ShrinkControl::nid`] set.
    pub(crate) const NUMA_AWARE: Self = Self(bindings::KMC_SHRINKER_NUMA_AWARE);
}

/// A shrinker allocated by `shrinker_alloc()`, registered or not, freed on
/// drop.
///
/// # Invariants
///
/// `0` was returned by `shrinker_alloc()` and is freed only by `drop()`.
struct Allocated(NonNull<bindings::shrinker>);

impl Drop for Allocated {
    fn drop(&mut self) {
        // SAFETY: By the type invariants, allocated and not yet freed.
        // `shrinker_free()` unregisters a registered shrinker first and
        // returns once no callback runs or can start.
        unsafe { bindings::shrinker_free(self.0.as_ptr()) };
    }
}

/// A registered shrinker and its data `T`, whose callbacks reclaim calls.
///
/// # Invariants
///
/// Once initialised, `shrinker` is registered, its `private_data` points to
/// `data`, and its callbacks are [`count_objects::<T>`] and
/// [`scan_objects::<T>`]. Fields drop in declaration order: the shrinker is
/// freed (and its callbacks done) before `data` is dropped.
#[pin_data]
pub(crate) struct Registration<T: Shrinker> {
    shrinker: Allocated,
    #[pin]
    data: T,
    /// `data` is reachable by callbacks through a raw pointer: never move
    /// it, and never make a `&mut` to it, even if `T` is `Unpin`.
    #[pin]
    _pin: PhantomPinned,
}

// SAFETY: The registration may be dropped by any task (`shrinker_free()`
// is not tied to one); `T` is sent with it.
unsafe impl<T: Shrinker + Send> Send for Registration<T> {}
// SAFETY: A shared registration gives access to nothing but what `T`, which
// is `Sync`, gives its callbacks.
unsafe impl<T: Shrinker> Sync for Registration<T> {}

impl<T: Shrinker> Registration<T> {
    /// Allocates a shrinker named `name` (a string shown as it is, never
    /// used as a format), initialises `data` in place and registers the
    /// shrinker with it: reclaim may call `T`'s callbacks from then on.
    pub(crate) fn new(
        name: &'static CStr,
        flags: Flags,
        data: impl PinInit<T, Error>,
    ) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            // First: if `data` fails, the unregistered shrinker is freed.
            shrinker: {
                // SAFETY: `"%s"` with a NUL-terminated string: the name is
                // printed, never parsed as a format.
                let ptr = unsafe {
                    bindings::shrinker_alloc(flags.0, c"%s".as_char_ptr(), name.as_char_ptr())
                };
                // INVARIANT: returned by `shrinker_alloc()`.
                Allocated(NonNull::new(ptr).ok_or(ENOMEM)?)
            },
            data <- data,
            _pin: PhantomPinned,
            // Last, and infallible: nothing can fail once registered.
            _: {
                let data: *const T = &*data;
                let shrinker = shrinker.0.as_ptr();
                // SAFETY: `shrinker` is allocated and not yet registered:
                // these fields are this task's to set.
                unsafe {
                    (*shrinker).private_data = data.cast_mut().cast();
                    (*shrinker).count_objects = Some(count_objects::<T>);
                    (*shrinker).scan_objects = Some(scan_objects::<T>);
                }
                // SAFETY: The shrinker is fully set up; `data` is pinned in
                // place and dropped only after the shrinker is freed.
                unsafe { bindings::shrinker_register(shrinker) };
                // INVARIANT: registered with `data` and `T`'s callbacks.
            },
        })
    }
}

/// # Safety
///
/// Called by reclaim for a shrinker of a [`Registration<T>`] that is not
/// yet freed, with a valid `sc` that this call alone accesses.
unsafe extern "C" fn count_objects<T: Shrinker>(
    shrinker: *mut bindings::shrinker,
    sc: *mut bindings::shrink_control,
) -> c_ulong {
    // SAFETY: By the caller's contract and the `Registration` invariants,
    // `private_data` points to the live, pinned `T`.
    let data = unsafe { &*(*shrinker).private_data.cast::<T>() };
    // SAFETY: By the caller's contract `sc` is valid (so not NULL) and
    // this call's alone.
    let sc = unsafe { ShrinkControl::from_raw(NonNull::new_unchecked(sc)) };
    data.count_objects(&sc).0
}

/// # Safety
///
/// As for [`count_objects`].
unsafe extern "C" fn scan_objects<T: Shrinker>(
    shrinker: *mut bindings::shrinker,
    sc: *mut bindings::shrink_control,
) -> c_ulong {
    // SAFETY: As in `count_objects`.
    let data = unsafe { &*(*shrinker).private_data.cast::<T>() };
    // SAFETY: As in `count_objects`.
    let mut sc = unsafe { ShrinkControl::from_raw(NonNull::new_unchecked(sc)) };
    data.scan_objects(&mut sc).0
}
