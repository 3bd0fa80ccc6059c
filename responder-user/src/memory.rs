//! How the agent's memory goes back to the node after a burst.
//!
//! glibc's malloc is what every Rust binary here uses, and three of its
//! defaults cost a long-running agent most of its resident memory (measured
//! with `sync_measure`, 10,000 Services: 68–74 MB with the defaults):
//! - one arena per thread that ever allocated, up to eight per core: the
//!   watch tasks and the ownership loop run on whichever worker is free, so a
//!   list decoded on one arena is freed into it and stays there;
//! - freed memory in the middle of a heap stays resident until `malloc_trim`:
//!   the initial list of every Service and the first full computation leave
//!   tens of megabytes free but mapped, which the agent never needs again;
//! - large blocks (a page of the Service list, a hash table being grown) come
//!   from the heap once glibc has raised its mmap threshold, which it does
//!   after the first large block is freed: freed, they leave holes that later
//!   small allocations pin. A fixed threshold keeps them in mappings of their
//!   own, returned whole on free (10,000 Services: RSS 33–34 MiB instead of
//!   35–38, peak 34 MiB instead of 45).
//!
//! A different allocator (jemalloc, mimalloc) would do the same with its own
//! tuning and a C build on every CI run; these are two calls into the libc we
//! already link.

/// Arenas the agent's few threads share. Two keep the workers from
/// contending on one lock without one arena per thread.
const ARENAS: libc::c_int = 2;

/// Blocks from this size up get a mapping of their own.
const MMAP_THRESHOLD: libc::c_int = 64 * 1024;

/// Caps glibc's arenas and fixes its mmap threshold, each unless the
/// operator chose with `MALLOC_ARENA_MAX` / `MALLOC_MMAP_THRESHOLD_` (glibc
/// reads those itself). Call before the runtime starts its threads.
pub fn tune_malloc() {
    for (variable, parameter, value) in [
        ("MALLOC_ARENA_MAX", libc::M_ARENA_MAX, ARENAS),
        (
            "MALLOC_MMAP_THRESHOLD_",
            libc::M_MMAP_THRESHOLD,
            MMAP_THRESHOLD,
        ),
    ] {
        if std::env::var_os(variable).is_none() {
            // SAFETY: mallopt only sets a tunable; before other threads
            // exist no allocation races it.
            unsafe { libc::mallopt(parameter, value) };
        }
    }
}

/// Hands memory freed by a burst (a relist, a full recomputation, a large
/// reconcile) back to the kernel. A few milliseconds for a heap of tens of
/// megabytes, so only after work that is itself rare and large.
pub(crate) fn release_after_burst() {
    // SAFETY: no preconditions; it walks the heaps under their own locks.
    unsafe { libc::malloc_trim(0) };
}
