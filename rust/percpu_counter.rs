// SPDX-License-Identifier: GPL-2.0

//! Per-CPU counters: cheap concurrent updates, an approximate read and an
//! exact (slower) sum.
//!
//! C header: [`include/linux/percpu_counter.h`](srctree/include/linux/percpu_counter.h)

use crate::bindings;
use kernel::{
    error::to_result,
    prelude::*,
    sync::{
        atomic::{
            Atomic,
            Relaxed, //
        },
        LockClassKey, //
    },
    types::Opaque, //
};

/// A `struct percpu_counter`.
///
/// # Invariants
///
/// `inner` holds a counter initialised by `__percpu_counter_init_many()`,
/// destroyed only when `self` is dropped.
#[pin_data(PinnedDrop)]
pub(crate) struct PercpuCounter {
    #[pin]
    inner: Opaque<bindings::percpu_counter>,
}

// SAFETY: The percpu_counter functions synchronise concurrent callers
// themselves (per-CPU updates, a raw spinlock for folding and summing).
unsafe impl Send for PercpuCounter {}
// SAFETY: As for `Send`: every method takes `&self` and is safe to call
// concurrently.
unsafe impl Sync for PercpuCounter {}

impl PercpuCounter {
    /// Creates a counter starting at zero, with `key` as the lock class of
    /// its internal spinlock.
    pub(crate) fn new(key: Pin<&'static LockClassKey>) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            inner <- Opaque::try_ffi_init(|slot: *mut bindings::percpu_counter| {
                // SAFETY: `slot` is valid for writes and pinned; `key` is a
                // static lock class, as lockdep requires.
                to_result(unsafe {
                    bindings::__percpu_counter_init_many(
                        slot,
                        0,
                        kernel::bindings::GFP_KERNEL,
                        1,
                        key.as_ptr(),
                    )
                })
            }),
        })
        // INVARIANT: `inner` was initialised above, or the init failed.
    }

    /// Adds `delta` (which may be negative).
    pub(crate) fn add(&self, delta: i64) {
        // SAFETY: `percpu_counter_batch` is a valid, aligned `int`, which CPU
        // hotplug may rewrite at any time with a plain store that does not
        // tear: read it once, like READ_ONCE(); any value is a valid batch.
        let batch =
            unsafe { Atomic::from_ptr(&raw mut bindings::percpu_counter_batch) }.load(Relaxed);
        // SAFETY: By the type invariants, `inner` is an initialised counter.
        unsafe { bindings::percpu_counter_add_batch(self.inner.get(), delta, batch) };
    }

    /// The exact value, folding every CPU's pending delta.
    pub(crate) fn sum(&self) -> i64 {
        // SAFETY: By the type invariants, `inner` is an initialised counter.
        unsafe { bindings::__percpu_counter_sum(self.inner.get()) }
    }
}

#[pinned_drop]
impl PinnedDrop for PercpuCounter {
    fn drop(self: Pin<&mut Self>) {
        // SAFETY: By the type invariants `inner` is initialised; it is
        // destroyed once, here, as nothing can use it after drop.
        unsafe { bindings::percpu_counter_destroy_many(self.inner.get(), 1) };
    }
}
