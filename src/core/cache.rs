//! A thread's one-entry cache of the segment it used last, for each kind:
//! the data path and signals find their segment without touching the
//! shared handle table (no atomic read-modify-write per call).
//!
//! A cached segment is used only while it is live: a live segment's handle
//! is unique (its table slot is taken). Borrows are tried, never forced: a
//! signal handler that calls the library while this thread is inside the
//! cache falls back to the table instead of panicking.

use crate::error::RsmResult;
use std::cell::RefCell;
use std::sync::Arc;
use std::thread::LocalKey;

/// The cache: the handle and its segment.
pub(crate) type Cache<S> = LocalKey<RefCell<Option<(usize, Arc<S>)>>>;

/// A segment that can stop being live (destroy, disconnect).
pub(crate) trait Live {
    /// Whether the handle still names this segment.
    fn live(&self) -> bool;
}

/// Runs `f` on the segment behind `handle`, from the cache when it is
/// there, else from `lookup` (which then fills the cache). The cached
/// reference keeps the segment alive during `f`.
#[inline(always)]
pub(crate) fn with<S: Live + 'static, R>(
    cache: &'static Cache<S>,
    handle: usize,
    lookup: impl FnOnce(usize) -> RsmResult<Arc<S>>,
    f: impl FnOnce(&S) -> RsmResult<R>,
) -> RsmResult<R> {
    cache.with(|last| {
        if let Ok(last) = last.try_borrow() {
            if let Some((h, seg)) = last.as_ref() {
                if *h == handle && seg.live() {
                    return f(seg);
                }
            }
        }
        let seg = fill(last, handle, lookup)?;
        f(&seg)
    })
}

/// Looks `handle` up and caches it (if the cache is not borrowed).
#[cold]
fn fill<S>(
    last: &RefCell<Option<(usize, Arc<S>)>>,
    handle: usize,
    lookup: impl FnOnce(usize) -> RsmResult<Arc<S>>,
) -> RsmResult<Arc<S>> {
    let seg = lookup(handle)?;
    if let Ok(mut last) = last.try_borrow_mut() {
        *last = Some((handle, Arc::clone(&seg)));
    }
    Ok(seg)
}

/// Drops this thread's cached reference to `handle`, if it has one.
pub(crate) fn forget<S: 'static>(cache: &'static Cache<S>, handle: usize) {
    cache.with(|last| {
        if let Ok(mut last) = last.try_borrow_mut() {
            if last.as_ref().is_some_and(|(h, _)| *h == handle) {
                *last = None;
            }
        }
    });
}
