//! Local memory handles (spec 4.7): names for local buffers used again and
//! again in `RSM_HANDLE_TYPE` scatter/gather entries.

use crate::core::controller;
use crate::error::{RsmError, RsmResult};
use crate::handles::{HandleTable, Kind};
use std::sync::LazyLock;

/// A registered local buffer.
struct LocalMemory {
    addr: usize,
    len: usize,
}

static LOCAL: LazyLock<HandleTable<LocalMemory>> =
    LazyLock::new(|| HandleTable::new(Kind::LocalMemory));

/// `rsm_create_localmemory_handle`, after the ABI's checks of the address
/// and the out-pointer.
pub fn create(ctrl: usize, addr: usize, len: usize) -> RsmResult<usize> {
    controller::lookup(ctrl)?;
    if len == 0 {
        return Err(RsmError::BadLength);
    }
    crate::oom::headroom()?;
    LOCAL.insert(LocalMemory { addr, len })
}

/// `rsm_free_localmemory_handle`.
pub fn free(ctrl: usize, handle: usize) -> RsmResult<()> {
    controller::lookup(ctrl)?;
    if LOCAL.remove(handle) {
        Ok(())
    } else {
        Err(RsmError::BadLocalmemHndl)
    }
}

/// The address of `[offset, offset + len)` of the buffer behind `handle`;
/// outside it: `RSMERR_BAD_LENGTH`.
pub fn resolve(handle: usize, offset: usize, len: usize) -> RsmResult<usize> {
    let mem = LOCAL.get(handle, RsmError::BadLocalmemHndl)?;
    if offset.checked_add(len).is_none_or(|end| end > mem.len) {
        return Err(RsmError::BadLength);
    }
    Ok(mem.addr + offset)
}
