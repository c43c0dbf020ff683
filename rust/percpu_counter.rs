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

/// An array of `struct percpu_counter`, initialised together by one
/// `__percpu_counter_init_many()`.
///
/// # Invariants
///
/// `counters` holds `counters.len()` (at least one) counters initialised by
/// `__percpu_counter_init_many()`, destroyed only when `self` is dropped.
/// The vector is never resized: the counters never move (each is on the
/// kernel's list of counters for CPU hotplug).
pub(crate) struct PercpuCounters {
    counters: KVec<Opaque<bindings::percpu_counter>>,
}

// SAFETY: The percpu_counter functions synchronise concurrent callers
// themselves (per-CPU updates, a raw spinlock for folding and summing).
unsafe impl Send for PercpuCounters {}
// SAFETY: As for `Send`: every method takes `&self` and is safe to call
// concurrently.
unsafe impl Sync for PercpuCounters {}

impl PercpuCounters {
    /// Creates `n` counters starting at zero, with `key` as the lock class of
    /// their internal spinlocks.
    pub(crate) fn new(n: usize, key: Pin<&'static LockClassKey>) -> Result<Self> {
        let nr = u32::try_from(n).map_err(|_| EINVAL)?;
        if nr == 0 {
            return Err(EINVAL);
        }
        let mut counters = KVec::with_capacity(n, GFP_KERNEL)?;
        for _ in 0..n {
            counters.push(Opaque::uninit(), GFP_KERNEL)?;
        }
        // SAFETY: `counters` is `n` contiguous, writable counters, which do
        // not move from now on (the vector is never resized); `key` is a
        // static lock class, as lockdep requires.
        to_result(unsafe {
            bindings::__percpu_counter_init_many(
                Opaque::cast_into(counters.as_ptr()),
                0,
                kernel::bindings::GFP_KERNEL,
                nr,
                key.as_ptr(),
            )
        })?;
        // INVARIANT: the `n` counters were initialised just above.
        Ok(Self { counters })
    }

    /// The number of counters.
    pub(crate) fn len(&self) -> usize {
        self.counters.len()
    }

    /// Counter `i`, or `None` if `i` is out of range: a caller's bug, which
    /// gets a WARN.
    #[inline]
    fn counter(&self, i: usize) -> Option<*mut bindings::percpu_counter> {
        let counter = self.counters.get(i);
        if kernel::warn_on!(counter.is_none()) {
            return None;
        }
        counter.map(Opaque::get)
    }

    /// Adds `delta` (which may be negative) to counter `i`.
    #[inline]
    pub(crate) fn add(&self, i: usize, delta: i64) {
        let Some(counter) = self.counter(i) else {
            return;
        };
        // SAFETY: `percpu_counter_batch` is a valid, aligned `int`, which CPU
        // hotplug may rewrite at any time with a plain store that does not
        // tear: read it once, like READ_ONCE(); any value is a valid batch.
        let batch =
            unsafe { Atomic::from_ptr(&raw mut bindings::percpu_counter_batch) }.load(Relaxed);
        // SAFETY: By the type invariants, the counter is initialised.
        unsafe { bindings::percpu_counter_add_batch(counter, delta, batch) };
    }

    /// The exact value of counter `i`, folding every CPU's pending delta
    /// (0 if `i` is out of range).
    pub(crate) fn sum(&self, i: usize) -> i64 {
        self.counter(i).map_or(0, |c| {
            // SAFETY: By the type invariants, the counter is initialised.
            unsafe { bindings::__percpu_counter_sum(c) }
        })
    }

    /// Counter `i` without the CPUs' pending deltas, at least 0, as
    /// `percpu_counter_read_positive()`: O(1), off by less than the batch
    /// on each CPU (0 if `i` is out of range).
    pub(crate) fn read_positive(&self, i: usize) -> i64 {
        self.counter(i).map_or(0, |c| {
            // SAFETY: By the type invariants, the counter is initialised.
            unsafe { bindings::kmc_percpu_counter_read_positive(c) }
        })
    }

    /// The exact sum of all counters.
    pub(crate) fn sum_all(&self) -> i64 {
        (0..self.len()).map(|i| self.sum(i)).sum()
    }
}

impl Drop for PercpuCounters {
    fn drop(&mut self) {
        // CAST: the length fitted in a `u32` when the counters were created.
        let nr = self.counters.len() as u32;
        // SAFETY: By the type invariants the counters are initialised; they
        // are destroyed once, here, as nothing can use them after drop.
        unsafe {
            bindings::percpu_counter_destroy_many(Opaque::cast_into(self.counters.as_ptr()), nr)
        };
    }
}
