//! `rsm_create_localmemory_handle(3RSM)`: names for local buffers used in
//! `RSM_HANDLE_TYPE` scatter/gather entries (spec 4.7).

use super::types::{caddr_t, rsm_localmemory_handle_t, rsmapi_controller_handle_t};
use super::{entry, non_null};
use crate::core::localmem;
use crate::error::RsmError;
use crate::{platform, uaccess};
use std::ffi::c_int;

/// Registers `[local_vaddr, local_vaddr + length)` (page-aligned) and stores
/// its handle in `*l_handle`.
///
/// # Safety
/// `l_handle` points to writable storage; the buffer stays valid while the
/// handle is used.
#[no_mangle]
pub unsafe extern "C" fn rsm_create_localmemory_handle(
    handle: rsmapi_controller_handle_t,
    l_handle: *mut rsm_localmemory_handle_t,
    local_vaddr: caddr_t,
    length: usize,
) -> c_int {
    entry!(rsm_create_localmemory_handle(handle, l_handle, local_vaddr, length) {
        // Spec 4.7: the address is checked before the controller.
        if local_vaddr.is_null() || (local_vaddr as usize) % platform::page_size() != 0 {
            return Err(RsmError::BadAddr);
        }
        non_null(handle, RsmError::BadCtlrHndl)?;
        non_null(l_handle, RsmError::BadLocalmemHndl)?;
        let h = localmem::create(handle as usize, local_vaddr as usize, length)?;
        uaccess::copy_out(l_handle, &(h as rsm_localmemory_handle_t)).inspect_err(|_| {
            let _ = localmem::free(handle as usize, h);
        })
    })
}

/// Forgets a local memory handle.
///
/// # Safety
/// None beyond passing values; stale and forged handles are rejected.
#[no_mangle]
pub unsafe extern "C" fn rsm_free_localmemory_handle(
    handle: rsmapi_controller_handle_t,
    l_handle: rsm_localmemory_handle_t,
) -> c_int {
    entry!(rsm_free_localmemory_handle(handle, l_handle) {
        non_null(handle, RsmError::BadCtlrHndl)?;
        non_null(l_handle, RsmError::BadLocalmemHndl)?;
        localmem::free(handle as usize, l_handle as usize)
    })
}
