//! `rsm_memseg_get_pollfd(3RSM)`: poll descriptors of export and import
//! segments (spec 4.9). Signals (post/wait) come with issue 5.

use super::types::pollfd;
use super::{entry, non_null};
use crate::core::{export, import};
use crate::error::{RsmError, RsmResult};
use crate::handles::{kind_of, Kind};
use crate::uaccess;
use std::ffi::{c_int, c_void};

/// Which segment kind a `void *` handle is.
fn segment_kind(memseg: *mut c_void) -> RsmResult<Kind> {
    non_null(memseg, RsmError::BadSegHndl)?;
    match kind_of(memseg as usize) {
        Some(k @ (Kind::Export | Kind::Import)) => Ok(k),
        _ => Err(RsmError::BadSegHndl),
    }
}

/// Stores `{fd, POLLRDNORM}` for the segment in `*fd` and counts a
/// reference; destroy and disconnect fail while references are held.
///
/// # Safety
/// `fd` points to writable storage for one `struct pollfd`.
#[no_mangle]
pub unsafe extern "C" fn rsm_memseg_get_pollfd(memseg: *mut c_void, fd: *mut pollfd) -> c_int {
    entry!(rsm_memseg_get_pollfd(memseg, fd) {
        let kind = segment_kind(memseg)?;
        non_null(fd, RsmError::BadAddr)?;
        let h = memseg as usize;
        let (raw, release): (c_int, fn(usize) -> RsmResult<()>) = match kind {
            Kind::Export => (export::get_pollfd(h)?, export::release_pollfd),
            _ => (import::get_pollfd(h)?, import::release_pollfd),
        };
        let value = pollfd { fd: raw, events: libc::POLLRDNORM, revents: 0 };
        uaccess::copy_out(fd, &value).inspect_err(|_| {
            let _ = release(h);
        })
    })
}

/// Drops one reference taken by `rsm_memseg_get_pollfd`.
///
/// # Safety
/// None beyond passing a value; stale and forged handles are rejected.
#[no_mangle]
pub unsafe extern "C" fn rsm_memseg_release_pollfd(memseg: *mut c_void) -> c_int {
    entry!(rsm_memseg_release_pollfd(memseg) {
        match segment_kind(memseg)? {
            Kind::Export => export::release_pollfd(memseg as usize),
            _ => import::release_pollfd(memseg as usize),
        }
    })
}
