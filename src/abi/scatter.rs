//! `rsm_memseg_import_putv(3RSM)`: scatter/gather (spec 4.7). The vector is
//! read directly (it is the caller's, and this is the data path); each
//! entry's local side is a virtual address or a local memory handle.

use super::types::{
    rsm_scat_gath_t, RSM_HANDLE_TYPE, RSM_IMPLICIT_SIGPOST, RSM_MAX_SGIOREQS,
    RSM_SIGPOST_NO_ACCUMULATE, RSM_VA_TYPE,
};
use super::{entry, non_null};
use crate::core::import::{self, Local};
use crate::core::localmem;
use crate::error::{RsmError, RsmResult};
use std::ffi::c_int;

/// Body of putv (`put`) and getv.
///
/// # Safety
/// `sg_io` is NULL or points to the caller's `rsm_scat_gath_t`, whose
/// `iovec` has `io_request_count` entries describing valid local memory.
unsafe fn vector(sg_io: *mut rsm_scat_gath_t, put: bool) -> RsmResult<()> {
    if sg_io.is_null() || !sg_io.is_aligned() {
        return Err(RsmError::BadSgio);
    }
    // SAFETY: non-NULL and aligned; the caller's structure (C contract).
    let sg = unsafe { &mut *sg_io };
    non_null(sg.remote_handle, RsmError::BadSegHndl)?;
    let count = sg.io_request_count as usize;
    if count == 0
        || count > RSM_MAX_SGIOREQS as usize
        || sg.iovec.is_null()
        || !sg.iovec.is_aligned()
    {
        return Err(RsmError::BadSgio);
    }
    // SAFETY: `count` entries at `iovec`, per the C contract.
    let iov = unsafe { std::slice::from_raw_parts(sg.iovec, count) };
    let post =
        (sg.flags & RSM_IMPLICIT_SIGPOST != 0).then_some(sg.flags & RSM_SIGPOST_NO_ACCUMULATE != 0);
    let entry = |i: usize| -> RsmResult<(i64, Local<'_>)> {
        let e = &iov[i];
        let len = e.transfer_length;
        let base = match e.io_type {
            RSM_VA_TYPE => {
                // SAFETY: RSM_VA_TYPE says the union holds `vaddr`.
                let vaddr = unsafe { e.local.vaddr } as usize;
                if vaddr == 0 {
                    return Err(RsmError::BadAddr);
                }
                vaddr.checked_add(e.local_offset).ok_or(RsmError::BadAddr)?
            }
            RSM_HANDLE_TYPE => {
                // SAFETY: RSM_HANDLE_TYPE says the union holds `handle`.
                let h = unsafe { e.local.handle } as usize;
                localmem::resolve(h, e.local_offset, len)?
            }
            _ => return Err(RsmError::BadSgio),
        };
        // No buffer is longer than isize::MAX bytes (nor may a slice be).
        if len > isize::MAX as usize {
            return Err(RsmError::BadLength);
        }
        base.checked_add(len).ok_or(RsmError::BadLength)?;
        let offset = i64::try_from(e.remote_offset).map_err(|_| RsmError::BadOffset)?;
        // SAFETY: `len` bytes at `base` are the caller's local memory, as
        // the entry says (C contract); non-NULL, byte-aligned.
        let local = unsafe {
            if put {
                Local::Source(std::slice::from_raw_parts(base as *const u8, len))
            } else {
                Local::Dest(std::slice::from_raw_parts_mut(base as *mut u8, len))
            }
        };
        Ok((offset, local))
    };
    let result = import::transfer_vector(sg.remote_handle as usize, count, entry, post);
    sg.io_residual_count = match result {
        Ok(()) => 0,
        Err((done, _)) => (count - done) as _,
    };
    result.map_err(|(_, e)| e)
}

/// Gathers local buffers into the segment; with `RSM_IMPLICIT_SIGPOST` in
/// `flags`, signals the exporter once the whole vector is done.
///
/// # Safety
/// `sg_io` points to a valid `rsm_scat_gath_t` whose entries describe
/// valid local memory.
#[no_mangle]
pub unsafe extern "C" fn rsm_memseg_import_putv(sg_io: *mut rsm_scat_gath_t) -> c_int {
    // SAFETY: the caller's contract, passed on.
    entry!(rsm_memseg_import_putv(sg_io) { unsafe { vector(sg_io, true) } })
}

/// Scatters the segment into local buffers; with `RSM_IMPLICIT_SIGPOST`,
/// signals the exporter afterwards.
///
/// # Safety
/// As for `rsm_memseg_import_putv`.
#[no_mangle]
pub unsafe extern "C" fn rsm_memseg_import_getv(sg_io: *mut rsm_scat_gath_t) -> c_int {
    // SAFETY: the caller's contract, passed on.
    entry!(rsm_memseg_import_getv(sg_io) { unsafe { vector(sg_io, false) } })
}
