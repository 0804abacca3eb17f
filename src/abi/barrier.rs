//! `rsm_memseg_import_init_barrier(3RSM)`, `_open_barrier(3RSM)`,
//! `_set_mode(3RSM)`: barriers and the barrier mode (spec 4.8).
//!
//! The caller owns the `rsmapi_barrier_t`. `seg` and `gnum` mean what they
//! meant on Solaris; `privdata` (the plugin's field) holds our open state.
//! Init checks the pointer through the kernel (`RSMERR_BAD_BARRIER_PTR`);
//! open, order and close then use the initialised struct directly, so they
//! stay free of system calls.

use super::types::{
    rsm_barrier_mode_raw, rsm_barrier_mode_t, rsm_barrier_type_raw, rsm_memseg_import_handle_t,
    rsmapi_barrier_t,
};
use super::{entry, non_null};
use crate::core::barrier::{self, Barrier};
use crate::core::import;
use crate::error::{RsmError, RsmResult};
use crate::uaccess;
use std::ffi::{c_int, c_void};

/// `privdata` of an initialised, closed barrier ("RSMB").
const CLOSED: usize = 0x5253_4D42_0000_0000;
/// `privdata` of an open barrier.
const OPENED: usize = CLOSED | 1;

fn to_core(b: &rsmapi_barrier_t) -> Barrier {
    Barrier {
        seg: b.seg as usize,
        gnum: b.gnum,
        opened: b.privdata as usize == OPENED,
    }
}

fn store(b: &mut rsmapi_barrier_t, s: Barrier) {
    b.seg = s.seg as *mut c_void;
    b.gnum = s.gnum;
    b.privdata = (if s.opened { OPENED } else { CLOSED }) as *mut c_void;
}

/// Runs `op` on the caller's barrier.
///
/// # Safety
/// `barrier` is NULL or points to an `rsmapi_barrier_t` of the caller.
unsafe fn with_barrier(
    barrier: *mut rsmapi_barrier_t,
    op: impl FnOnce(&mut Barrier) -> RsmResult<()>,
) -> RsmResult<()> {
    if barrier.is_null() || !barrier.is_aligned() {
        return Err(RsmError::BadBarrierPtr);
    }
    // SAFETY: non-NULL and aligned; initialised by init_barrier, which
    // checked it through the kernel (the C contract keeps it valid).
    let b = unsafe { &mut *barrier };
    let mut state = to_core(b);
    let result = op(&mut state);
    store(b, state);
    result
}

/// Binds `barrier` to the segment and makes it the one implicit mode uses.
/// `type` is ignored, as on Solaris.
///
/// # Safety
/// `barrier` points to caller-owned storage for an `rsmapi_barrier_t` that
/// outlives its use.
#[no_mangle]
pub unsafe extern "C" fn rsm_memseg_import_init_barrier(
    im_memseg: rsm_memseg_import_handle_t,
    r#type: rsm_barrier_type_raw,
    barrier: *mut rsmapi_barrier_t,
) -> c_int {
    entry!(rsm_memseg_import_init_barrier(im_memseg, r#type, barrier) {
        non_null(im_memseg, RsmError::BadSegHndl)?;
        non_null(barrier, RsmError::BadBarrierPtr)?;
        let mut raw = uaccess::copy_in(barrier).map_err(|_| RsmError::BadBarrierPtr)?;
        let mut state = to_core(&raw);
        barrier::init(&mut state, im_memseg as usize, barrier as usize)?;
        store(&mut raw, state);
        uaccess::copy_out(barrier, &raw).map_err(|_| RsmError::BadBarrierPtr)
    })
}

/// Starts a span of accesses.
///
/// # Safety
/// `barrier` was initialised by `rsm_memseg_import_init_barrier`.
#[no_mangle]
pub unsafe extern "C" fn rsm_memseg_import_open_barrier(barrier: *mut rsmapi_barrier_t) -> c_int {
    // SAFETY: the caller's contract, passed on.
    entry!(rsm_memseg_import_open_barrier(barrier) { unsafe { with_barrier(barrier, barrier::open) } })
}

/// Orders the writes before it before the writes after it.
///
/// # Safety
/// `barrier` was initialised by `rsm_memseg_import_init_barrier`.
#[no_mangle]
pub unsafe extern "C" fn rsm_memseg_import_order_barrier(barrier: *mut rsmapi_barrier_t) -> c_int {
    // SAFETY: the caller's contract, passed on.
    entry!(rsm_memseg_import_order_barrier(barrier) { unsafe { with_barrier(barrier, |b| barrier::order(b)) } })
}

/// Ends the span: success means every access since open reached the
/// segment; `RSMERR_CONN_ABORTED` that the exporter went away meanwhile.
///
/// # Safety
/// `barrier` was initialised by `rsm_memseg_import_init_barrier`.
#[no_mangle]
pub unsafe extern "C" fn rsm_memseg_import_close_barrier(barrier: *mut rsmapi_barrier_t) -> c_int {
    // SAFETY: the caller's contract, passed on.
    entry!(rsm_memseg_import_close_barrier(barrier) { unsafe { with_barrier(barrier, barrier::close) } })
}

/// Detaches the barrier from its segment; implicit-mode get/put then fail
/// with `RSMERR_BARRIER_UNINITIALIZED` until another barrier is initialised.
///
/// # Safety
/// `barrier` was initialised by `rsm_memseg_import_init_barrier`.
#[no_mangle]
pub unsafe extern "C" fn rsm_memseg_import_destroy_barrier(
    barrier: *mut rsmapi_barrier_t,
) -> c_int {
    // SAFETY: the caller's contract, passed on.
    entry!(rsm_memseg_import_destroy_barrier(barrier) { unsafe { with_barrier(barrier, barrier::destroy) } })
}

/// Stores the segment's barrier mode in `*mode`.
///
/// # Safety
/// `mode` points to writable storage.
#[no_mangle]
pub unsafe extern "C" fn rsm_memseg_import_get_mode(
    im_memseg: rsm_memseg_import_handle_t,
    mode: *mut rsm_barrier_mode_t,
) -> c_int {
    entry!(rsm_memseg_import_get_mode(im_memseg, mode) {
        non_null(im_memseg, RsmError::BadSegHndl)?;
        let value = if import::get_mode(im_memseg as usize)? == import::MODE_IMPLICIT {
            rsm_barrier_mode_t::RSM_BARRIER_MODE_IMPLICIT
        } else {
            rsm_barrier_mode_t::RSM_BARRIER_MODE_EXPLICIT
        };
        uaccess::copy_out(mode, &value)
    })
}

/// Sets the barrier mode: `RSM_BARRIER_MODE_EXPLICIT` or `_IMPLICIT`.
///
/// # Safety
/// None beyond passing values; bad handles and modes are rejected.
#[no_mangle]
pub unsafe extern "C" fn rsm_memseg_import_set_mode(
    im_memseg: rsm_memseg_import_handle_t,
    mode: rsm_barrier_mode_raw,
) -> c_int {
    entry!(rsm_memseg_import_set_mode(im_memseg, mode) {
        non_null(im_memseg, RsmError::BadSegHndl)?;
        import::set_mode(im_memseg as usize, mode)
    })
}
