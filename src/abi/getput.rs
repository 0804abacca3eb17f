//! `rsm_memseg_import_get(3RSM)` and `rsm_memseg_import_put(3RSM)`: the
//! get/put family (spec 4.6). No system call and no lock on this path: a
//! handle lookup, the checks, the copy, and in implicit mode a fence and a
//! generation check.

use super::types::{rsm_memseg_import_handle_t, ulong_t};
use super::{entry, non_null};
use crate::core::import::{self, Word};
use crate::error::{RsmError, RsmResult};
use std::ffi::{c_int, c_void};
use std::mem::size_of;

/// The checks the library makes before looking at the segment (spec 4.6
/// steps 1-4), then the element count as a length.
fn local<T>(
    h: rsm_memseg_import_handle_t,
    p: *const T,
    offset: libc::off_t,
    n: ulong_t,
) -> RsmResult<usize> {
    non_null(h, RsmError::BadSegHndl)?;
    non_null(p, RsmError::BadAddr)?;
    let das = size_of::<T>();
    if (p as usize) % das != 0 || offset.rem_euclid(das as i64) != 0 {
        return Err(RsmError::BadMemAlignment);
    }
    let n = usize::try_from(n).map_err(|_| RsmError::BadLength)?;
    // A Rust slice may not exceed isize::MAX bytes: longer is no valid
    // length of any buffer (and must never reach slice construction).
    n.checked_mul(das)
        .filter(|&bytes| bytes <= isize::MAX as usize)
        .ok_or(RsmError::BadLength)?;
    Ok(n)
}

/// Body of the gets.
///
/// # Safety
/// `datap` points to `rep_cnt` writable elements (the C contract).
unsafe fn get<T: Word>(
    h: rsm_memseg_import_handle_t,
    offset: libc::off_t,
    datap: *mut T,
    rep_cnt: ulong_t,
) -> RsmResult<()> {
    let n = local(h, datap, offset, rep_cnt)?;
    // SAFETY: non-NULL and aligned (checked above); the caller provides
    // `n` elements, as with memcpy in C.
    let dst = unsafe { std::slice::from_raw_parts_mut(datap, n) };
    import::get(h as usize, offset, dst)
}

/// Body of the puts.
///
/// # Safety
/// `datap` points to `rep_cnt` readable elements (the C contract).
unsafe fn put<T: Word>(
    h: rsm_memseg_import_handle_t,
    offset: libc::off_t,
    datap: *const T,
    rep_cnt: ulong_t,
) -> RsmResult<()> {
    let n = local(h, datap, offset, rep_cnt)?;
    // SAFETY: as in get.
    let src = unsafe { std::slice::from_raw_parts(datap, n) };
    import::put(h as usize, offset, src)
}

/// Copies `length` bytes from the segment at `offset` to `dst_addr`.
///
/// # Safety
/// `dst_addr` points to `length` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn rsm_memseg_import_get(
    im_memseg: rsm_memseg_import_handle_t,
    offset: libc::off_t,
    dst_addr: *mut c_void,
    length: usize,
) -> c_int {
    // SAFETY: the caller's contract, passed on.
    entry!(rsm_memseg_import_get(im_memseg, offset, dst_addr, length) { unsafe { get(im_memseg, offset, dst_addr.cast::<u8>(), length as ulong_t) } })
}

/// Reads `rep_cnt` bytes, one load each.
///
/// # Safety
/// `datap` points to `rep_cnt` writable elements.
#[no_mangle]
pub unsafe extern "C" fn rsm_memseg_import_get8(
    im_memseg: rsm_memseg_import_handle_t,
    offset: libc::off_t,
    datap: *mut u8,
    rep_cnt: ulong_t,
) -> c_int {
    // SAFETY: the caller's contract, passed on.
    entry!(rsm_memseg_import_get8(im_memseg, offset, datap, rep_cnt) { unsafe { get(im_memseg, offset, datap, rep_cnt) } })
}

/// Reads `rep_cnt` 16-bit values, one native load each.
///
/// # Safety
/// `datap` points to `rep_cnt` writable elements.
#[no_mangle]
pub unsafe extern "C" fn rsm_memseg_import_get16(
    im_memseg: rsm_memseg_import_handle_t,
    offset: libc::off_t,
    datap: *mut u16,
    rep_cnt: ulong_t,
) -> c_int {
    // SAFETY: the caller's contract, passed on.
    entry!(rsm_memseg_import_get16(im_memseg, offset, datap, rep_cnt) { unsafe { get(im_memseg, offset, datap, rep_cnt) } })
}

