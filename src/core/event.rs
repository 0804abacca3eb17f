//! Signals (spec 4.9) above the transport: the pollfd references and
//! table, and what `rsm_intr_signal_wait_pollfd` does after its poll.

use super::pollfd::{self, PollfdRefs};
use crate::error::{RsmError, RsmResult};
use crate::handles::{kind_of, Kind};
use crate::transport::Signals;

/// Which kind `handle` is: anything but an export or import segment is
/// `RSMERR_BAD_SEG_HNDL` (spec 4.9; the functions take a `void *`).
pub fn segment_kind(handle: usize) -> RsmResult<Kind> {
    match kind_of(handle) {
        Some(k @ (Kind::Export | Kind::Import)) => Ok(k),
        _ => Err(RsmError::BadSegHndl),
    }
}

/// Runs `f` on the signals side and pollfd references of segment
/// `handle`, either kind, under the segment's state lock.
fn with_pollfd_refs<R>(
    handle: usize,
    f: impl FnOnce(&dyn Signals, &mut PollfdRefs) -> RsmResult<R>,
) -> RsmResult<R> {
    match segment_kind(handle)? {
        Kind::Export => super::export::with_pollfd_refs(handle, f),
        _ => super::import::with_pollfd_refs(handle, f),
    }
}

/// `rsm_memseg_get_pollfd`: the descriptor, counted.
pub fn get_pollfd(handle: usize) -> RsmResult<i32> {
    with_pollfd_refs(handle, |port, refs| take_pollfd_ref(port, handle, refs))
}

/// `rsm_memseg_release_pollfd`.
pub fn release_pollfd(handle: usize) -> RsmResult<()> {
    with_pollfd_refs(handle, |port, refs| {
        drop_pollfd_ref(port, refs);
        Ok(())
    })
}

/// Runs `f` on the signals side of segment `handle`, either kind, from the
/// thread's cache, without a reference count of its own: a round trip of
/// signals makes no locked instruction for it. A signal handler that
/// calls the library meanwhile shares the cache's borrow (or, to refill
/// it, falls back to the table).
fn on_signals<R>(handle: usize, f: impl FnOnce(&dyn Signals) -> RsmResult<R>) -> RsmResult<R> {
    match segment_kind(handle)? {
        Kind::Export => super::export::on_signals(handle, f),
        _ => super::import::on_signals(handle, f),
    }
}

/// `rsm_intr_signal_post`: an import signals its exporter, an export every
/// importer.
pub fn post(handle: usize, no_accumulate: bool) -> RsmResult<()> {
    on_signals(handle, |s| s.post(no_accumulate))
}

/// `rsm_intr_signal_wait`.
pub fn wait(handle: usize, timeout_ms: i32) -> RsmResult<()> {
    on_signals(handle, |s| s.wait(timeout_ms))
}

/// Consumes one event of segment `handle`, whichever kind it is.
fn take(handle: usize) -> RsmResult<bool> {
    on_signals(handle, |s| s.take())
}

/// Takes a pollfd reference on a segment: the first one makes the
/// transport keep the descriptor readable while events are pending.
pub fn take_pollfd_ref<P: Signals + ?Sized>(
    port: &P,
    handle: usize,
    refs: &mut PollfdRefs,
) -> RsmResult<i32> {
    let fd = port.pollfd()?;
    if refs.take()? {
        if let Err(e) = port.watch(true) {
            refs.release();
            return Err(e);
        }
        pollfd::register(fd, handle);
    }
    Ok(fd)
}

/// Drops a pollfd reference; after the last, posts stop ringing for it.
pub fn drop_pollfd_ref<P: Signals + ?Sized>(port: &P, refs: &mut PollfdRefs) {
    if refs.release() {
        let _ = port.watch(false);
        if let Ok(fd) = port.pollfd() {
            pollfd::unregister(fd);
        }
    }
}

/// After the poll of `rsm_intr_signal_wait_pollfd`: for each entry that
/// is a segment's pollfd and was readable, consume one
/// event; if another consumer was first, clear its `revents`. An import
/// whose exporter went away reports `POLLHUP`; a segment destroyed
/// meanwhile `POLLNVAL`. Other descriptors keep what poll said. Returns
/// how many entries have events.
pub fn consume(entries: &mut [libc::pollfd]) -> usize {
    let readable = libc::POLLIN | libc::POLLRDNORM;
    for e in entries.iter_mut() {
        if e.revents & readable == 0 || e.revents & (libc::POLLERR | libc::POLLNVAL) != 0 {
            continue;
        }
        let Some(handle) = pollfd::segment_of(e.fd) else {
            continue;
        };
        e.revents = match take(handle) {
            Ok(true) => e.revents,
            Ok(false) => 0,
            Err(RsmError::ConnAborted) => libc::POLLHUP,
            Err(_) => libc::POLLNVAL,
        };
    }
    entries.iter().filter(|e| e.revents != 0).count()
}
