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
//! `single_open()`. debugfs's proxy holds off a removal while an open, read
//! or seek is in progress (so the data may go once the removal returns),
//! and fails later reads of a removed file with `EIO`; its close still runs
//! `single_release()`, which does not use the data.
//!
//! Errors of debugfs itself (not configured, a name taken) are ignored, as
//! the kernel crate's `debugfs` does: the entry is then an error pointer,
//! which debugfs passes back from any creation under it and which removal
//! ignores. The module needs `CONFIG_DEBUG_FS=y` to link.
//!
//! A show that fails (it could not allocate) fails the read with `ENOMEM`.

use core::{
    cell::Cell,
    ffi::{
        c_int,
        c_void, //
    },
    fmt,
    ptr::{
        null_mut,
        NonNull, //
    },
};
use kernel::{
    bindings,
    error::from_err_ptr,
    prelude::*,
    seq_file::SeqFile,
    sync::Arc, //
};

/// Shows a file's data; an error only where it could not allocate.
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

// SAFETY: A dentry may be removed from any thread in process context (the
// only context that drops an `Entry`); the parent is an `Arc`.
unsafe impl Send for Entry {}
// SAFETY: Through a shared reference `Entry` gives only `dentry`'s value,
// which never changes; children created concurrently under it are
// serialised by debugfs (the parent inode's lock).
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

    /// Whether debugfs created the directory: it is not there without
    /// debugfs, or when its name was taken.
    pub(crate) fn exists(&self) -> bool {
        from_err_ptr(self.0.dentry).is_ok_and(|dentry| !dentry.is_null())
    }

    fn create(name: &CStr, parent: Option<Arc<Entry>>) -> Result<Self> {
        let parent_dentry = parent.as_ref().map_or(null_mut(), |p| p.dentry);
        // SAFETY: `name` is NUL-terminated (debugfs copies it);
        // `parent_dentry` is NULL (the root), the live entry of `parent`, or
        // an error pointer, which debugfs passes back.
        let dentry = unsafe { bindings::debugfs_create_dir(name.as_char_ptr(), parent_dentry) };
        // INVARIANT: `dentry` was just created under `parent`, which is kept
        // alive, or is an error pointer.
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
    ///
    /// `T` is `'static`: a `File` may be leaked, and its file then read.
    /// A leaked `File` or `Dir` outlives the module: never leak one.
    pub(crate) fn show_file<T: Sync + 'static>(
        &self,
        name: &CStr,
        data: T,
        show: ShowFn<T>,
    ) -> Result<File<T>> {
        Ok(self.publish(name, FileData::new(data, show)?))
    }

    /// Creates the file `name` showing `data`, and cannot fail (a debugfs
    /// error leaves the file out, as everywhere in debugfs): for module
    /// init, which must publish its files only after its last fallible
    /// step, since a file opened while init fails would be closed through
    /// the freed module.
    pub(crate) fn publish<T: Sync + 'static>(&self, name: &CStr, data: FileData<T>) -> File<T> {
        let parent = self.0.clone();
        let node = NonNull::from(KBox::leak(data.0));
        // SAFETY: `name` is NUL-terminated (debugfs copies it),
        // `parent.dentry` is live (or an error pointer, passed back).
        // `OPERATIONS` is static, and reads `i_private` as a `Header`:
        // `node` starts with one, and stays alive and in place until the
        // file is removed (`File`'s invariant).
        let dentry = unsafe {
            bindings::debugfs_create_file_full(
                name.as_char_ptr(),
                0o400,
                parent.dentry,
                node.as_ptr().cast(),
                core::ptr::null(),
                &OPERATIONS.0,
            )
        };
        // INVARIANT: `dentry` was just created in `parent` (or is an error
        // pointer), its `i_private` is `node`, a leaked box that `drop()`
        // frees after removing the file.
        File {
            entry: Some(Entry {
                dentry,
                _parent: Some(parent),
            }),
            node,
        }
    }
}

/// What a file will show, allocated ahead of [`Dir::publish`].
pub(crate) struct FileData<T>(KBox<ShowData<T>>);

impl<T> FileData<T> {
    /// `data`, shown by `show`.
    pub(crate) fn new(data: T, show: ShowFn<T>) -> Result<Self> {
        Ok(Self(KBox::new(
            ShowData {
                header: Header {
                    show_seq: show_data::<T>,
                },
                show,
                data,
            },
            GFP_KERNEL,
        )?))
    }
}

