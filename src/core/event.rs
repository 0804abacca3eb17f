//! Signals (spec 4.9) above the transport: the pollfd references and
//! table, and what `rsm_intr_signal_wait_pollfd` does after its poll.

use super::pollfd::{self, PollfdRefs};
use crate::error::{RsmError, RsmResult};
use crate::handles::{kind_of, Kind};
use crate::transport::Signals;

/// Takes a pollfd reference on a segment: the first one makes the
/// transport keep the descriptor readable while events are pending.
pub fn get_pollfd(port: &dyn Signals, handle: usize, refs: &mut PollfdRefs) -> RsmResult<i32> {
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
pub fn release_pollfd(port: &dyn Signals, refs: &mut PollfdRefs) {
    if refs.release() {
        let _ = port.watch(false);
        if let Ok(fd) = port.pollfd() {
            pollfd::unregister(fd);
        }
    }
}

/// Consumes one event of segment `handle`, whichever kind it is.
fn take(handle: usize) -> RsmResult<bool> {
    match kind_of(handle) {
        Some(Kind::Export) => super::export::take_event(handle),
        Some(Kind::Import) => super::import::take_event(handle),
        _ => Err(RsmError::BadSegHndl),
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
