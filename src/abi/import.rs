//! `rsm_memseg_import_connect(3RSM)` and `rsm_memseg_import_map(3RSM)`:
//! connect, disconnect, map, unmap (spec 4.5).

use super::types::{
    rsm_attribute_raw, rsm_memseg_id_t, rsm_memseg_import_handle_t, rsm_node_id_t,
    rsm_permission_t, rsmapi_controller_handle_t,
};
use super::{entry, non_null};
use crate::core::controller;
use crate::core::import::{self, MapRequest};
use crate::error::RsmError;
use crate::{platform, uaccess};
use std::ffi::{c_int, c_void};
use std::ptr::null_mut;

/// Connects to segment `segment_id` of node `node_id` with `perm`
/// (`RSM_PERM_READ`, `RSM_PERM_WRITE` or both) and stores the import
/// handle in `*im_memseg`.
///
/// # Safety
/// `im_memseg` points to writable storage.
#[no_mangle]
pub unsafe extern "C" fn rsm_memseg_import_connect(
    controller: rsmapi_controller_handle_t,
    node_id: rsm_node_id_t,
    segment_id: rsm_memseg_id_t,
    perm: rsm_permission_t,
    im_memseg: *mut rsm_memseg_import_handle_t,
) -> c_int {
    entry!(rsm_memseg_import_connect(controller, node_id, segment_id, perm, im_memseg) {
        non_null(controller, RsmError::BadCtlrHndl)?;
        controller::lookup(controller as usize)?;
        non_null(im_memseg, RsmError::BadSegHndl)?;
        // One checked store, after the connect: a bad out-pointer undoes
        // the connection. A failed connect leaves NULL there, if it can.
        let h = import::connect(controller as usize, node_id, segment_id, perm).inspect_err(|_| {
            let _ = uaccess::copy_out(im_memseg, &null_mut());
        })?;
        uaccess::copy_out(im_memseg, &(h as rsm_memseg_import_handle_t)).inspect_err(|_| {
            let _ = import::disconnect(h);
        })
    })
}

/// Ends the connection and frees the handle.
///
/// # Safety
/// None beyond passing a value; stale and forged handles are rejected.
#[no_mangle]
pub unsafe extern "C" fn rsm_memseg_import_disconnect(
    im_memseg: rsm_memseg_import_handle_t,
) -> c_int {
    entry!(rsm_memseg_import_disconnect(im_memseg) {
        non_null(im_memseg, RsmError::BadSegHndl)?;
        import::disconnect(im_memseg as usize)
    })
}

/// Maps `[offset, offset + length)` of the segment with `perm`, at
/// `*address` for `RSM_MAP_FIXED`, else where the system chooses; the
/// address is stored in `*address`.
///
/// # Safety
/// `address` points to a readable and writable pointer.
#[no_mangle]
pub unsafe extern "C" fn rsm_memseg_import_map(
    im_memseg: rsm_memseg_import_handle_t,
    address: *mut *mut c_void,
    attr: rsm_attribute_raw,
    perm: rsm_permission_t,
    offset: libc::off_t,
    length: usize,
) -> c_int {
    entry!(rsm_memseg_import_map(im_memseg, address, attr, perm, offset, length) {
        non_null(im_memseg, RsmError::BadSegHndl)?;
        non_null(address, RsmError::BadAddr)?;
        // RSM_MAP_FIXED is bit 0; RSM_MAP_RESERVED is ignored (spec 2.3).
        let fixed = if attr & 1 != 0 { Some(uaccess::copy_in(address)? as usize) } else { None };
        let req = MapRequest { fixed, perm, offset, len: length };
        let addr = import::map(im_memseg as usize, req, platform::page_size())?;
        uaccess::copy_out(address, &(addr as *mut c_void)).inspect_err(|_| {
            let _ = import::unmap(im_memseg as usize);
        })
    })
}

/// Removes the mapping made by `rsm_memseg_import_map`.
///
/// # Safety
/// None beyond passing a value; stale and forged handles are rejected.
#[no_mangle]
pub unsafe extern "C" fn rsm_memseg_import_unmap(im_memseg: rsm_memseg_import_handle_t) -> c_int {
    entry!(rsm_memseg_import_unmap(im_memseg) {
        non_null(im_memseg, RsmError::BadSegHndl)?;
        import::unmap(im_memseg as usize)
    })
}