/// A file from [`Dir::show_file`] or [`Dir::publish`], removed when dropped.
///
/// Dropping it waits for the shows in progress: a show must not take a lock
/// held where its `File` is dropped.
///
/// # Invariants
///
/// `node`, the `i_private` of `entry`'s dentry, is a leaked `KBox` that
/// only `drop()` frees, after removing the file (`entry` is `Some` until
/// then): the removal waits for the shows in progress. It is never moved:
/// readers hold pointers into it.
pub(crate) struct File<T> {
    entry: Option<Entry>,
    node: NonNull<ShowData<T>>,
}

// SAFETY: `File` owns `*node` as a `KBox` would, so it may be dropped from
// any thread if `T` is `Send`; meanwhile the shows read `&T` from any
// thread, hence `T: Sync` too (as `publish()` requires).
unsafe impl<T: Send + Sync> Send for File<T> {}
// SAFETY: Through a shared `File` nothing is reached; the shows read `T`
// from any thread, hence `T: Sync` where files are created.
unsafe impl<T: Sync> Sync for File<T> {}

impl<T> Drop for File<T> {
    fn drop(&mut self) {
        // Removes the file, waiting for the shows in progress.
        drop(self.entry.take());
        // SAFETY: By the type invariant `node` came from `KBox::leak`,
        // and nothing reads it any more: its file is gone.
        drop(unsafe { KBox::from_raw(self.node.as_ptr()) });
    }
}

/// Shows the file whose `ShowData` starts with this into `m`; `false` if
/// the show failed.
///
/// # Safety
///
/// The pointer is to a live `ShowData` whose header this is.
type ErasedShow = unsafe fn(*const Header, &SeqFile) -> bool;

/// What all files' `i_private` start with: they share one operations table.
#[repr(C)]
struct Header {
    show_seq: ErasedShow,
}

/// A file's `i_private`.
#[repr(C)]
struct ShowData<T> {
    header: Header,
    show: ShowFn<T>,
    data: T,
}

/// Shows `header`'s file into `m`.
///
/// # Safety
///
/// `header` is the header of a live `ShowData<T>`.
unsafe fn show_data<T>(header: *const Header, m: &SeqFile) -> bool {
    // SAFETY: By the safety requirements; `header` is its first field
    // (`repr(C)`).
    let data = unsafe { &*header.cast::<ShowData<T>>() };
    let failed = Cell::new(false);
    m.call_printf(format_args!("{}", Shown(data, &failed)));
    !failed.get()
}

/// A file's show, and whether it failed: `%pA` drops the error.
struct Shown<'a, T>(&'a ShowData<T>, &'a Cell<bool>);

impl<T> fmt::Display for Shown<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let result = (self.0.show)(&self.0.data, f);
        if result.is_err() {
            self.1.set(true);
        }
        result
    }
}

/// `seq_file`'s show for a file of `single_open()`.
///
/// # Safety
///
/// `m` is the `seq_file` of a file opened by [`open`], in a read.
unsafe extern "C" fn seq_show(m: *mut bindings::seq_file, _v: *mut c_void) -> c_int {
    // SAFETY: `m` is valid; `single_open()` set `private` to the file's
    // `i_private`, the `Header` of its `ShowData`, alive during the read or
    // seek (debugfs's proxy holds off the file's removal meanwhile).
    let header = unsafe { (*m).private }.cast::<Header>().cast_const();
    // SAFETY: As above.
    let show_seq = unsafe { (*header).show_seq };
    // SAFETY: `header` is live (above); the read is the only user of `m`.
    if unsafe { show_seq(header, SeqFile::from_raw(m)) } {
        0
    } else {
        // A show fails only where it cannot allocate (a copy of a list):
        // the read fails, rather than returning a short file.
        ENOMEM.to_errno()
    }
}

/// Opens a file of [`Dir::publish`].
///
/// # Safety
///
/// Called by debugfs's proxy for a file created with [`OPERATIONS`].
unsafe extern "C" fn open(inode: *mut bindings::inode, file: *mut bindings::file) -> c_int {
    // SAFETY: `inode` and `file` are valid. `i_private` is the file's
    // `ShowData`, alive: debugfs's proxy holds off the removal during the
    // open, and `single_open()` only stores the pointer.
    unsafe { bindings::single_open(file, Some(seq_show), (*inode).i_private) }
}

/// The operations of every file of [`Dir::publish`].
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
    // Not `seq_read_iter`: debugfs's proxy forwards `read` only.
    read: Some(bindings::seq_read),
    llseek: Some(bindings::seq_lseek),
    release: Some(bindings::single_release),
    ..pin_init::zeroed()
});
