//! A counting global allocator, for tests that assert what allocates.
//!
//! [`Counting`] forwards every call to the system allocator and counts, per thread,
//! the calls that hand out memory (`alloc` and `realloc`; `dealloc` is not counted).
//! A test crate registers it once and reads the count around the code it measures:
//!
//! ```
//! use kcp_ref::counting::{Counting, counted};
//!
//! #[global_allocator]
//! static GLOBAL: Counting = Counting;
//!
//! fn main() {
//!     let (v, n) = counted(|| vec![0u8; 100]);
//!     assert_eq!((v.len(), n), (100, 1));
//!     let (sum, n) = counted(|| v.iter().map(|&b| u32::from(b)).sum::<u32>());
//!     assert_eq!((sum, n), (0, 0));
//! }
//! ```
//!
//! Counts are per thread, so tests running in parallel do not count each other.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};

/// The counting allocator; register it with `#[global_allocator]` in the test crate.
#[derive(Clone, Copy, Debug, Default)]
pub struct Counting;

thread_local! {
    /// Per thread, so tests running in parallel do not count each other.
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
    /// Bytes allocated minus bytes freed on this thread (memory freed on another
    /// thread than it was allocated on shows up on that thread).
    static LIVE: Cell<i64> = const { Cell::new(0) };
}

/// Set by the first allocation through [`Counting`]: a crate that forgot to register
/// it would otherwise count nothing and pass every "no allocation" assertion.
static INSTALLED: AtomicBool = AtomicBool::new(false);

fn count_one() {
    INSTALLED.store(true, Ordering::Relaxed);
    // `try_with`: the allocator may run while the thread-local is being torn down.
    let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
}

fn live_add(bytes: i64) {
    let _ = LIVE.try_with(|c| c.set(c.get() + bytes));
}

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_one();
        live_add(layout.size() as i64);
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, which we pass on.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        live_add(-(layout.size() as i64));
        // SAFETY: as for `alloc`.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_one();
        live_add(new_size as i64 - layout.size() as i64);
        // SAFETY: as for `alloc`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Allocations (`alloc` and `realloc` calls) made on this thread so far.
///
/// # Panics
/// If [`Counting`] is not the global allocator (nothing was ever counted).
pub fn allocations() -> u64 {
    assert!(
        INSTALLED.load(Ordering::Relaxed),
        "kcp_ref::counting::Counting is not the #[global_allocator]"
    );
    ALLOCATIONS.with(Cell::get)
}

/// Bytes allocated and not yet freed on this thread (requested sizes, not what the
/// system allocator rounds them up to).
///
/// # Panics
/// As [`allocations`].
pub fn live_bytes() -> i64 {
    let _ = allocations();
    LIVE.with(Cell::get)
}

/// Runs `f` and returns its result with the allocations made on this thread meanwhile.
///
/// # Panics
/// As [`allocations`].
pub fn counted<T>(f: impl FnOnce() -> T) -> (T, u64) {
    let before = allocations();
    let out = f();
    (out, allocations() - before)
}
