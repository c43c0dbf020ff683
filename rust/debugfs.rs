// SPDX-License-Identifier: GPL-2.0

//! Read-only debugfs files whose operations name this module as owner.
//!
//! The kernel crate's `debugfs` leaves `file_operations::owner` NULL, so an
//! open file holds no reference on the module: `rmmod` then succeeds, and a
//! later `close(2)` makes debugfs's proxy, which calls `release` even for a
//! removed file, read the unloaded module's `file_operations`. Here every
//! file shares one table owned by this module: the proxy's open takes a
//! module reference, and `rmmod` fails (`EAGAIN`) until the file is closed.
//!
//! A file's contents come from a show function and its data, through
//! `single_open()`; debugfs's proxy keeps a removal waiting for the reads in
//! progress, and fails later reads of a removed file with `EIO`.

use core::{
    ffi::{
        c_int,
        c_void, //
    },
    fmt,
    ptr::null_mut,
};
use kernel::{
    bindings,
    prelude::*,
    seq_file::SeqFile,
    sync::Arc, //
};

/// Shows a file's data.
pub(crate) type ShowFn<T> = fn(&T, &mut fmt::Formatter<'_>) -> fmt::Result;

/// A debugfs entry, removed with everything under it when dropped.
///
/// # Invariants
///
/// `dentry` is an entry this object created and removes, or an error or
/// NULL pointer (debugfs unavailable), which `debugfs_remove()` ignores.
/// `_parent` keeps the directory holding it alive: a parent's removal would
/// free this entry too.
struct Entry {
    dentry: *mut bindings::dentry,
    _parent: Option<Arc<Entry>>,
}

// SAFETY: A dentry may be removed from any thread; the parent is an `Arc`.
unsafe impl Send for Entry {}
// SAFETY: `Entry` offers no access through a shared reference but
// `dentry`'s value, which never changes.
unsafe impl Sync for Entry {}

impl Drop for Entry {
    fn drop(&mut self) {
        // SAFETY: By the type invariant, `dentry` is this entry's own, or an
        // error or NULL pointer, and its parent is still alive.
        unsafe { bindings::debugfs_remove(self.dentry) };
    }
}

/// A debugfs directory, removed with its contents when the last of it and
/// its files and subdirectories is dropped.
pub(crate) struct Dir(Arc<Entry>);

impl Dir {
    /// Creates `name` at debugfs's root.
    pub(crate) fn new(name: &CStr) -> Result<Self> {
        Self::create(name, None)
    }

    /// Creates `name` in this directory.
    pub(crate) fn subdir(&self, name: &CStr) -> Result<Self> {
        Self::create(name, Some(self.0.clone()))
    }

    fn create(name: &CStr, parent: Option<Arc<Entry>>) -> Result<Self> {
        let parent_dentry = parent.as_ref().map_or(null_mut(), |p| p.dentry);
        // SAFETY: `name` is NUL-terminated; `parent_dentry` is NULL (the
        // root) or the live entry of `parent`, or an error pointer, which
        // debugfs passes back.
        let dentry = unsafe { bindings::debugfs_create_dir(name.as_char_ptr(), parent_dentry) };
        // INVARIANT: `dentry` was just created, under `parent`, kept alive.
        Ok(Self(Arc::new(
            Entry {
                dentry,
                _parent: parent,
            },
            GFP_KERNEL,
        )?))
    }

    /// Creates the file `name`, readable by root only, whose contents
    /// `show` writes from `data`.
    pub(crate) fn show_file<T: Sync>(
        &self,
        name: &CStr,
        data: T,
        show: ShowFn<T>,
    ) -> Result<File<T>> {
        let node = KBox::new(
            Node {
                show_seq: show_node::<T>,
                show,
                data,
            },
            GFP_KERNEL,
        )?;
        let parent = self.0.clone();
        // SAFETY: `name` is NUL-terminated, `parent.dentry` is live (or an
        // error pointer, passed back). `OPERATIONS` is static, and it reads
        // `i_private` as a `Node` header: `node` is one, and stays alive
        // and in place until the file is removed (the fields of `File`
        // drop in order).
        let dentry = unsafe {
            bindings::debugfs_create_file_full(
                name.as_char_ptr(),
                0o400,
                parent.dentry,
                core::ptr::from_ref(&*node).cast_mut().cast(),
                core::ptr::null(),
                &OPERATIONS.0,
            )
        };
        Ok(File {
            // INVARIANT: `dentry` was just created in `parent`.
            _entry: Entry {
                dentry,
                _parent: Some(parent),
            },
            _node: node,
        })
    }
}

/// A file from [`Dir::show_file`], removed when dropped.
pub(crate) struct File<T> {
    // Dropped first: the removal waits for the reads in progress, which use
    // `_node`.
    _entry: Entry,
    _node: KBox<Node<T>>,
}

/// What a file's `i_private` points to: a type-erased show first (all
/// files share one operations table), then the file's own.
#[repr(C)]
struct Node<T> {
    show_seq: unsafe fn(*const c_void, &SeqFile),
    show: ShowFn<T>,
    data: T,
}

/// Shows `node` into `m`.
///
/// # Safety
///
/// `node` points to a live `Node<T>`.
unsafe fn show_node<T>(node: *const c_void, m: &SeqFile) {
    // SAFETY: By the safety requirements.
    let node = unsafe { &*node.cast::<Node<T>>() };
    m.call_printf(format_args!("{}", Shown(node)));
}

struct Shown<'a, T>(&'a Node<T>);

