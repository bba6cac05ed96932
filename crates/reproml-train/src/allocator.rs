//! The memory allocator of every program that trains: mimalloc, set to keep
//! the memory a training step frees for the next one.
//!
//! Why: a step allocates and frees dozens of tensors of 1–70 MB (the
//! output of VGG-X's second convolution is 67 MB). glibc's malloc
//! maps every block over 32 MiB afresh and unmaps it on free, so each step
//! paid for page faults and for the kernel zeroing the pages again: 21–29 %
//! of a VGG-X step under `perf`. mimalloc with purging off reuses the
//! memory, and 2 MiB pages (transparent huge pages, where the kernel allows
//! them) cut the faults that remain. VGG-X went from about 24 to 33
//! images/s at 1 thread (docs/performance.md). The price: a training
//! process keeps its peak memory until it exits.
//!
//! Declared here, in the only crate with burn, so that every binary that
//! links the engine (the `reproml` CLI, the benchmarks, the tests) gets it.
//! `reproml` keeps freed memory in every command but `server`, which runs
//! for days and should give memory back.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay`, from `enum mi_option_e` in its
/// `include/mimalloc.h` (the same in v2 and v3; the crate does not name it).
const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Keeps freed memory in the process for reuse instead of returning it to
/// the OS, and allows 2 MiB pages.
///
/// # Safety
///
/// Call it before the process starts a second thread (first thing in
/// `main`): mimalloc's options are plain globals that every allocating
/// thread reads without synchronisation.
#[allow(unsafe_code)]
pub unsafe fn keep_freed_memory() {
    // SAFETY: `mi_option_set` stores a value in mimalloc's option table and
    // has no precondition beyond a valid option number (both are);
    // the caller guarantees that no other thread reads the table meanwhile.
    unsafe {
        libmimalloc_sys::mi_option_set(PURGE_DELAY, -1);
        libmimalloc_sys::mi_option_set(libmimalloc_sys::mi_option_large_os_pages, 1);
    }
}
