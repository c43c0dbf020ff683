// SPDX-License-Identifier: GPL-2.0

//! Bindings for the KVM seam and the kernel types the kernel crate lacks.
//!
//! Generated at build time by `scripts/bindgen.sh` from
//! `rust/bindings_helper.h`, with the clang flags the kernel used for its own
//! bindings, so that layouts match the kernel the module is built against.
//! Types the kernel crate already binds are reused from `kernel::bindings`.
//!
//! C header: [`arch/x86/include/asm/kvm_host.h`](srctree/arch/x86/include/asm/kvm_host.h)

#![allow(
    clippy::all,
    clippy::undocumented_unsafe_blocks,
    dead_code,
    missing_docs,
    non_camel_case_types,
    non_upper_case_globals,
    non_snake_case,
    improper_ctypes,
    unreachable_pub,
    unsafe_op_in_unsafe_fn
)]

include!(env!("KMC_BINDINGS_RS"));
