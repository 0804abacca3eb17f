//! `rsm_intr_signal_post(3RSM)`, `rsm_memseg_get_pollfd(3RSM)`,
//! `rsm_intr_signal_wait_pollfd(3RSM)`: signals and poll descriptors of
//! export and import segments (spec 4.9).

use super::types::{nfds_t, pollfd, uint_t, RSM_SIGPOST_NO_ACCUMULATE};
use super::{entry, non_null};
use crate::core::event;
use crate::error::RsmError;
use crate::platform;
use crate::uaccess;
use std::ffi::{c_int, c_void};

/// Stores `{fd, POLLRDNORM}` for the segment in `*fd` and counts a
/// reference; destroy and disconnect fail while references are held.
///
/// # Safety
/// `fd` points to writable storage for one `struct pollfd`.
#[no_mangle]
pub unsafe extern "C" fn rsm_memseg_get_pollfd(memseg: *mut c_void, fd: *mut pollfd) -> c_int {
    entry!(rsm_memseg_get_pollfd(memseg, fd) {
        let h = memseg as usize;
        event::segment_kind(h)?;
        non_null(fd, RsmError::BadAddr)?;
        let value = pollfd { fd: event::get_pollfd(h)?, events: libc::POLLRDNORM, revents: 0 };
        uaccess::copy_out(fd, &value).inspect_err(|_| {
            let _ = event::release_pollfd(h);
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
        event::release_pollfd(memseg as usize)
    })
}

/// Signals the other side: an import handle signals the exporter, an
/// export handle every importer (spec 4.9). `RSM_SIGPOST_NO_ACCUMULATE`
/// drops the post if the target has one pending; other bits are ignored,
/// as Solaris ignored all of them.
///
/// # Safety
/// None beyond passing a value; stale and forged handles are rejected.
#[no_mangle]
pub unsafe extern "C" fn rsm_intr_signal_post(memseg: *mut c_void, flags: uint_t) -> c_int {
    entry!(rsm_intr_signal_post(memseg, flags) {
        event::post(memseg as usize, flags & RSM_SIGPOST_NO_ACCUMULATE != 0)
    })
}

/// Consumes one event of the segment, waiting up to `timeout` ms (0: just
/// look; negative: forever); spins `RSM_SPIN_US` first.
///
/// # Safety
/// None beyond passing a value; stale and forged handles are rejected.
#[no_mangle]
pub unsafe extern "C" fn rsm_intr_signal_wait(memseg: *mut c_void, timeout: c_int) -> c_int {
    entry!(rsm_intr_signal_wait(memseg, timeout) {
        event::wait(memseg as usize, timeout)
    })
}

/// `poll(2)` that consumes one event for each ready segment pollfd
/// (spec 4.9); a lost race clears that entry's `revents`.
///
/// # Safety
/// `fds` points to `nfds` entries and `numfdsp` is NULL or points to an
/// int; bad pointers give `RSMERR_BAD_ADDR`.
#[no_mangle]
pub unsafe extern "C" fn rsm_intr_signal_wait_pollfd(
    fds: *mut pollfd,
    nfds: nfds_t,
    timeout: c_int,
    numfdsp: *mut c_int,
) -> c_int {
    entry!(rsm_intr_signal_wait_pollfd(fds, nfds, timeout, numfdsp) {
        if !numfdsp.is_null() {
            uaccess::copy_out(numfdsp, &0)?;
        }
        if !fds.is_aligned() {
            return Err(RsmError::BadAddr);
        }
        // SAFETY: the caller's array, which the kernel checks (EFAULT).
        if unsafe { platform::poll_caller_array(fds, nfds, timeout) }? == 0 {
            return Err(RsmError::Timeout);
        }
        // SAFETY: poll just read and wrote all `nfds` entries, so they are
        // mapped, writable and aligned, as the C contract says.
        let entries = unsafe { std::slice::from_raw_parts_mut(fds, nfds as usize) };
        let ready = event::consume(entries);
        if !numfdsp.is_null() {
            uaccess::copy_out(numfdsp, &(ready as c_int))?;
        }
        if ready == 0 {
            return Err(RsmError::Timeout);
        }
        Ok(())
    })
}
