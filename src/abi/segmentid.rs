//! `rsm_get_segmentid_range(3RSM)` (spec 4.3).

use super::entry;
use super::types::rsm_memseg_id_t;
use crate::core::segmentid;
use crate::error::RsmError;
use crate::uaccess;
use std::ffi::{c_char, c_int};

/// Longest appid read; the Solaris parser's whole line was 256 bytes.
const MAX_APPID: usize = 255;

/// Looks up the segment ids reserved for `appid` in `/etc/rsm/rsm.segmentid`
/// (or `$RSM_SEGMENTID_FILE`): `[*baseid, *baseid + *length)`.
///
/// # Safety
/// `appid` is a C string; `baseid` and `length` point to writable storage.
#[no_mangle]
pub unsafe extern "C" fn rsm_get_segmentid_range(
    appid: *const c_char,
    baseid: *mut rsm_memseg_id_t,
    length: *mut u32,
) -> c_int {
    entry!(rsm_get_segmentid_range(appid, baseid, length) {
        if appid.is_null() || baseid.is_null() || length.is_null() {
            return Err(RsmError::BadAddr);
        }
        // An appid longer than any line of the file matches no line.
        let appid = uaccess::copy_in_cstr(appid, MAX_APPID)?.ok_or(RsmError::BadAppid)?;
        let (base, len) = segmentid::range(&appid)?;
        uaccess::copy_out(baseid, &base)?;
        uaccess::copy_out(length, &len)
    })
}
