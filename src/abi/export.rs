//! `rsm_memseg_export_create(3RSM)` and `rsm_memseg_export_publish(3RSM)`:
//! create, destroy, rebind, publish, republish, unpublish (spec 4.4).

use super::types::{
    offset_t, rsm_memseg_export_handle_t, rsm_memseg_id_t, rsmapi_access_entry_t,
    rsmapi_controller_handle_t, uint_t,
};
use super::{entry, non_null};
use crate::core::permission::{AccessEntry, MAX_NODES};
use crate::core::{controller, export};
use crate::error::{RsmError, RsmResult};
use crate::{platform, uaccess};
use std::ffi::{c_int, c_void};
use std::ptr::null_mut;

/// Copies the caller's access list; its errors surface where the Solaris
/// kernel reported them (after the creator check), so they are returned
/// as a value.
fn copy_acl(list: *const rsmapi_access_entry_t, len: uint_t) -> RsmResult<Vec<AccessEntry>> {
    if len > MAX_NODES {
        return Err(RsmError::BadAcl);
    }
    (0..len as usize)
        .map(|i| {
            let e = uaccess::copy_in(list.wrapping_add(i))?;
            Ok(AccessEntry {
                node: e.ae_node,
                perm: e.ae_permission,
            })
        })
        .collect()
}

/// Makes `[vaddr, vaddr + size)` (page-aligned memory the program already
/// has) an export segment, shared in place.
///
/// # Safety
/// `memseg` points to writable storage; `vaddr` is memory of this process.
#[no_mangle]
pub unsafe extern "C" fn rsm_memseg_export_create(
    controller: rsmapi_controller_handle_t,
    memseg: *mut rsm_memseg_export_handle_t,
    vaddr: *mut c_void,
    size: usize,
    flags: uint_t,
) -> c_int {
    entry!(rsm_memseg_export_create(controller, memseg, vaddr, size, flags) {
        non_null(controller, RsmError::BadCtlrHndl)?;
        controller::lookup(controller as usize)?;
        non_null(memseg, RsmError::BadSegHndl)?;
        uaccess::copy_out(memseg, &null_mut())?;
        non_null(vaddr, RsmError::BadAddr)?;
        if size == 0 {
            return Err(RsmError::BadLength);
        }
        let page = platform::page_size();
        if (vaddr as usize) % page != 0 || size % page != 0 {
            return Err(RsmError::BadMemAlignment);
        }
        let h = export::create(controller as usize, vaddr as usize, size, flags, platform::creator())?;
        uaccess::copy_out(memseg, &(h as rsm_memseg_export_handle_t)).inspect_err(|_| {
            let _ = export::destroy(h, platform::pid());
        })
    })
}

/// Destroys the segment; importers are forcibly disconnected and the
/// program keeps its memory, privately, with the segment's contents.
///
/// # Safety
/// None beyond passing a value; stale and forged handles are rejected.
#[no_mangle]
pub unsafe extern "C" fn rsm_memseg_export_destroy(memseg: rsm_memseg_export_handle_t) -> c_int {
    entry!(rsm_memseg_export_destroy(memseg) {
        non_null(memseg, RsmError::BadSegHndl)?;
        export::destroy(memseg as usize, platform::pid())
    })
}

/// Moves the segment onto other memory of the same length; importers
/// follow. Needs `RSM_ALLOW_REBIND` at create.
///
/// # Safety
/// `vaddr` is memory of this process.
#[no_mangle]
pub unsafe extern "C" fn rsm_memseg_export_rebind(
    memseg: rsm_memseg_export_handle_t,
    vaddr: *mut c_void,
    off: offset_t,
    size: usize,
) -> c_int {
    entry!(rsm_memseg_export_rebind(memseg, vaddr, off, size) {
        non_null(memseg, RsmError::BadSegHndl)?;
        non_null(vaddr, RsmError::BadAddr)?;
        // `off` is unused, as on Solaris.
        export::rebind(memseg as usize, vaddr as usize, size, platform::page_size(), platform::pid())
    })
}

/// Publishes the segment under `*segment_id` (0: the system picks one and
/// stores it there) for the nodes and modes in `access_list`.
///
/// # Safety
/// `segment_id` points to a readable (and, for 0, writable) id;
/// `access_list` to `access_list_length` entries.
#[no_mangle]
pub unsafe extern "C" fn rsm_memseg_export_publish(
    memseg: rsm_memseg_export_handle_t,
    segment_id: *mut rsm_memseg_id_t,
    access_list: *mut rsmapi_access_entry_t,
    access_list_length: uint_t,
) -> c_int {
    entry!(rsm_memseg_export_publish(memseg, segment_id, access_list, access_list_length) {
        non_null(segment_id, RsmError::BadSegid)?;
        non_null(memseg, RsmError::BadSegHndl)?;
        if access_list_length > 0 && access_list.is_null() {
            return Err(RsmError::BadAcl);
        }
        let requested = uaccess::copy_in(segment_id)?;
        let acl = copy_acl(access_list, access_list_length);
        let id = export::publish(memseg as usize, requested, acl, platform::pid())?;
        if requested == 0 {
            uaccess::copy_out(segment_id, &id)?;
        }
        Ok(())
    })
}

/// Replaces the access list of a published segment; existing connections
/// keep their rights.
///
/// # Safety
/// `access_list` points to `access_list_length` entries.
#[no_mangle]
pub unsafe extern "C" fn rsm_memseg_export_republish(
    memseg: rsm_memseg_export_handle_t,
    access_list: *mut rsmapi_access_entry_t,
    access_list_length: uint_t,
) -> c_int {
    entry!(rsm_memseg_export_republish(memseg, access_list, access_list_length) {
        non_null(memseg, RsmError::BadSegHndl)?;
        if !export::is_published(memseg as usize)? {
            return Err(RsmError::SegNotPublished);
        }
        if access_list_length > 0 && access_list.is_null() {
            return Err(RsmError::BadAcl);
        }
        let acl = copy_acl(access_list, access_list_length);
        export::republish(memseg as usize, acl, platform::pid())
    })
}

/// Withdraws the segment; every importer is forcibly disconnected.
///
/// # Safety
/// None beyond passing a value; stale and forged handles are rejected.
#[no_mangle]
pub unsafe extern "C" fn rsm_memseg_export_unpublish(memseg: rsm_memseg_export_handle_t) -> c_int {
    entry!(rsm_memseg_export_unpublish(memseg) {
        non_null(memseg, RsmError::BadSegHndl)?;
        export::unpublish(memseg as usize, platform::pid())
    })
}