/// Reads `rep_cnt` 32-bit values, one native load each.
///
/// # Safety
/// `datap` points to `rep_cnt` writable elements.
#[no_mangle]
pub unsafe extern "C" fn rsm_memseg_import_get32(
    im_memseg: rsm_memseg_import_handle_t,
    offset: libc::off_t,
    datap: *mut u32,
    rep_cnt: ulong_t,
) -> c_int {
    // SAFETY: the caller's contract, passed on.
    entry!(rsm_memseg_import_get32(im_memseg, offset, datap, rep_cnt) { unsafe { get(im_memseg, offset, datap, rep_cnt) } })
}

/// Reads `rep_cnt` 64-bit values, one native load each.
///
/// # Safety
/// `datap` points to `rep_cnt` writable elements.
#[no_mangle]
pub unsafe extern "C" fn rsm_memseg_import_get64(
    im_memseg: rsm_memseg_import_handle_t,
    offset: libc::off_t,
    datap: *mut u64,
    rep_cnt: ulong_t,
) -> c_int {
    // SAFETY: the caller's contract, passed on.
    entry!(rsm_memseg_import_get64(im_memseg, offset, datap, rep_cnt) { unsafe { get(im_memseg, offset, datap, rep_cnt) } })
}

/// Copies `length` bytes from `src_addr` into the segment at `offset`.
///
/// # Safety
/// `src_addr` points to `length` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn rsm_memseg_import_put(
    im_memseg: rsm_memseg_import_handle_t,
    offset: libc::off_t,
    src_addr: *mut c_void,
    length: usize,
) -> c_int {
    // SAFETY: the caller's contract, passed on.
    entry!(rsm_memseg_import_put(im_memseg, offset, src_addr, length) { unsafe { put(im_memseg, offset, src_addr.cast::<u8>(), length as ulong_t) } })
}

/// Writes `rep_cnt` bytes, one store each.
///
/// # Safety
/// `datap` points to `rep_cnt` readable elements.
#[no_mangle]
pub unsafe extern "C" fn rsm_memseg_import_put8(
    im_memseg: rsm_memseg_import_handle_t,
    offset: libc::off_t,
    datap: *mut u8,
    rep_cnt: ulong_t,
) -> c_int {
    // SAFETY: the caller's contract, passed on.
    entry!(rsm_memseg_import_put8(im_memseg, offset, datap, rep_cnt) { unsafe { put(im_memseg, offset, datap, rep_cnt) } })
}

/// Writes `rep_cnt` 16-bit values, one native store each.
///
/// # Safety
/// `datap` points to `rep_cnt` readable elements.
#[no_mangle]
pub unsafe extern "C" fn rsm_memseg_import_put16(
    im_memseg: rsm_memseg_import_handle_t,
    offset: libc::off_t,
    datap: *mut u16,
    rep_cnt: ulong_t,
) -> c_int {
    // SAFETY: the caller's contract, passed on.
    entry!(rsm_memseg_import_put16(im_memseg, offset, datap, rep_cnt) { unsafe { put(im_memseg, offset, datap, rep_cnt) } })
}

/// Writes `rep_cnt` 32-bit values, one native store each.
///
/// # Safety
/// `datap` points to `rep_cnt` readable elements.
#[no_mangle]
pub unsafe extern "C" fn rsm_memseg_import_put32(
    im_memseg: rsm_memseg_import_handle_t,
    offset: libc::off_t,
    datap: *mut u32,
    rep_cnt: ulong_t,
) -> c_int {
    // SAFETY: the caller's contract, passed on.
    entry!(rsm_memseg_import_put32(im_memseg, offset, datap, rep_cnt) { unsafe { put(im_memseg, offset, datap, rep_cnt) } })
}

/// Writes `rep_cnt` 64-bit values, one native store each.
///
/// # Safety
/// `datap` points to `rep_cnt` readable elements.
#[no_mangle]
pub unsafe extern "C" fn rsm_memseg_import_put64(
    im_memseg: rsm_memseg_import_handle_t,
    offset: libc::off_t,
    datap: *mut u64,
    rep_cnt: ulong_t,
) -> c_int {
    // SAFETY: the caller's contract, passed on.
    entry!(rsm_memseg_import_put64(im_memseg, offset, datap, rep_cnt) { unsafe { put(im_memseg, offset, datap, rep_cnt) } })
}
