//! Running out of memory without dying (issue 7, item 6).
//!
//! Rust's allocation failure handler aborts the process, and stable Rust
//! offers no way to make it return. A C library must not kill its caller
//! because malloc said no, so librsm meets low memory in two steps:
//!
//! 1. **Refuse early.** Calls that make something new (export_create,
//!    publish, connect, get_controller, and the agent before it takes an
//!    importer in) first ask [`headroom`]: one `malloc` of
//!    [`PROBE`] bytes, freed at once. If it fails the call returns
//!    `RSMERR_INSUFFICIENT_MEM` having allocated nothing. The freed block
//!    stays in the allocator's free lists, so the few hundred bytes the
//!    call then needs are there.
//! 2. **A reserve for what slips through.** Another thread may take that
//!    memory between the probe and the call's allocations, and threads
//!    other than the caller's allocate too (the agent). The global
//!    allocator below serves any request malloc refuses from a static
//!    reserve of [`RESERVE`] bytes, in 64-byte blocks, and gives the blocks
//!    back when they are freed. Only if the reserve is exhausted as well does
//!    an allocation fail (and Rust abort), which takes a steady stream of
//!    allocations with malloc failing each one: exactly what the probe of
//!    step 1 stops.
//!
//! The reserve is in `.bss`: address space taken when the library loads
//! (so an `RLIMIT_AS` lowered later cannot refuse it), and memory only
//! for the pages a low-memory episode touches.

use crate::error::{RsmError, RsmResult};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

/// Bytes the probe of [`headroom`] asks malloc for. Below glibc's mmap
/// threshold (128 KiB), so it measures the heap that small allocations
/// come from; well above what any call allocates.
pub const PROBE: usize = 64 << 10;

/// Bytes in the emergency reserve.
pub const RESERVE: usize = 256 << 10;

const BLOCK: usize = 64;
const BLOCKS: usize = RESERVE / BLOCK;
const WORDS: usize = BLOCKS / 64;

/// Whether malloc has `PROBE` bytes for a new object: `Ok`, or
/// `RSMERR_INSUFFICIENT_MEM` with nothing allocated.
pub fn headroom() -> RsmResult<()> {
    // SAFETY: malloc of a non-zero size; the block is freed at once and
    // never touched. black_box: the compiler knows malloc and would drop
    // an unused malloc/free pair, and with it the probe.
    let p = std::hint::black_box(unsafe { libc::malloc(PROBE) });
    if p.is_null() {
        crate::why!("out of memory: malloc({PROBE}) failed; the call makes nothing");
        return Err(RsmError::InsufficientMem);
    }
    // SAFETY: p came from malloc just above and is freed once.
    unsafe { libc::free(p) };
    Ok(())
}

/// Allocations the reserve served since the process started.
pub fn reserve_served() -> u64 {
    SERVED.load(Ordering::Relaxed)
}

/// Bytes of the reserve in use now.
pub fn reserve_in_use() -> usize {
    IN_USE.load(Ordering::Relaxed)
}

static SERVED: AtomicU64 = AtomicU64::new(0);
static IN_USE: AtomicUsize = AtomicUsize::new(0);

#[repr(C, align(4096))]
struct Arena(UnsafeCell<[u8; RESERVE]>);

// SAFETY: the bytes are handed out in disjoint blocks under `LOCK`; the
// arena itself is never read or written here.
unsafe impl Sync for Arena {}

static ARENA: Arena = Arena(UnsafeCell::new([0; RESERVE]));

/// Which blocks are taken, one bit each; guarded by `LOCK`.
struct Map(UnsafeCell<[u64; WORDS]>);

// SAFETY: only touched with `LOCK` held.
unsafe impl Sync for Map {}

static MAP: Map = Map(UnsafeCell::new([0; WORDS]));

/// A spin lock: the allocator must not allocate, block on a futex queue
/// that may allocate, or use thread-locals. Held for a bitmap scan only.
static LOCK: AtomicBool = AtomicBool::new(false);

fn with_map<R>(f: impl FnOnce(&mut [u64; WORDS]) -> R) -> R {
    while LOCK
        .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        std::hint::spin_loop();
    }
    // SAFETY: LOCK is held, so no other reference to the map exists.
    let r = f(unsafe { &mut *MAP.0.get() });
    LOCK.store(false, Ordering::Release);
    r
}

fn base() -> usize {
    ARENA.0.get() as usize
}

fn taken(map: &[u64; WORDS], i: usize) -> bool {
    map[i / 64] & (1 << (i % 64)) != 0
}

fn mark(map: &mut [u64; WORDS], first: usize, n: usize, on: bool) {
    for i in first..first + n {
        if on {
            map[i / 64] |= 1 << (i % 64);
        } else {
            map[i / 64] &= !(1 << (i % 64));
        }
    }
}

/// First fit: `n` free blocks in a row whose address is aligned to `align`.
fn find(map: &[u64; WORDS], n: usize, align: usize) -> Option<usize> {
    let step = (align / BLOCK).max(1);
    let mut first = 0;
    while first + n <= BLOCKS {
        match (first..first + n).find(|&i| taken(map, i)) {
            None => return Some(first),
            // Skip past the taken block, to the next aligned start.
            Some(i) => first = (i + 1).div_ceil(step) * step,
        }
    }
    None
}

