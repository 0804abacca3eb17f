//! Import segments (spec 4.5): connect, map, unmap, disconnect, with the
//! checks in the order Solaris makes them.

use crate::core::controller;
use crate::core::permission::{PERM_READ, PERM_WRITE};
use crate::core::pollfd::PollfdRefs;
use crate::error::{RsmError, RsmResult};
use crate::handles::{HandleTable, Kind};
use crate::transport::ImportPort;
use parking_lot::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};

/// How the segment is mapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mapped {
    /// By `rsm_memseg_import_map`.
    Explicit,
    /// By get/put (the data path, issue 4).
    Implicit,
}

struct State {
    mapped: Option<Mapped>,
    pollfd_refs: PollfdRefs,
}

/// An import segment.
pub struct ImportSegment {
    /// Requested at connect.
    pub perm: u32,
    port: Box<dyn ImportPort>,
    state: Mutex<State>,
}

static IMPORTS: LazyLock<HandleTable<Arc<ImportSegment>>> =
    LazyLock::new(|| HandleTable::new(Kind::Import));
static LIVE: AtomicU64 = AtomicU64::new(0);

fn lookup(handle: usize) -> RsmResult<Arc<ImportSegment>> {
    Ok(Arc::clone(&*IMPORTS.get(handle, RsmError::BadSegHndl)?))
}

/// `rsm_memseg_import_connect`, after the ABI's checks of `ctrl` and the
/// out-pointer.
pub fn connect(ctrl: usize, node: u32, segid: u32, perm: u32) -> RsmResult<usize> {
    let controller = controller::lookup(ctrl)?;
    if perm & !(PERM_READ | PERM_WRITE) != 0 {
        return Err(RsmError::PermDenied);
    }
    if LIVE.load(Ordering::Relaxed) >= controller.transport.attributes()?.max_import_segments {
        return Err(RsmError::InsufficientResources);
    }
    // Loopback reaches only this node (spec 5.6).
    if controller.loopback && node != controller.local_node {
        return Err(RsmError::CtlrNotPresent);
    }
    let port = controller
        .transport
        .connect(controller.local_node, node, segid, perm)?;
    let segment = ImportSegment {
        perm,
        port,
        state: Mutex::new(State {
            mapped: None,
            pollfd_refs: PollfdRefs::default(),
        }),
    };
    let handle = IMPORTS.insert(Arc::new(segment))?;
    LIVE.fetch_add(1, Ordering::Relaxed);
    Ok(handle)
}

/// `rsm_memseg_import_disconnect`. Works after a forced disconnect too.
pub fn disconnect(handle: usize) -> RsmResult<()> {
    let seg = lookup(handle)?;
    {
        let mut state = seg.state.lock();
        match state.mapped {
            Some(Mapped::Explicit) => return Err(RsmError::SegStillMapped),
            Some(Mapped::Implicit) => {
                let _ = seg.port.unmap();
                state.mapped = None;
            }
            None => {}
        }
        state.pollfd_refs.check_unused()?;
    }
    if !IMPORTS.remove(handle) {
        return Err(RsmError::BadSegHndl);
    }
    LIVE.fetch_sub(1, Ordering::Relaxed);
    Ok(())
}

/// Arguments of `rsm_memseg_import_map` after conversion.
#[derive(Debug, Clone, Copy)]
pub struct MapRequest {
    /// `RSM_MAP_FIXED` with this address, or the system chooses.
    pub fixed: Option<usize>,
    /// `RSM_PERM_*` bits.
    pub perm: u32,
    /// Offset into the segment (may be negative from C).
    pub offset: i64,
    /// Bytes.
    pub len: usize,
}

/// `rsm_memseg_import_map` (spec 4.5, in order after the NULL checks).
pub fn map(handle: usize, req: MapRequest, page: usize) -> RsmResult<usize> {
    let seg = lookup(handle)?;
    let mut state = seg.state.lock();
    if state.mapped.is_some() {
        return Err(RsmError::SegAlreadyMapped);
    }
    if req.perm > 0o600 {
        return Err(RsmError::BadPerms);
    }
    if req.len == 0 {
        return Err(RsmError::BadLength);
    }
    let offset = usize::try_from(req.offset).map_err(|_| RsmError::BadOffset)?;
    if offset
        .checked_add(req.len)
        .is_none_or(|end| end > seg.port.size())
    {
        return Err(RsmError::BadLength);
    }
    if offset % page != 0 || req.fixed.is_some_and(|a| a % page != 0) {
        return Err(RsmError::BadMemAlignment);
    }
    if seg.port.aborted() {
        return Err(RsmError::ConnAborted);
    }
    // Rights beyond what connect granted: the kernel would refuse them too
    // (the descriptor is read-only), this only makes the answer exact.
    if req.perm & !seg.port.rights() != 0 {
        return Err(RsmError::BadPerms);
    }
    let addr = seg.port.map(req.fixed, offset, req.len, req.perm)?;
    state.mapped = Some(Mapped::Explicit);
    Ok(addr)
}

/// `rsm_memseg_import_unmap`.
pub fn unmap(handle: usize) -> RsmResult<()> {
    let seg = lookup(handle)?;
    let mut state = seg.state.lock();
    if state.mapped.is_none() {
        return Err(RsmError::SegNotMapped);
    }
    let _ = seg.port.unmap();
    state.mapped = None;
    Ok(())
}

/// `rsm_memseg_get_pollfd` on an import handle.
pub fn get_pollfd(handle: usize) -> RsmResult<i32> {
    let seg = lookup(handle)?;
    let mut state = seg.state.lock();
    state.pollfd_refs.take()?;
    Ok(seg.port.pollfd())
}

/// `rsm_memseg_release_pollfd` on an import handle.
pub fn release_pollfd(handle: usize) -> RsmResult<()> {
    let seg = lookup(handle)?;
    let mut state = seg.state.lock();
    state.pollfd_refs.release();
    Ok(())
}
