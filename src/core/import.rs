//! Import segments (spec 4.5): connect, map, unmap, disconnect, with the
//! checks in the order Solaris makes them.

use crate::core::permission::{PERM_READ, PERM_WRITE};
use crate::core::pollfd::PollfdRefs;
use crate::core::{cache, controller};
use crate::error::{RsmError, RsmResult};
use crate::handles::{HandleTable, Kind};
use crate::transport::ImportPort;
use parking_lot::Mutex;
use std::cell::RefCell;
use std::sync::atomic::{fence, AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, OnceLock};

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

/// `RSM_BARRIER_MODE_EXPLICIT`.
pub const MODE_EXPLICIT: u32 = 0;
/// `RSM_BARRIER_MODE_IMPLICIT`, the mode after connect.
pub const MODE_IMPLICIT: u32 = 1;

/// An import segment.
pub struct ImportSegment {
    /// Requested at connect.
    pub perm: u32,
    port: Box<dyn ImportPort>,
    /// The library's mapping of the whole segment for get/put.
    data: OnceLock<Option<(usize, usize)>>,
    /// `MODE_EXPLICIT` or `MODE_IMPLICIT`.
    mode: AtomicU32,
    /// Identity (address) of the current barrier; 0 for none.
    barrier: AtomicUsize,
    /// Cleared by disconnect: per-thread caches must not use it any more.
    live: AtomicBool,
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
    if LIVE.load(Ordering::Relaxed) >= controller.transport.max_import_segments()? {
        return Err(RsmError::InsufficientResources);
    }
    // Loopback reaches only this node (spec 5.6).
    if controller.loopback && node != controller.local_node {
        return Err(RsmError::CtlrNotPresent);
    }
    crate::oom::headroom()?;
    let port = controller
        .transport
        .connect(controller.local_node, node, segid, perm)?;
    // An exporter grants what was asked or refuses. Other rights would
    // break what get/put/map rely on (fewer: the first put faults on a
    // read-only mapping; more: map could exceed the request), so a peer
    // that answers so is refused like one that said no.
    if port.rights() != perm {
        crate::why!(
            "connect: node {node} segment {segid:#x} granted {:#o} for {perm:#o}; refused",
            port.rights()
        );
        return Err(RsmError::PermDenied);
    }
    let segment = ImportSegment {
        perm,
        data: OnceLock::new(),
        mode: AtomicU32::new(MODE_IMPLICIT),
        barrier: AtomicUsize::new(0),
        live: AtomicBool::new(true),
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
    // Other threads may hold the segment in their cache (see `with`):
    // they stop using it, and the connection ends now, not when they let go.
    seg.live.store(false, Ordering::Release);
    cache::forget(&LAST, handle);
    // Out of the table and of our cache: any other reference is another
    // thread's cache, which may be inside a get/put right now.
    seg.port.close(Arc::strong_count(&seg) > 1);
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

thread_local! {
    /// The segment this thread used last, with its handle: the data path
    /// finds it without touching the shared table (no atomic
    /// read-modify-write per call).
    static LAST: RefCell<Option<(usize, Arc<ImportSegment>)>> = const { RefCell::new(None) };
}

/// Runs `f` on the segment behind `handle`, from this thread's cache when
/// it is there (`cache::with`). The cached reference keeps the data
/// mapping mapped, so a disconnect in another thread during `f` cannot
/// make it fault (disconnect only re-points it at anonymous memory).
fn with<R>(handle: usize, f: impl FnOnce(&ImportSegment) -> RsmResult<R>) -> RsmResult<R> {
    cache::with(&LAST, handle, lookup, f)
}

impl cache::Live for ImportSegment {
    fn live(&self) -> bool {
        self.live.load(Ordering::Acquire)
    }
}

/// An element get/put moves: one native load or store each for 2, 4 and 8
/// bytes, so a concurrent reader never sees half of a value.
pub trait Word: Copy + Default + 'static {}
impl Word for u8 {}
impl Word for u16 {}
impl Word for u32 {}
impl Word for u64 {}

/// Where `[offset, offset + bytes)` is in the data mapping, after the
/// direction, bounds and barrier checks of spec 4.6 (steps 7-9).
fn prepare(seg: &ImportSegment, offset: i64, bytes: usize, need: u32) -> RsmResult<usize> {
    let addr = locate(seg, offset, bytes, need)?;
    if seg.mode.load(Ordering::Relaxed) == MODE_IMPLICIT && seg.barrier.load(Ordering::Relaxed) == 0
    {
        return Err(RsmError::BarrierUninitialized);
    }
    Ok(addr)
}

/// The direction and bounds checks alone: putv/getv need no barrier.
fn locate(seg: &ImportSegment, offset: i64, bytes: usize, need: u32) -> RsmResult<usize> {
    if seg.perm & need == 0 {
        return Err(RsmError::PermDenied);
    }
    let data = match seg.data.get() {
        Some(data) => *data,
        None => first_data(seg)?,
    };
    let (base, size) = data.ok_or(RsmError::PermDenied)?;
    let offset = usize::try_from(offset).map_err(|_| RsmError::BadOffset)?;
    if offset.checked_add(bytes).is_none_or(|end| end > size) {
        return Err(RsmError::BadOffset);
    }
    Ok(base + offset)
}

/// The data mapping on a segment's first get/put (the transport makes it
/// once; racing threads get the same).
#[cold]
fn first_data(seg: &ImportSegment) -> RsmResult<Option<(usize, usize)>> {
    let data = seg.port.data()?;
    Ok(*seg.data.get_or_init(|| data))
}

/// The end of an implicit-mode access: a full fence (the barrier's close)
/// and the generation check (spec 4.6 "Transfer").
fn finish(seg: &ImportSegment) -> RsmResult<()> {
    if seg.mode.load(Ordering::Relaxed) == MODE_IMPLICIT {
        fence(Ordering::SeqCst);
        if seg.port.generation() != 0 {
            return Err(RsmError::ConnAborted);
        }
    }
    Ok(())
}

/// `rsm_memseg_import_get*`: copies from the segment at `offset` into `dst`.
pub fn get<T: Word>(handle: usize, offset: i64, dst: &mut [T]) -> RsmResult<()> {
    with(handle, |seg| get_in(seg, offset, dst))
}

fn get_in<T: Word>(seg: &ImportSegment, offset: i64, dst: &mut [T]) -> RsmResult<()> {
    let bytes = std::mem::size_of_val(dst);
    let src = prepare(seg, offset, bytes, PERM_READ)? as *const T;
    if std::mem::size_of::<T>() == 1 {
        // SAFETY: `src` is inside the data mapping, which stays mapped while
        // the guard holds the segment (on anonymous memory after a forced
        // disconnect); `dst` is the caller's buffer of `bytes` bytes.
        unsafe {
            std::ptr::copy_nonoverlapping(src.cast::<u8>(), dst.as_mut_ptr().cast::<u8>(), bytes)
        };
    } else {
        for (i, d) in dst.iter_mut().enumerate() {
            // SAFETY: as above; `src` is aligned to T (checked by the ABI).
            *d = unsafe { std::ptr::read_volatile(src.add(i)) };
        }
    }
    finish(seg)
}

/// `rsm_memseg_import_put*`: copies `src` into the segment at `offset`.
pub fn put<T: Word>(handle: usize, offset: i64, src: &[T]) -> RsmResult<()> {
    with(handle, |seg| put_in(seg, offset, src))
}

fn put_in<T: Word>(seg: &ImportSegment, offset: i64, src: &[T]) -> RsmResult<()> {
    let bytes = std::mem::size_of_val(src);
    let dst = prepare(seg, offset, bytes, PERM_WRITE)? as *mut T;
    if std::mem::size_of::<T>() == 1 {
        // SAFETY: as in get, in the other direction; the mapping is
        // writable because the import was granted write.
        unsafe {
            std::ptr::copy_nonoverlapping(src.as_ptr().cast::<u8>(), dst.cast::<u8>(), bytes)
        };
    } else {
        for (i, s) in src.iter().enumerate() {
            // SAFETY: as above; `dst` is aligned to T (checked by the ABI).
            unsafe { std::ptr::write_volatile(dst.add(i), *s) };
        }
    }
    finish(seg)
}

/// `rsm_memseg_import_get_mode`.
pub fn get_mode(handle: usize) -> RsmResult<u32> {
    with(handle, |seg| Ok(seg.mode.load(Ordering::Relaxed)))
}

/// `rsm_memseg_import_set_mode`: `RSMERR_BAD_MODE` for other values.
pub fn set_mode(handle: usize, mode: i32) -> RsmResult<()> {
    with(handle, |seg| {
        let mode = match mode {
            0 => MODE_EXPLICIT,
            1 => MODE_IMPLICIT,
            _ => return Err(RsmError::BadMode),
        };
        seg.mode.store(mode, Ordering::Relaxed);
        Ok(())
    })
}

/// Makes the barrier identified by `barrier` (its address) the segment's
/// current one, used by implicit mode.
pub fn attach_barrier(handle: usize, barrier: usize) -> RsmResult<()> {
    with(handle, |seg| {
        seg.barrier.store(barrier, Ordering::Relaxed);
        Ok(())
    })
}

/// Clears the segment's current barrier, whichever it was (spec 4.8).
pub fn detach_barrier(handle: usize) -> RsmResult<()> {
    with(handle, |seg| {
        seg.barrier.store(0, Ordering::Relaxed);
        Ok(())
    })
}

/// The segment's forced-disconnect generation.
pub fn generation(handle: usize) -> RsmResult<u32> {
    with(handle, |seg| Ok(seg.port.generation()))
}

/// One scatter/gather entry, converted by the ABI: the local bytes.
pub enum Local<'a> {
    /// putv: bytes to write into the segment.
    Source(&'a [u8]),
    /// getv: where the segment's bytes go.
    Dest(&'a mut [u8]),
}

/// `rsm_memseg_import_putv` / `_getv` (spec 4.7). Entry `i` of `count` is
/// `entry(i)`: its segment offset and local bytes. Entries are checked
/// (direction, bounds: unlike Solaris' loopback, which checked neither)
/// and copied in order; in implicit mode each is checked against a forced
/// disconnect. On the first failure: `Err((entries completed, error))`.
/// After a complete vector, `post = Some(no_accumulate)` signals the
/// exporter (`RSM_IMPLICIT_SIGPOST`).
pub fn transfer_vector<'a>(
    handle: usize,
    count: usize,
    mut entry: impl FnMut(usize) -> RsmResult<(i64, Local<'a>)>,
    post: Option<bool>,
) -> Result<(), (usize, RsmError)> {
    let mut done = 0;
    with(handle, |seg| {
        for i in 0..count {
            match entry(i)? {
                (offset, Local::Source(src)) => {
                    let dst = locate(seg, offset, src.len(), PERM_WRITE)? as *mut u8;
                    // SAFETY: inside the data mapping, kept mapped while we
                    // hold `seg`; `src` is the caller's buffer.
                    unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), dst, src.len()) };
                }
                (offset, Local::Dest(dst)) => {
                    let src = locate(seg, offset, dst.len(), PERM_READ)? as *const u8;
                    // SAFETY: as above, in the other direction.
                    unsafe { std::ptr::copy_nonoverlapping(src, dst.as_mut_ptr(), dst.len()) };
                }
            }
            finish(seg)?;
            done = i + 1;
        }
        match post {
            Some(no_accumulate) => seg.port.post(no_accumulate),
            None => Ok(()),
        }
    })
    .map_err(|e| (done, e))
}
