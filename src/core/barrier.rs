//! Barriers (spec 4.8): a span of accesses whose success `close` reports.
//! Open records the segment's forced-disconnect generation; order is a
//! release fence; close is a full fence and the generation check. Unlike
//! Solaris, open state is tracked: close or order without open is
//! `RSMERR_BARRIER_NOT_OPENED` (documented, never returned by Solaris).

use crate::core::import;
use crate::error::{RsmError, RsmResult};
use std::sync::atomic::{fence, Ordering};

/// A barrier's state, kept by the caller (in `rsmapi_barrier_t`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Barrier {
    /// The import handle it was initialised for; 0 if never.
    pub seg: usize,
    /// Generation snapshot taken at open.
    pub gnum: u16,
    /// Between open and close.
    pub opened: bool,
}

/// `rsm_memseg_import_init_barrier`: binds the barrier (identified by its
/// address `id`) to the segment and makes it the current one.
pub fn init(b: &mut Barrier, handle: usize, id: usize) -> RsmResult<()> {
    import::attach_barrier(handle, id)?;
    *b = Barrier {
        seg: handle,
        gnum: b.gnum,
        opened: false,
    };
    Ok(())
}

/// `rsm_memseg_import_open_barrier`.
pub fn open(b: &mut Barrier) -> RsmResult<()> {
    if b.seg == 0 {
        return Err(RsmError::BarrierUninitialized);
    }
    // The generation the connection was made with (0; spec 4.8), not the
    // current one: a barrier opened after a forced disconnect must not
    // close successfully over the anonymous pages that replaced the data.
    import::generation(b.seg)?;
    b.gnum = 0;
    b.opened = true;
    Ok(())
}

/// `rsm_memseg_import_order_barrier`: writes before it complete before
/// writes after it.
pub fn order(b: &Barrier) -> RsmResult<()> {
    if b.seg == 0 {
        return Err(RsmError::BarrierUninitialized);
    }
    if !b.opened {
        return Err(RsmError::BarrierNotOpened);
    }
    // The segment must still be a segment (a thread-local lookup, no
    // shared lock): a barrier whose handle was overwritten is refused.
    import::generation(b.seg)?;
    fence(Ordering::Release);
    Ok(())
}

/// `rsm_memseg_import_close_barrier`: succeeds only if every access since
/// open reached the segment (no forced disconnect in between).
pub fn close(b: &mut Barrier) -> RsmResult<()> {
    if b.seg == 0 {
        return Err(RsmError::BarrierUninitialized);
    }
    if !b.opened {
        return Err(RsmError::BarrierNotOpened);
    }
    fence(Ordering::SeqCst);
    b.opened = false;
    if import::generation(b.seg)? as u16 != b.gnum {
        return Err(RsmError::ConnAborted);
    }
    Ok(())
}

/// `rsm_memseg_import_destroy_barrier`: the segment has no current barrier
/// afterwards, whichever was current (spec 4.8).
pub fn destroy(b: &mut Barrier) -> RsmResult<()> {
    if b.seg == 0 {
        return Err(RsmError::BarrierUninitialized);
    }
    // Its segment must still be connected (as for open, order and close):
    // after a disconnect the handle is stale like any other.
    import::detach_barrier(b.seg)?;
    b.opened = false;
    Ok(())
}
