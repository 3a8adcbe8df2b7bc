//! The process's memory allocator: jemalloc (a turn allocates and frees
//! hundreds of small blocks across threads; the C library's allocator spent
//! about 15% of hello-seq5's CPU samples on them), or the C library's when
//! the environment has `PERDURE_SYSTEM_ALLOCATOR` at start: valgrind's DHAT
//! counts the C library's allocations only, so `perdure bench
//! --instructions` sets it for its allocation counts. The choice is made at
//! the first allocation, before `main`, and never changes (a block is freed
//! by the allocator that made it). mimalloc was tried too: as fast on small
//! steps, but slower than either with 64 KiB payloads and holding more
//! memory.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU8, Ordering};

/// The environment variable that selects the C library's allocator (and
/// the same name as the C library reads it).
pub const SYSTEM_ALLOCATOR_VAR: &str = "PERDURE_SYSTEM_ALLOCATOR";
const SYSTEM_ALLOCATOR_C: &std::ffi::CStr = c"PERDURE_SYSTEM_ALLOCATOR";

/// Not yet chosen, jemalloc, or the C library's.
static CHOICE: AtomicU8 = AtomicU8::new(UNCHOSEN);
const UNCHOSEN: u8 = 0;
const JEMALLOC: u8 = 1;
const SYSTEM: u8 = 2;

pub struct Allocator;

fn system() -> bool {
    match CHOICE.load(Ordering::Relaxed) {
        JEMALLOC => false,
        SYSTEM => true,
        _ => {
            // `getenv` reads the environment without allocating (the
            // standard library's lookup would allocate, here, inside the
            // allocator). Threads racing here read the same environment.
            // SAFETY: a NUL-terminated name; nothing sets the environment
            // before the first allocation.
            let set = unsafe { !libc::getenv(SYSTEM_ALLOCATOR_C.as_ptr()).is_null() };
            CHOICE.store(if set { SYSTEM } else { JEMALLOC }, Ordering::Relaxed);
            set
        }
    }
}

// SAFETY: every call goes to one of two sound allocators, the same one for
// the whole process (see `system`), so each block is freed by its maker.
unsafe impl GlobalAlloc for Allocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if system() {
            unsafe { System.alloc(layout) }
        } else {
            unsafe { tikv_jemallocator::Jemalloc.alloc(layout) }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if system() {
            unsafe { System.alloc_zeroed(layout) }
        } else {
            unsafe { tikv_jemallocator::Jemalloc.alloc_zeroed(layout) }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if system() {
            unsafe { System.dealloc(ptr, layout) }
        } else {
            unsafe { tikv_jemallocator::Jemalloc.dealloc(ptr, layout) }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if system() {
            unsafe { System.realloc(ptr, layout, new_size) }
        } else {
            unsafe { tikv_jemallocator::Jemalloc.realloc(ptr, layout, new_size) }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn both_spellings_name_the_same_variable() {
        assert_eq!(
            super::SYSTEM_ALLOCATOR_C.to_str().ok(),
            Some(super::SYSTEM_ALLOCATOR_VAR)
        );
    }
}