/// Blocks from the reserve for `layout`, or null if it has none.
fn reserve_alloc(layout: Layout) -> *mut u8 {
    if layout.align() > 4096 || layout.size() > RESERVE {
        return std::ptr::null_mut();
    }
    let n = layout.size().max(1).div_ceil(BLOCK);
    let got = with_map(|map| {
        let first = find(map, n, layout.align())?;
        mark(map, first, n, true);
        Some(first)
    });
    match got {
        Some(first) => {
            SERVED.fetch_add(1, Ordering::Relaxed);
            IN_USE.fetch_add(n * BLOCK, Ordering::Relaxed);
            (base() + first * BLOCK) as *mut u8
        }
        None => std::ptr::null_mut(),
    }
}

fn in_reserve(p: *mut u8) -> bool {
    (base()..base() + RESERVE).contains(&(p as usize))
}

fn reserve_free(p: *mut u8, layout: Layout) {
    let n = layout.size().max(1).div_ceil(BLOCK);
    let first = (p as usize - base()) / BLOCK;
    with_map(|map| mark(map, first, n, false));
    IN_USE.fetch_sub(n * BLOCK, Ordering::Relaxed);
}

/// The library's global allocator: the system's, then the reserve.
pub struct Allocator;

// SAFETY: every block returned is either the system allocator's (and goes
// back to it) or a run of reserve blocks no one else holds (and goes back
// to the map); `in_reserve` tells the two apart by address.
unsafe impl GlobalAlloc for Allocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract (non-zero size) is passed on.
        let p = unsafe { System.alloc(layout) };
        if p.is_null() {
            reserve_alloc(layout)
        } else {
            p
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for alloc.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            return p;
        }
        let p = reserve_alloc(layout);
        if !p.is_null() {
            // SAFETY: p is a fresh run of at least layout.size() bytes.
            unsafe { std::ptr::write_bytes(p, 0, layout.size()) };
        }
        p
    }

    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        if in_reserve(p) {
            reserve_free(p, layout);
        } else {
            // SAFETY: p came from System with this layout.
            unsafe { System.dealloc(p, layout) }
        }
    }

    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if !in_reserve(p) {
            // SAFETY: p came from System with this layout; new_size is the
            // caller's, non-zero.
            let q = unsafe { System.realloc(p, layout, new_size) };
            if !q.is_null() {
                return q;
            }
        }
        // Move: from the reserve, or out of it, or malloc refused to grow.
        // SAFETY: the caller guarantees new_size with layout's alignment
        // is a valid layout.
        let new = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        // SAFETY: new has a non-zero size.
        let q = unsafe { self.alloc(new) };
        if !q.is_null() {
            // SAFETY: both blocks are live and distinct; the copy is the
            // smaller of the two sizes.
            unsafe {
                std::ptr::copy_nonoverlapping(p, q, layout.size().min(new_size));
                self.dealloc(p, layout);
            }
        }
        q
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reserve is one per process and the harness runs tests on
    /// parallel threads: these tests take turns, or one's blocks show in
    /// the other's count.
    static TURNS: parking_lot::Mutex<()> = parking_lot::Mutex::new(());

    #[test]
    fn reserve_blocks_are_disjoint_aligned_and_come_back() {
        let _turn = TURNS.lock();
        let before = reserve_in_use();
        let a = reserve_alloc(Layout::from_size_align(100, 8).unwrap());
        let b = reserve_alloc(Layout::from_size_align(64, 256).unwrap());
        let c = reserve_alloc(Layout::from_size_align(1, 1).unwrap());
        assert!(!a.is_null() && !b.is_null() && !c.is_null());
        assert_eq!(b as usize % 256, 0);
        let ranges = [(a as usize, 128), (b as usize, 64), (c as usize, 64)];
        for (i, x) in ranges.iter().enumerate() {
            for y in &ranges[i + 1..] {
                assert!(x.0 + x.1 <= y.0 || y.0 + y.1 <= x.0, "{x:?} overlaps {y:?}");
            }
        }
        assert!(in_reserve(a) && in_reserve(b) && in_reserve(c));
        reserve_free(a, Layout::from_size_align(100, 8).unwrap());
        reserve_free(b, Layout::from_size_align(64, 256).unwrap());
        reserve_free(c, Layout::from_size_align(1, 1).unwrap());
        assert_eq!(reserve_in_use(), before);
    }

    #[test]
    fn reserve_says_no_when_full_and_never_hands_out_twice() {
        let _turn = TURNS.lock();
        let l = Layout::from_size_align(RESERVE / 4, 64).unwrap();
        let got: Vec<_> = (0..5).map(|_| reserve_alloc(l)).collect();
        // Other tests may hold a few blocks, so at most 4 fit, at least 3.
        let live: Vec<_> = got.iter().filter(|p| !p.is_null()).collect();
        assert!(live.len() <= 4 && live.len() >= 3, "{}", live.len());
        assert!(got[4].is_null());
        for p in live {
            reserve_free(*p, l);
        }
        assert!(reserve_alloc(Layout::from_size_align(RESERVE + 1, 8).unwrap()).is_null());
        assert!(reserve_alloc(Layout::from_size_align(64, 8192).unwrap()).is_null());
    }
}