impl<T> fmt::Display for Shown<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        (self.0.show)(&self.0.data, f)
    }
}

/// `seq_file`'s show for a file of `single_open()`.
///
/// # Safety
///
/// `m` is the `seq_file` of a file opened by [`open`], in a read.
unsafe extern "C" fn seq_show(m: *mut bindings::seq_file, _v: *mut c_void) -> c_int {
    // SAFETY: `m` is valid; `single_open()` set `private` to the file's
    // `i_private`, a `Node` header, alive during the read (debugfs's proxy
    // holds off the file's removal meanwhile).
    let node = unsafe { (*m).private }.cast_const();
    // SAFETY: Every `Node` starts with its `show_seq` (`repr(C)`).
    let show_seq = unsafe { *node.cast::<unsafe fn(*const c_void, &SeqFile)>() };
    // SAFETY: `node` is live (above); the read is the only user of `m`.
    unsafe { show_seq(node, SeqFile::from_raw(m)) };
    0
}

/// Opens a file of [`Dir::show_file`].
///
/// # Safety
///
/// Called by debugfs's proxy for a file created with [`OPERATIONS`].
unsafe extern "C" fn open(inode: *mut bindings::inode, file: *mut bindings::file) -> c_int {
    // SAFETY: `inode` and `file` are valid, `i_private` is the file's `Node`.
    unsafe { bindings::single_open(file, Some(seq_show), (*inode).i_private) }
}

/// The operations of every file of [`Dir::show_file`].
struct Operations(bindings::file_operations);

// SAFETY: The table is never written after its initialization.
unsafe impl Sync for Operations {}

static OPERATIONS: Operations = Operations(bindings::file_operations {
    // Only the address of this module's `struct module` is taken.
    #[cfg(not(kmc_mutant = "debugfs_no_owner"))]
    owner: (&raw const bindings::__this_module).cast_mut(),
    // The `debugfs_no_owner` mutant is the kernel crate's table: no owner.
    #[cfg(kmc_mutant = "debugfs_no_owner")]
    owner: null_mut(),
    open: Some(open),
    read: Some(bindings::seq_read),
    llseek: Some(bindings::seq_lseek),
    release: Some(bindings::single_release),
    // SAFETY: All-zero is a valid `file_operations`: no method.
    ..unsafe { core::mem::zeroed() }
});
