//! The interconnect behind a controller. `core/` speaks only this trait;
//! each backend hides its mechanism (sockets and memfds for `shm`, later a
//! shared memory window). `events` is the counter protocol every backend's
//! signals share (DESIGN.md 5.6).

pub mod events;
pub mod process;
pub mod shm;
pub mod survey;
pub mod window;

use crate::config::NodeId;
use crate::core::permission::Peer;
use crate::error::{RsmError, RsmResult};
use std::os::fd::RawFd;
use std::sync::Arc;

/// Limits and sizes of a controller, as `rsmapi_controller_attr_t` reports
/// them: the values the transport enforces, not placeholders.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ControllerAttributes {
    /// `RSM_DAS*` bits of the loads and stores get/put use.
    pub direct_access_sizes: u32,
    /// `RSM_DAS*` bits of the sizes that are single-copy atomic.
    pub atomic_sizes: u32,
    /// Granule of export addresses and lengths.
    pub page_size: usize,
    /// Largest export segment.
    pub max_export_segment_size: usize,
    /// Most memory all export segments of this process may hold.
    pub tot_export_segment_size: usize,
    /// Most export segments a process may hold.
    pub max_export_segments: u64,
    /// Largest single import mapping.
    pub max_import_map_size: usize,
    /// Most address space all import mappings may take.
    pub tot_import_map_size: usize,
    /// Most import segments a process may hold.
    pub max_import_segments: u64,
}

/// Keeps this process visible on a fabric while it lives.
pub trait Presence: Send + Sync {}

/// One interconnect instance, as seen by one process.
pub trait Transport: Send + Sync {
    /// The attributes a controller on this transport reports.
    fn attributes(&self) -> RsmResult<ControllerAttributes>;

    /// The most import segments a process may hold at once (checked on
    /// every connect, so it should not cost what `attributes` may).
    fn max_import_segments(&self) -> RsmResult<u64> {
        Ok(self.attributes()?.max_import_segments)
    }

    /// Hardware address of `node` on this interconnect (topology `*_hwaddr`).
    fn hwaddr(&self, node: NodeId) -> u64;

    /// Makes this process, as `node`, visible to others on the fabric until
    /// the returned value drops. `label` tells apart several controllers of
    /// one process on one fabric.
    fn announce(&self, node: NodeId, label: &str) -> RsmResult<Box<dyn Presence>>;

    /// Node ids of the processes visible on the fabric now (with repeats
    /// removed, in increasing order; may include the caller's own node).
    fn nodes_present(&self) -> RsmResult<Vec<NodeId>>;

    /// Makes `[vaddr, vaddr + len)` of this process shareable in place: the
    /// program keeps using its pointer, importers will see the same bytes.
    fn bind(&self, vaddr: usize, len: usize) -> RsmResult<Box<dyn ExportPort>>;

    /// Connects, as `local_node`, to segment `segid` of `node`, asking for
    /// `perm` (`RSM_PERM_*` bits). The exporter decides (spec 5.1).
    fn connect(
        &self,
        local_node: NodeId,
        node: NodeId,
        segid: u32,
        perm: u32,
    ) -> RsmResult<Box<dyn ImportPort>>;

    /// The processes present on the fabric, with their controllers.
    fn present(&self) -> RsmResult<Vec<survey::Present>>;

    /// The segments published on the fabric that this host can reach,
    /// each with what its exporter lets this process see.
    fn survey(&self) -> RsmResult<Vec<survey::SegmentReport>>;
}

/// Who may connect to a published segment: core's permission model, asked
/// by the transport with the credentials the kernel reports for the peer.
pub trait Admission: Send + Sync {
    /// The rights (`RSM_PERM_*` bits) `peer` gets for `requested`, or why not.
    fn admit(&self, peer: &Peer, requested: u32) -> RsmResult<u32>;
    /// The exporter's credentials and ACL, for `rsminfo`.
    fn access(&self) -> survey::Access;

    /// The segment's owner, whose uid and gid decide which mode bits
    /// apply to a peer (so a peer's supplementary groups are read only
    /// when they can matter).
    fn owner(&self) -> crate::core::permission::Owner;
}

/// One importer of a published segment, for tools and tests.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ImporterInfo {
    /// Its process id.
    pub pid: u32,
    /// Its effective uid.
    pub uid: u32,
    /// The node it connected as.
    pub node: NodeId,
    /// The rights it was given.
    pub rights: u32,
}

