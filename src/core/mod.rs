//! Transport-independent RSM semantics. Nothing here makes a system call:
//! what touches the OS is behind [`crate::transport::Transport`] or in
//! [`crate::config`].

pub mod barrier;
pub mod controller;
pub mod event;
pub mod export;
pub mod import;
pub mod localmem;
pub mod permission;
pub mod pollfd;
pub mod segmentid;
pub mod topology;

#[cfg(test)]
mod tests;

/// A thread's one-entry segment cache: the handle and the segment.
pub(crate) type Cache<S> =
    std::thread::LocalKey<std::cell::RefCell<Option<(usize, std::sync::Arc<S>)>>>;

/// The segment behind `handle` from a thread's one-entry cache when it is
/// there and `live` (a live segment's handle is unique: its table slot is
/// taken), else from `lookup`, which then fills the cache. A reference of
/// its own, not a borrow: a signal handler may use the cache meanwhile.
pub(crate) fn held<S: 'static>(
    cache: &'static Cache<S>,
    handle: usize,
    live: impl Fn(&S) -> bool,
    lookup: impl FnOnce(usize) -> crate::error::RsmResult<std::sync::Arc<S>>,
) -> crate::error::RsmResult<std::sync::Arc<S>> {
    let cached = cache.with(|last| {
        let last = last.try_borrow().ok()?;
        let (h, seg) = last.as_ref()?;
        (*h == handle && live(seg)).then(|| std::sync::Arc::clone(seg))
    });
    if let Some(seg) = cached {
        return Ok(seg);
    }
    let seg = lookup(handle)?;
    cache.with(|last| {
        if let Ok(mut last) = last.try_borrow_mut() {
            *last = Some((handle, std::sync::Arc::clone(&seg)));
        }
    });
    Ok(seg)
}
