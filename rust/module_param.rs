// SPDX-License-Identifier: GPL-2.0

//! A `u32` module parameter restricted to a range and readable in sysfs.
//!
//! C header: [`include/linux/moduleparam.h`](srctree/include/linux/moduleparam.h)
//!
//! The `module!` macro's parameters do not appear under
//! `/sys/module/<module>/parameters/` and take any value of their type; this
//! one is shown there read-only (0444) and refuses anything but a number in
//! `MIN..=MAX` with `EINVAL`, through the kernel's own
//! `param_set_uint_minmax()`. Declare it with [`ranged_u32_param!`].

use core::cell::UnsafeCell;
use kernel::prelude::*;

/// The storage of a ranged `u32` parameter.
///
/// # Invariants
///
/// `value` is written only by the kernel's parameter parser, while it parses
/// the module's load arguments, before module init runs (the parameter is
/// read-only in sysfs); afterwards it is only read.
pub(crate) struct RangedU32Param<const MIN: u32, const MAX: u32> {
    value: UnsafeCell<u32>,
}

// SAFETY: By the type invariants, all writes happen before module init and
// every later access is a read.
unsafe impl<const MIN: u32, const MAX: u32> Sync for RangedU32Param<MIN, MAX> {}

impl<const MIN: u32, const MAX: u32> RangedU32Param<MIN, MAX> {
    /// A parameter with value `default`.
    pub(crate) const fn new(default: u32) -> Self {
        Self {
            value: UnsafeCell::new(default),
        }
    }

    /// The value in force, within `MIN..=MAX`.
    pub(crate) fn get(&self) -> u32 {
        // SAFETY: By the type invariants the value is no longer written once
        // the module runs.
        unsafe { *self.value.get() }
    }

    /// The `arg` of the parameter's `struct kernel_param`.
    pub(crate) const fn as_arg(&self) -> *mut c_void {
        self.value.get().cast()
    }

    /// The parameter's operations, for its `struct kernel_param`.
    pub(crate) const fn ops(&self) -> *const kernel::bindings::kernel_param_ops {
        &Self::OPS
    }

    /// The parameter's operations: a range-checked set, a plain get.
    pub(crate) const OPS: kernel::bindings::kernel_param_ops = kernel::bindings::kernel_param_ops {
        flags: 0,
        set: Some(Self::set),
        get: Some(kernel::bindings::param_get_uint),
        free: None,
    };

    /// # Safety
    ///
    /// Called by the kernel's parameter parser with a NUL-terminated `val`
    /// and the parameter's `kp`, whose `arg` points to a `u32`.
    unsafe extern "C" fn set(
        val: *const c_char,
        kp: *const kernel::bindings::kernel_param,
    ) -> c_int {
        // SAFETY: The caller passes a valid string and parameter.
        let ret = unsafe { kernel::bindings::param_set_uint_minmax(val, kp, MIN, MAX) };
        // Too large for a u32 (ERANGE) is outside the range all the same.
        if ret < 0 {
            EINVAL.to_errno()
        } else {
            ret
        }
    }
}

/// `s` as the bytes of a `.modinfo` entry (`s` ends with its NUL).
pub(crate) const fn modinfo<const N: usize>(s: &str) -> [u8; N] {
    let bytes = s.as_bytes();
    let mut out = [0u8; N];
    let mut i = 0;
    while i < N {
        out[i] = bytes[i];
        i += 1;
    }
    out
}

/// Declares the static `$name`, a [`RangedU32Param`] module parameter named
/// `$param`, with its `modinfo` type and description.
macro_rules! ranged_u32_param {
    ($name:ident, $param:literal, $min:expr, $max:expr, $default:expr, $desc:literal) => {
        static $name: $crate::module_param::RangedU32Param<{ $min }, { $max }> =
            $crate::module_param::RangedU32Param::new($default);

        // The link sections are what `unsafe_code` objects to; only `$name`
        // and literals from the caller are expanded in here.
        #[allow(unsafe_code)]
        const _: () = {
            #[link_section = "__param"]
            #[used(compiler)]
            static PARAM: kernel::module_param::KernelParam =
                kernel::module_param::KernelParam::new(kernel::bindings::kernel_param {
                    name: kernel::str::as_char_ptr_in_const_context(kernel::c_str!($param)),
                    // The module's own `struct module`, set up by the kernel
                    // at load and alive until unload; only its address is
                    // taken here.
                    mod_: &raw mut kernel::bindings::__this_module,
                    ops: $name.ops(),
                    perm: 0o444,
                    level: -1,
                    flags: 0,
                    __bindgen_anon_1: kernel::bindings::kernel_param__bindgen_ty_1 {
                        arg: $name.as_arg(),
                    },
                });

            const TYPE: &str = concat!("parmtype=", $param, ":uint\0");
            #[link_section = ".modinfo"]
            #[used(compiler)]
            static PARMTYPE: [u8; TYPE.len()] = $crate::module_param::modinfo(TYPE);

            const DESC: &str = concat!("parm=", $param, ":", $desc, "\0");
            #[link_section = ".modinfo"]
            #[used(compiler)]
            static PARM: [u8; DESC.len()] = $crate::module_param::modinfo(DESC);
        };
    };
}
pub(crate) use ranged_u32_param;