/// Signals of one segment (spec 4.9), the same for both kinds: each has
/// an event counter with counting-semaphore semantics.
pub trait Signals: Send + Sync {
    /// Export: one event to every importer connected now. Import: one
    /// event to the exporter; after a forced disconnect it silently
    /// succeeds, as on Solaris. With `no_accumulate`, a target that has an
    /// event pending gets none.
    fn post(&self, no_accumulate: bool) -> RsmResult<()>;
    /// Consumes one event, waiting up to `timeout_ms` (0: just look;
    /// negative: forever). `RSMERR_TIMEOUT`, `RSMERR_INTERRUPTED`, and on
    /// an import whose exporter went away `RSMERR_CONN_ABORTED`.
    fn wait(&self, timeout_ms: i32) -> RsmResult<()>;
    /// Consumes one event if one is pending (after the pollfd was seen
    /// readable). `Ok(false)` if none; `RSMERR_CONN_ABORTED` if none and
    /// the exporter went away.
    fn take(&self) -> RsmResult<bool>;
    /// The descriptor `rsm_memseg_get_pollfd` hands out: readable while
    /// an event is pending, once `watch(true)` was called.
    fn pollfd(&self) -> RsmResult<RawFd>;
    /// Whether the program holds the pollfd (it may poll at any time, so
    /// every post must make it readable).
    fn watch(&self, on: bool) -> RsmResult<()>;
}

/// The transport's side of an export segment.
pub trait ExportPort: Signals {
    /// Publishes under `segid`, or under a free id from 0x80000000 up if
    /// `segid` is 0; returns the id. Taken: `RSMERR_SEGID_IN_USE`.
    fn publish(&self, node: NodeId, segid: u32, admission: Arc<dyn Admission>) -> RsmResult<u32>;
    /// Stops accepting connects and forcibly disconnects every importer.
    fn unpublish(&self) -> RsmResult<()>;
    /// Moves the segment onto `[vaddr, vaddr + len)` (same length);
    /// importers see the new memory, the old range keeps its data privately.
    fn rebind(&self, vaddr: usize) -> RsmResult<()>;
    /// Unpublishes if needed and gives the program its memory back as
    /// private memory with the segment's last contents.
    fn destroy(&self) -> RsmResult<()>;
    /// The importers connected now.
    fn importers(&self) -> Vec<ImporterInfo>;
}

/// The transport's side of an import segment.
pub trait ImportPort: Signals {
    /// Segment length in bytes.
    fn size(&self) -> usize;
    /// The rights granted at connect (`RSM_PERM_*` bits).
    fn rights(&self) -> u32;
    /// Maps `[offset, offset + len)` with `perm`, at `fixed` if given.
    /// After a forced disconnect: `RSMERR_CONN_ABORTED`.
    fn map(&self, fixed: Option<usize>, offset: usize, len: usize, perm: u32) -> RsmResult<usize>;
    /// Removes the mapping made by `map`.
    fn unmap(&self) -> RsmResult<()>;
    /// Whether the exporter unpublished, destroyed or died.
    fn aborted(&self) -> bool;
    /// The library's own mapping of the whole segment for get/put, with the
    /// granted protection: `(address, segment length)`; `None` without
    /// rights. Made by the first call; the same on every call after, and
    /// mapped (on anonymous memory after a forced disconnect) for as long
    /// as the port lives.
    fn data(&self) -> RsmResult<Option<(usize, usize)>>;
    /// Counts forced disconnects: 0 at connect.
    fn generation(&self) -> u32;
    /// Ends the connection now (the exporter sees the importer leave and
    /// the segment's memory is let go). When `shared`, another thread may
    /// still be inside a get/put on the data mapping: its address range
    /// stays, on anonymous memory, until the port is dropped.
    fn close(&self, shared: bool);
}

/// `PROT_*` for `RSM_PERM_*` bits: the protection an import maps with.
pub(crate) fn prot_of(perm: u32) -> i32 {
    use crate::core::permission::{PERM_READ, PERM_WRITE};
    let mut prot = libc::PROT_NONE;
    if perm & PERM_READ != 0 {
        prot |= libc::PROT_READ;
    }
    if perm & PERM_WRITE != 0 {
        prot |= libc::PROT_WRITE;
    }
    prot
}

/// Address space a new library thread needs beyond its stack: the C
/// library's first allocations in a new thread map memory of their own
/// (a new arena, or single pages when that fails), and a failure there is
/// the C library's fatal error, not an error code.
const THREAD_ROOM: usize = 1 << 20;

