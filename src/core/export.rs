//! Export segments (spec 4.4): create, publish, republish, unpublish,
//! rebind, destroy. The checks run in the order Solaris makes them (library
//! checks, then the kernel's); the transport does the work.

use crate::core::cache;
use crate::core::controller::{self, Controller};
use crate::core::permission::{self, AccessEntry, Owner, Peer};
use crate::core::pollfd::PollfdRefs;
use crate::error::{RsmError, RsmResult};
use crate::handles::{HandleTable, Kind};
use crate::transport::survey::Access;
use crate::transport::{Admission, ExportPort};
use parking_lot::{Mutex, RwLock};
use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};

/// `RSM_ALLOW_REBIND`.
pub const ALLOW_REBIND: u32 = 0x01;

/// Who may connect: read by the transport at every connect, changed by
/// republish.
struct Policy {
    owner: Owner,
    acl: RwLock<Vec<AccessEntry>>,
}

impl Admission for Policy {
    fn admit(&self, peer: &Peer, requested: u32) -> RsmResult<u32> {
        permission::admit(&self.acl.read(), &self.owner, peer, requested)
    }
    fn access(&self) -> Access {
        Access {
            owner: self.owner,
            acl: self.acl.read().clone(),
        }
    }
    fn owner(&self) -> Owner {
        self.owner
    }
}

struct State {
    segid: Option<u32>,
    pollfd_refs: PollfdRefs,
}

/// An export segment.
pub struct ExportSegment {
    controller: Arc<Controller>,
    creator: u32,
    flags: u32,
    len: usize,
    vaddr: Mutex<usize>,
    policy: Arc<Policy>,
    port: Box<dyn ExportPort>,
    state: Mutex<State>,
    /// Cleared at destroy, for threads that hold it in their cache.
    live: AtomicBool,
}

thread_local! {
    /// The export segment this thread signalled or waited on last.
    static LAST: RefCell<Option<(usize, Arc<ExportSegment>)>> = const { RefCell::new(None) };
}

/// Runs `f` on the segment behind `handle`, from this thread's cache when
/// it is there (`cache::with`).
fn with<R>(handle: usize, f: impl FnOnce(&ExportSegment) -> RsmResult<R>) -> RsmResult<R> {
    cache::with(&LAST, handle, lookup, f)
}

impl cache::Live for ExportSegment {
    fn live(&self) -> bool {
        self.live.load(Ordering::Acquire)
    }
}

static EXPORTS: LazyLock<HandleTable<Arc<ExportSegment>>> =
    LazyLock::new(|| HandleTable::new(Kind::Export));
static LIVE: AtomicU64 = AtomicU64::new(0);

/// The process's identity as an exporter, from the platform.
#[derive(Debug, Clone, Copy)]
pub struct Creator {
    /// Process id, for the creator check.
    pub pid: u32,
    /// The exporter as a file owner (spec 5.1).
    pub owner: Owner,
}

fn lookup(handle: usize) -> RsmResult<Arc<ExportSegment>> {
    Ok(Arc::clone(&*EXPORTS.get(handle, RsmError::BadSegHndl)?))
}

/// `rsm_memseg_export_create`, after the argument checks of the ABI.
pub fn create(ctrl: usize, vaddr: usize, len: usize, flags: u32, me: Creator) -> RsmResult<usize> {
    let controller = controller::lookup(ctrl)?;
    crate::oom::headroom()?;
    let attrs = controller.transport.attributes()?;
    // Solaris skips the size check for loopback (its maximum was 0).
    if !controller.loopback && len > attrs.max_export_segment_size {
        return Err(RsmError::BadLength);
    }
    if LIVE.load(Ordering::Relaxed) >= attrs.max_export_segments {
        return Err(RsmError::InsufficientResources);
    }
    let port = controller.transport.bind(vaddr, len)?;
    let segment = ExportSegment {
        controller,
        creator: me.pid,
        flags,
        len,
        vaddr: Mutex::new(vaddr),
        policy: Arc::new(Policy {
            owner: me.owner,
            acl: RwLock::new(Vec::new()),
        }),
        port,
        state: Mutex::new(State {
            segid: None,
            pollfd_refs: PollfdRefs::default(),
        }),
        live: AtomicBool::new(true),
    };
    let handle = EXPORTS.insert(Arc::new(segment))?;
    LIVE.fetch_add(1, Ordering::Relaxed);
    Ok(handle)
}

