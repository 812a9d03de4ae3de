//! Giving freed memory back to the system after a flood.
//!
//! glibc's allocator keeps what sessions freed in its heap: after 2,000 sessions with
//! full receive windows closed, a process still had 364 MiB resident, 3 MiB after
//! `malloc_trim` (`tests/memory.rs` measures the sessions' own allocations). A loop
//! calls [`release_free_memory`] once its closed sessions have freed at least
//! [`TRIM_AFTER`] of held data since the last call.

/// Held data a loop's closed sessions must have freed before it trims the heap.
pub(crate) const TRIM_AFTER: usize = 16 << 20;

/// Returns the allocator's free memory to the system, where the allocator is glibc's;
/// does nothing elsewhere.
pub(crate) fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_trim` takes no pointer of ours; it only walks glibc's own heap
    // under glibc's locks and releases free pages.
    unsafe {
        libc::malloc_trim(0);
    }
}