/// Starts a library thread (an agent) and returns once it runs, so its
/// start-up allocations (std's thread handle, the C library's list of
/// thread-local destructors) happen now, while the room checked here is
/// there, and not whenever the scheduler gets round to the thread.
/// `RSMERR_INSUFFICIENT_MEM` if the address space has no room for its
/// stack and [`THREAD_ROOM`]; `RSMERR_INSUFFICIENT_RESOURCES` if the
/// thread cannot be made for another reason (a task limit).
pub(crate) fn spawn_started(
    name: &str,
    stack: usize,
    body: impl FnOnce() + Send + 'static,
) -> RsmResult<()> {
    use std::sync::atomic::{AtomicBool, Ordering};
    let room = stack + THREAD_ROOM;
    // SAFETY: an inaccessible, unreserved anonymous mapping, unmapped at once.
    let probe = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            room,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if probe == libc::MAP_FAILED {
        crate::why!("out of memory: no room for a {room}-byte thread; the call makes nothing");
        return Err(RsmError::InsufficientMem);
    }
    // SAFETY: the probe mapping made just above.
    unsafe { libc::munmap(probe, room) };
    let started = std::sync::Arc::new(AtomicBool::new(false));
    let flag = std::sync::Arc::clone(&started);
    std::thread::Builder::new()
        .name(name.into())
        .stack_size(stack)
        .spawn(move || {
            flag.store(true, Ordering::Release);
            drop(flag);
            body()
        })
        .map_err(|_| RsmError::InsufficientResources)?;
    while !started.load(Ordering::Acquire) {
        std::thread::yield_now();
    }
    Ok(())
}

/// A mapping this process made of a segment (or the trash standing in for
/// it after a forced disconnect). Unmapping is its owner's to do, once.
pub struct Mapping {
    /// Its address.
    pub addr: usize,
    /// Its length (whole pages).
    pub len: usize,
}

impl Mapping {
    /// Replaces the mapping with private zero pages, in place: loads and
    /// stores through it keep working, nothing reaches the segment any
    /// more (DESIGN.md 5.4, spec 5.2 "trash").
    pub fn trash(&self) {
        // SAFETY: MAP_FIXED over a mapping of ours that the caller keeps
        // from being unmapped concurrently.
        unsafe {
            libc::mmap(
                self.addr as *mut _,
                self.len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
    }
}

/// Maps `len` bytes of fresh zero-filled memory, read-write, where the
/// kernel chooses. `flags`: `MAP_PRIVATE`, or `MAP_SHARED` (shared with
/// forked children), with `MAP_NORESERVE` if wanted. The address, or the
/// errno.
pub(crate) fn map_anonymous(len: usize, flags: i32) -> Result<usize, i32> {
    // SAFETY: a fresh anonymous mapping where the kernel chooses; nothing
    // of ours is replaced.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            flags | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::ENOMEM));
    }
    Ok(p as usize)
}

/// Maps `len` bytes of `fd` from `offset`, shared, with `prot`, at exactly
/// `fixed` if given (RSM_MAP_FIXED, as with mmap(2)). The address, or the
/// errno for the caller to translate ([`map_error`] for
/// `rsm_memseg_import_map`).
pub(crate) fn map_shared(
    fd: RawFd,
    offset: u64,
    len: usize,
    prot: i32,
    fixed: Option<usize>,
) -> Result<usize, i32> {
    let flags = libc::MAP_SHARED | if fixed.is_some() { libc::MAP_FIXED } else { 0 };
    // SAFETY: maps a segment's descriptor; with MAP_FIXED the caller asked
    // for exactly this address (RSM_MAP_FIXED), as with mmap(2).
    let p = unsafe {
        libc::mmap(
            fixed.unwrap_or(0) as *mut _,
            len,
            prot,
            flags,
            fd,
            offset as libc::off_t,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO));
    }
    Ok(p as usize)
}

/// `rsm_memseg_import_map`'s translation of mmap's errors (spec 4.5 step
/// 10), the same for every transport.
pub(crate) fn map_error(errno: i32) -> RsmError {
    match errno {
        libc::EACCES | libc::EPERM => RsmError::BadPerms,
        libc::ENXIO | libc::EOVERFLOW | libc::ENOMEM => RsmError::BadLength,
        libc::EAGAIN => RsmError::InsufficientResources,
        _ => RsmError::MapFailed,
    }
}

/// Whether `pid` holds CAP_IPC_OWNER (bit 15 of CapEff).
pub(crate) fn has_ipc_owner(pid: i32) -> bool {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return false;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .is_some_and(|caps| caps & (1 << 15) != 0) // bit 15: CAP_IPC_OWNER
}