/// `rsm_memseg_export_destroy`. In a forked child this only forgets the
/// handle: the segment belongs to the parent (spec 5.4).
pub fn destroy(handle: usize, pid: u32) -> RsmResult<()> {
    let seg = lookup(handle)?;
    seg.state.lock().pollfd_refs.check_unused()?;
    if !EXPORTS.remove(handle) {
        return Err(RsmError::BadSegHndl); // destroyed concurrently
    }
    seg.live.store(false, Ordering::Release);
    cache::forget(&LAST, handle);
    if seg.creator != pid {
        return Ok(());
    }
    LIVE.fetch_sub(1, Ordering::Relaxed);
    seg.port.destroy()
}

/// Checks `segid` as the library and kernel did (spec 3.3).
fn check_segid(segid: u32) -> RsmResult<()> {
    if segid != 0 && (segid <= 0x3F_FFFF || segid >= 0x8000_0000) {
        return Err(RsmError::ReservedSegid);
    }
    Ok(())
}

/// `rsm_memseg_export_publish`, after the ABI's NULL checks. `acl` is the
/// copied list, or the error copying it gave (reported where the kernel
/// would have, after the creator check). Returns the segment id.
pub fn publish(
    handle: usize,
    segid: u32,
    acl: RsmResult<Vec<AccessEntry>>,
    pid: u32,
) -> RsmResult<u32> {
    let seg = lookup(handle)?;
    let mut state = seg.state.lock();
    if state.segid.is_some() {
        return Err(RsmError::SegAlreadyPublished);
    }
    check_segid(segid)?;
    if seg.creator != pid {
        return Err(RsmError::NotCreator);
    }
    let acl = acl?;
    crate::oom::headroom()?;
    let node = seg.controller.local_node;
    permission::validate_acl(&acl, seg.controller.loopback, node)?;
    *seg.policy.acl.write() = acl;
    let id = seg
        .port
        .publish(node, segid, Arc::clone(&seg.policy) as Arc<dyn Admission>)?;
    state.segid = Some(id);
    Ok(id)
}

/// `rsm_memseg_export_republish`: new connects see the new list; existing
/// connections keep their rights.
pub fn republish(handle: usize, acl: RsmResult<Vec<AccessEntry>>, pid: u32) -> RsmResult<()> {
    let seg = lookup(handle)?;
    let state = seg.state.lock();
    if state.segid.is_none() {
        return Err(RsmError::SegNotPublished);
    }
    if seg.creator != pid {
        return Err(RsmError::NotCreator);
    }
    let acl = acl?;
    permission::validate_acl(&acl, seg.controller.loopback, seg.controller.local_node)?;
    *seg.policy.acl.write() = acl;
    Ok(())
}

/// Whether a segment is published, for the ABI's check order (a NULL list
/// with a length is reported after "not published" by republish).
pub fn is_published(handle: usize) -> RsmResult<bool> {
    Ok(lookup(handle)?.state.lock().segid.is_some())
}

/// `rsm_memseg_export_unpublish`: forcibly disconnects every importer.
pub fn unpublish(handle: usize, pid: u32) -> RsmResult<()> {
    let seg = lookup(handle)?;
    let mut state = seg.state.lock();
    if state.segid.is_none() {
        return Err(RsmError::SegNotPublished);
    }
    if seg.creator != pid {
        return Err(RsmError::NotCreator);
    }
    seg.port.unpublish()?;
    state.segid = None;
    Ok(())
}

/// `rsm_memseg_export_rebind` (spec 4.4, kernel order).
pub fn rebind(handle: usize, vaddr: usize, len: usize, page: usize, pid: u32) -> RsmResult<()> {
    let seg = lookup(handle)?;
    if seg.flags & ALLOW_REBIND == 0 {
        return Err(RsmError::RebindNotAllowed);
    }
    if seg.creator != pid {
        return Err(RsmError::NotCreator);
    }
    if len != seg.len {
        return Err(RsmError::BadLength);
    }
    let mut current = seg.vaddr.lock();
    if *current == vaddr {
        return Ok(());
    }
    if vaddr % page != 0 {
        return Err(RsmError::BadAddr);
    }
    seg.port.rebind(vaddr)?;
    *current = vaddr;
    Ok(())
}

/// Runs `f` on the segment's signals side and its pollfd references,
/// under its state lock (`core::event`).
pub(super) fn with_pollfd_refs<R>(
    handle: usize,
    f: impl FnOnce(&dyn crate::transport::Signals, &mut super::pollfd::PollfdRefs) -> RsmResult<R>,
) -> RsmResult<R> {
    let seg = lookup(handle)?;
    let mut state = seg.state.lock();
    f(&*seg.port, &mut state.pollfd_refs)
}

/// Runs `f` on the signals side of the segment behind `handle`, from
/// this thread's cache (`core::event`).
pub(super) fn on_signals<R>(
    handle: usize,
    f: impl FnOnce(&dyn crate::transport::Signals) -> RsmResult<R>,
) -> RsmResult<R> {
    with(handle, |seg| f(&*seg.port))
}
