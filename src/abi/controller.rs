//! `rsm_get_controller(3RSM)`: get, attributes, release (spec 4.1).

use super::types::{rsmapi_controller_attr_t, rsmapi_controller_handle_t, MAXNAMELEN};
use super::{entry, non_null};
use crate::core::controller;
use crate::error::RsmError;
use crate::uaccess;
use std::ffi::{c_char, c_int};

/// Opens the controller `name` (`"loopback"`, `"shm0"`, or one from the
/// config file; NULL means loopback) and stores its handle in `*controller`.
/// A second get of the same controller returns the same handle.
///
/// # Safety
/// `name` is NULL or a C string; `controller` points to writable storage.
/// Bad pointers are reported (`RSMERR_BAD_ADDR`), not dereferenced blindly.
#[no_mangle]
pub unsafe extern "C" fn rsm_get_controller(
    name: *mut c_char,
    controller: *mut rsmapi_controller_handle_t,
) -> c_int {
    entry!(rsm_get_controller(name, controller) {
        non_null(controller, RsmError::BadCtlrHndl)?;
        let name = if name.is_null() {
            None
        } else {
            // No controller name fills MAXNAMELEN; a longer one names nothing.
            let bytes = uaccess::copy_in_cstr(name, MAXNAMELEN - 1)?.ok_or(RsmError::CtlrNotPresent)?;
            Some(String::from_utf8(bytes).map_err(|_| RsmError::CtlrNotPresent)?)
        };
        let handle = controller::get(name.as_deref())?;
        let out = handle as rsmapi_controller_handle_t;
        uaccess::copy_out(controller, &out).inspect_err(|_| {
            let _ = controller::release(handle);
        })
    })
}

/// Copies the controller's attributes into `*attr`.
///
/// # Safety
/// `attr` points to writable storage for one `rsmapi_controller_attr_t`.
#[no_mangle]
pub unsafe extern "C" fn rsm_get_controller_attr(
    chdl: rsmapi_controller_handle_t,
    attr: *mut rsmapi_controller_attr_t,
) -> c_int {
    entry!(rsm_get_controller_attr(chdl, attr) {
        non_null(chdl, RsmError::BadCtlrHndl)?;
        non_null(attr, RsmError::BadAddr)?;
        let a = controller::attributes(chdl as usize)?;
        let out = rsmapi_controller_attr_t {
            attr_direct_access_sizes: a.direct_access_sizes,
            attr_atomic_sizes: a.atomic_sizes,
            attr_page_size: a.page_size,
            attr_max_export_segment_size: a.max_export_segment_size,
            attr_tot_export_segment_size: a.tot_export_segment_size,
            attr_max_export_segments: a.max_export_segments,
            attr_max_import_map_size: a.max_import_map_size,
            attr_tot_import_map_size: a.tot_import_map_size,
            attr_max_import_segments: a.max_import_segments,
        };
        uaccess::copy_out(attr, &out)
    })
}

/// Drops one reference to the controller; the last release closes it.
///
/// # Safety
/// None beyond passing a value; stale and forged handles are rejected.
#[no_mangle]
pub unsafe extern "C" fn rsm_release_controller(controller: rsmapi_controller_handle_t) -> c_int {
    entry!(rsm_release_controller(controller) {
        controller::release(controller as usize)
    })
}
