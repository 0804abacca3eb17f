//! The window's layout, version 2 (docs/window-format.md is the reference;
//! keep the two in step). Every word is little-endian and naturally
//! aligned, and is touched only through atomics: other processes, on this
//! host or across the bridge, read and write the same memory.
//!
//! ```text
//! 0x00000  header          4 KiB    magic, version, node, heartbeat, layout
//! 0x01000  processes       64 x 64 B    who is attached, each with a heartbeat
//! 0x02000  directory       256 x 256 B  segments: seqlock, extent, owner, ACL
//! 0x12000  import slots    64 nodes x 16 x 512 B  requests, grants, counters
//! 0xA0000  data            to the end   segment memory (extents of the directory)
//! ```
//!
//! Who writes what: the header, the process table and the directory only
//! processes of the window's own node, under the node lock (`flock` of the
//! window file); an import slot, the importer that claimed it (request,
//! `up` posts, `down` takes, its release) and the owner's agent (the
//! answer, `up` takes, `down` posts, abort). Slots are partitioned by
//! importing node, so a node can exhaust only its own share.

use crate::config::NodeId;
use crate::transport::events::{Counter, Words};
use std::sync::atomic::{fence, AtomicU16, AtomicU32, AtomicU64, Ordering};

/// `"RSMWINDW"` read as a little-endian u64.
pub const MAGIC: u64 = u64::from_le_bytes(*b"RSMWINDW");
/// Layout version; a window of another version is never written to.
pub const VERSION: u32 = 2;

// Header fields (offsets). The first 48 bytes mean the same in every
// version: magic, version, node, size, format id, heartbeat, time.
/// u64: `MAGIC`, written last when formatting.
pub const H_MAGIC: usize = 0;
/// u32: `VERSION`.
pub const H_VERSION: usize = 8;
/// u32: the node that owns the window.
pub const H_NODE: usize = 12;
/// u64: the window's size in bytes.
pub const H_SIZE: usize = 16;
/// u64: changes every time the window is formatted (peers re-check all).
pub const H_FORMAT_ID: usize = 24;
/// u64: bumped by every attached process once per heartbeat period.
pub const H_HEARTBEAT: usize = 32;
/// u64: CLOCK_REALTIME (ns) of the last beat; informative across hosts.
pub const H_TIME: usize = 40;
/// u32: `READY` once formatted.
pub const H_STATE: usize = 48;
/// u32: page size of the host that formatted it.
pub const H_PAGE: usize = 52;
/// u32 pairs: offset and count of the process table, directory, slots.
pub const H_PROCS_OFF: usize = 56;
/// u32.
pub const H_PROCS: usize = 60;
/// u32.
pub const H_DIR_OFF: usize = 64;
/// u32.
pub const H_DIR: usize = 68;
/// u32.
pub const H_SLOTS_OFF: usize = 72;
/// u32.
pub const H_SLOTS_PER_NODE: usize = 76;
/// u32: how many importing nodes have a partition of slots.
pub const H_SLOT_NODES: usize = 80;
/// u64: start of the data area.
pub const H_DATA_OFF: usize = 88;
/// u64: its length.
pub const H_DATA_LEN: usize = 96;
/// `H_STATE` value of a formatted window.
pub const READY: u32 = 1;

/// Process table: one entry per attached process of the owning node.
pub const PROCS_OFF: usize = 0x1000;
/// Entries in the process table.
pub const PROCS: usize = 64;
/// Size of one process entry.
pub const PROC_LEN: usize = 64;
/// u32: `FREE` or `LIVE`.
pub const P_STATE: usize = 0;
/// u32: process id (on its host).
pub const P_PID: usize = 4;
/// u32: bumped at every claim, so a reused entry is a different process.
pub const P_INCARNATION: usize = 8;
/// u32: effective uid (informative).
pub const P_UID: usize = 12;
/// u64: bumped once per heartbeat period by the process's agent.
pub const P_HEARTBEAT: usize = 16;
/// u64: CLOCK_REALTIME (ns) of its last beat.
pub const P_TIME: usize = 24;
/// u64: inode of its pid namespace: `P_PID` means something to another
/// process of the node only within the same one.
pub const P_PIDNS: usize = 32;
/// A free entry (also a free slot or directory entry).
pub const FREE: u32 = 0;
/// A process attached now (or dead without detaching: see its heartbeat).
pub const LIVE: u32 = 1;

/// Directory: one entry per export segment of the owning node.
pub const DIR_OFF: usize = 0x2000;
/// Entries in the directory: the most export segments a node has.
pub const DIR_ENTRIES: usize = 256;
/// Size of one directory entry.
pub const ENTRY_LEN: usize = 256;
const E_SEQ: usize = 0;
const E_STATE: usize = 4;
const E_SEGID: usize = 8;
const E_GENERATION: usize = 12;
const E_OWNER_PROC: usize = 16;
const E_OWNER_INCARNATION: usize = 20;
const E_OWNER_PID: usize = 24;
const E_UID: usize = 28;
const E_GID: usize = 32;
const E_MODE: usize = 36;
const E_OFFSET: usize = 40;
const E_LENGTH: usize = 48;
const E_ACL_LEN: usize = 56;
const E_ACL_MASK: usize = 64;
const E_ACL_PERM: usize = 72;
/// Entry states: memory allocated, not importable.
pub const BOUND: u32 = 1;
/// Importable.
pub const PUBLISHED: u32 = 2;
/// Destroyed (or its owner died); the memory is freed once no importer
/// still refers to it.
pub const DRAINING: u32 = 3;

/// Import slots, partitioned by importing node.
pub const SLOTS_OFF: usize = DIR_OFF + DIR_ENTRIES * ENTRY_LEN;
/// Importing nodes with a partition (node ids 0..=63).
pub const SLOT_NODES: usize = 64;

/// The header's layout fields and their values in this version: written at
/// format, checked at attach.
const LAYOUT: [(usize, usize); 7] = [
    (H_PROCS_OFF, PROCS_OFF),
    (H_PROCS, PROCS),
    (H_DIR_OFF, DIR_OFF),
    (H_DIR, DIR_ENTRIES),
    (H_SLOTS_OFF, SLOTS_OFF),
    (H_SLOTS_PER_NODE, SLOTS_PER_NODE),
    (H_SLOT_NODES, SLOT_NODES),
];
/// Slots of one importing node in one window.
pub const SLOTS_PER_NODE: usize = 16;
/// All slots.
pub const SLOTS: usize = SLOT_NODES * SLOTS_PER_NODE;
/// Size of one import slot.
pub const SLOT_LEN: usize = 512;
/// u32: the slot's state (below).
pub const S_STATE: usize = 0;
/// u32: the `RSMERR_*` of a refusal.
pub const S_STATUS: usize = 4;
/// u32: importing node (must be the partition's).
pub const S_NODE: usize = 8;
/// u32: importing process id.
pub const S_PID: usize = 12;
/// u32: its entry in its own node's process table.
pub const S_PROC: usize = 16;
/// u32: that entry's incarnation.
pub const S_PROC_INCARNATION: usize = 20;
/// u32: the uid the importer claims.
pub const S_UID: usize = 24;
/// u32: the gid the importer claims.
pub const S_GID: usize = 28;
/// u32: `RSM_PERM_*` requested.
pub const S_REQUESTED: usize = 32;
/// u32: `RSM_PERM_*` granted.
pub const S_GRANTED: usize = 36;
/// u32: directory entry of the segment.
pub const S_DIR_INDEX: usize = 40;
/// u32: its generation when the importer looked.
pub const S_DIR_GENERATION: usize = 44;
/// u32: the segment id asked for.
pub const S_SEGID: usize = 48;
/// u32: `FLAG_*`.
pub const S_FLAGS: usize = 52;
/// u32: supplementary groups that follow (at most `MAX_GROUPS`).
pub const S_NGROUPS: usize = 56;
/// u32 x 16: supplementary groups the importer claims.
pub const S_GROUPS: usize = 64;
/// The importer claims `CAP_IPC_OWNER`.
pub const FLAG_IPC_OWNER: u32 = 1;
/// Groups carried in a request.
pub const MAX_GROUPS: usize = 16;
/// Counters (transport::events): importer -> exporter posts, and takes.
pub const S_UP_POSTED: usize = 128;
/// The `wakes` word next to `up` posted (unused on a window: nobody
/// sleeps on a futex across hosts).
pub const S_UP_WAKES: usize = 136;
/// u64: `flags` of `up` (transport::events).
pub const S_UP_FLAGS: usize = 144;
/// u64: `extra` of `up`: posts of processes other than the importer.
pub const S_UP_EXTRA: usize = 152;
/// u64.
pub const S_UP_CONSUMED: usize = 192;
/// Exporter -> importer.
pub const S_DOWN_POSTED: usize = 256;
/// As `S_UP_WAKES`.
pub const S_DOWN_WAKES: usize = 264;
/// As `S_UP_FLAGS`.
pub const S_DOWN_FLAGS: usize = 272;
/// As `S_UP_EXTRA`.
pub const S_DOWN_EXTRA: usize = 280;
/// u64.
pub const S_DOWN_CONSUMED: usize = 320;
/// Slot states: taken by an importer, request being written.
pub const CLAIMED: u32 = 1;
/// Request complete, waiting for the owner's agent.
pub const REQUESTED: u32 = 2;
/// Admitted: `S_GRANTED` holds the rights.
pub const GRANTED: u32 = 3;
/// Refused: `S_STATUS` says why; the importer frees the slot.
pub const REFUSED: u32 = 4;
/// Forcibly disconnected by the owner (unpublish, destroy, death).
pub const ABORTED: u32 = 5;
/// The importer let go; the owner's agent frees the slot.
pub const RELEASED: u32 = 6;

/// Start of the data area: after the slots, on a 64 KiB boundary (every
/// page size in use divides it).
pub const DATA_OFF: usize = (SLOTS_OFF + SLOTS * SLOT_LEN).next_multiple_of(0x1_0000);

const _: () = assert!(DATA_OFF == 0xA_0000);
const _: () = assert!((DATA_OFF as u64) < crate::config::MIN_WINDOW_SIZE);
const _: () = assert!(E_ACL_PERM + 2 * 64 <= ENTRY_LEN);
const _: () = assert!(PROCS_OFF + PROCS * PROC_LEN <= DIR_OFF);

/// A node's window as this process has it mapped: the memory and the
/// descriptor (segments are mapped from it at their offsets).
pub struct Window {
    base: usize,
    len: usize,
    /// The node whose window it is.
    pub node: NodeId,
    /// The file (a BAR resource, a device, a file in /dev/shm).
    pub fd: std::os::fd::OwnedFd,
    /// Where the window starts in the file.
    pub file_offset: u64,
}

// SAFETY: the mapping is only read and written through atomics (and by
// copies the callers make into ranges they own, the segments).
unsafe impl Send for Window {}
// SAFETY: as above.
unsafe impl Sync for Window {}

impl Drop for Window {
    fn drop(&mut self) {
        // SAFETY: our own mapping; references into it do not outlive
        // `self` (they borrow it).
        unsafe { libc::munmap(self.base as *mut _, self.len) };
    }
}

impl Window {
    /// Maps `len` bytes of `fd` from `file_offset`, read-write, shared.
    pub fn map(
        fd: std::os::fd::OwnedFd,
        file_offset: u64,
        len: usize,
        node: NodeId,
    ) -> std::io::Result<Window> {
        use std::os::fd::AsRawFd;
        if len < DATA_OFF {
            return Err(std::io::Error::from_raw_os_error(libc::EINVAL));
        }
        // SAFETY: a fresh shared mapping where the kernel chooses.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                file_offset as libc::off_t,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Window {
            base: p as usize,
            len,
            node,
            fd,
            file_offset,
        })
    }

    /// Length in bytes.
    #[allow(clippy::len_without_is_empty)] // a window is never empty
    pub fn len(&self) -> usize {
        self.len
    }

    /// Where the window is mapped in this process.
    pub fn base(&self) -> usize {
        self.base
    }

    /// The data area's length.
    pub fn data_len(&self) -> usize {
        self.len - DATA_OFF
    }

    /// The u32 at `off`.
    pub fn u32(&self, off: usize) -> &AtomicU32 {
        assert!(
            off % 4 == 0 && off + 4 <= self.len,
            "window offset {off:#x}"
        );
        // SAFETY: aligned and inside the mapping, which lives as long as
        // `self`; shared words are only accessed atomically.
        unsafe { &*((self.base + off) as *const AtomicU32) }
    }

    /// The u64 at `off`.
    pub fn u64(&self, off: usize) -> &AtomicU64 {
        assert!(
            off % 8 == 0 && off + 8 <= self.len,
            "window offset {off:#x}"
        );
        // SAFETY: as `u32`, 8-aligned.
        unsafe { &*((self.base + off) as *const AtomicU64) }
    }

    fn u16(&self, off: usize) -> &AtomicU16 {
        assert!(
            off % 2 == 0 && off + 2 <= self.len,
            "window offset {off:#x}"
        );
        // SAFETY: as `u32`, 2-aligned.
        unsafe { &*((self.base + off) as *const AtomicU16) }
    }

    /// Reads the u32 header field at `off`.
    pub fn header(&self, off: usize) -> u32 {
        self.u32(off).load(Ordering::Acquire)
    }

    /// Why this is not a formatted version-1 window of `node` of `len`
    /// bytes, if it is not.
    pub fn check(&self) -> Result<(), &'static str> {
        if self.u64(H_MAGIC).load(Ordering::Acquire) != MAGIC {
            return Err("not formatted (no magic)");
        }
        if self.header(H_VERSION) != VERSION {
            return Err("another layout version");
        }
        if self.header(H_NODE) != self.node {
            return Err("formatted for another node");
        }
        if self.u64(H_SIZE).load(Ordering::Relaxed) != self.len as u64 {
            return Err("formatted with another size");
        }
        if self.header(H_STATE) != READY {
            return Err("being formatted");
        }
        let data = self.u64(H_DATA_OFF).load(Ordering::Relaxed) == DATA_OFF as u64
            && self.u64(H_DATA_LEN).load(Ordering::Relaxed) == self.data_len() as u64;
        if !data || LAYOUT.iter().any(|&(f, v)| self.header(f) as usize != v) {
            return Err("layout fields disagree with the version");
        }
        Ok(())
    }

    /// Formats the window for `self.node`: clears the control area and
    /// writes the header, magic last. The caller holds the node lock.
    pub fn format(&self, format_id: u64, page: usize) {
        self.u64(H_MAGIC).store(0, Ordering::SeqCst);
        self.u32(H_STATE).store(0, Ordering::SeqCst);
        // The heartbeat goes on counting across formats.
        let beat = self.u64(H_HEARTBEAT).load(Ordering::Relaxed);
        for off in (8..DATA_OFF).step_by(8) {
            self.u64(off).store(0, Ordering::Relaxed);
        }
        self.u32(H_VERSION).store(VERSION, Ordering::Relaxed);
        self.u32(H_NODE).store(self.node, Ordering::Relaxed);
        self.u64(H_SIZE).store(self.len as u64, Ordering::Relaxed);
        self.u64(H_FORMAT_ID).store(format_id, Ordering::Relaxed);
        self.u64(H_HEARTBEAT).store(beat, Ordering::Relaxed);
        self.u32(H_PAGE).store(page as u32, Ordering::Relaxed);
        for (f, v) in LAYOUT {
            self.u32(f).store(v as u32, Ordering::Relaxed);
        }
        self.u64(H_DATA_OFF)
            .store(DATA_OFF as u64, Ordering::Relaxed);
        self.u64(H_DATA_LEN)
            .store(self.data_len() as u64, Ordering::Relaxed);
        self.u32(H_STATE).store(READY, Ordering::SeqCst);
        self.u64(H_MAGIC).store(MAGIC, Ordering::SeqCst);
    }

    /// The format id (changes at every format).
    pub fn format_id(&self) -> u64 {
        self.u64(H_FORMAT_ID).load(Ordering::Acquire)
    }

    /// Offset of field `f` of process entry `i`.
    pub fn proc(i: usize, f: usize) -> usize {
        assert!(i < PROCS);
        PROCS_OFF + i * PROC_LEN + f
    }

    /// Offset of field `f` of import slot `i`.
    pub fn slot(i: usize, f: usize) -> usize {
        assert!(i < SLOTS);
        SLOTS_OFF + i * SLOT_LEN + f
    }

    /// The state word of import slot `i`.
    pub fn slot_state(&self, i: usize) -> &AtomicU32 {
        self.u32(Self::slot(i, S_STATE))
    }

    /// Reads u32 field `f` of slot `i`.
    pub fn slot_field(&self, i: usize, f: usize) -> u32 {
        self.u32(Self::slot(i, f)).load(Ordering::Relaxed)
    }

    /// Writes u32 field `f` of slot `i`.
    pub fn set_slot_field(&self, i: usize, f: usize, v: u32) {
        self.u32(Self::slot(i, f)).store(v, Ordering::Relaxed)
    }

    /// Importer -> exporter event counter of slot `i`.
    pub fn up(&self, i: usize) -> Counter<'_> {
        Counter::new(Words {
            posted: self.u64(Self::slot(i, S_UP_POSTED)),
            extra: self.u64(Self::slot(i, S_UP_EXTRA)),
            consumed: self.u64(Self::slot(i, S_UP_CONSUMED)),
            flags: self.u64(Self::slot(i, S_UP_FLAGS)),
            wakes: self.u32(Self::slot(i, S_UP_WAKES)),
        })
    }

    /// Exporter -> importer event counter of slot `i`.
    pub fn down(&self, i: usize) -> Counter<'_> {
        Counter::new(Words {
            posted: self.u64(Self::slot(i, S_DOWN_POSTED)),
            extra: self.u64(Self::slot(i, S_DOWN_EXTRA)),
            consumed: self.u64(Self::slot(i, S_DOWN_CONSUMED)),
            flags: self.u64(Self::slot(i, S_DOWN_FLAGS)),
            wakes: self.u32(Self::slot(i, S_DOWN_WAKES)),
        })
    }

    fn entry_off(i: usize, f: usize) -> usize {
        assert!(i < DIR_ENTRIES);
        DIR_OFF + i * ENTRY_LEN + f
    }

    /// The state of directory entry `i`, without the seqlock (one word
    /// is read whole anyway): for scans that then read the entry.
    pub fn entry_state(&self, i: usize) -> u32 {
        self.u32(Self::entry_off(i, E_STATE))
            .load(Ordering::Acquire)
    }

    /// The generation of directory entry `i`, as `entry_state`.
    pub fn entry_generation(&self, i: usize) -> u32 {
        self.u32(Self::entry_off(i, E_GENERATION))
            .load(Ordering::Acquire)
    }

    /// Orders every access before it against every access after it, also
    /// where the window is mapped write-combining (`resource<N>_wc`): x86
    /// lets WC stores pass one another and WC loads run ahead, and a
    /// Release store or Acquire load is a plain `mov`; `mfence` drains the
    /// WC buffers and waits for earlier loads. Used at the control path's
    /// publish and observe points (directory entries, import slot states),
    /// never per signal or data access; on cacheable memory it costs a few
    /// tens of nanoseconds.
    pub fn wc_fence() {
        fence(Ordering::SeqCst);
    }

    /// A consistent copy of directory entry `i` (seqlock read), or `None`
    /// if a writer kept it changing for the whole try (or died in the
    /// middle of a write: the next writer of the node repairs it).
    pub fn read_entry(&self, i: usize) -> Option<Entry> {
        let seq = self.u32(Self::entry_off(i, E_SEQ));
        for attempt in 0..SEQ_TRIES {
            let s1 = seq.load(Ordering::Acquire);
            if s1 & 1 == 0 {
                Self::wc_fence();
                let e = self.load_entry(i);
                Self::wc_fence();
                if seq.load(Ordering::Relaxed) == s1 {
                    return Some(e);
                }
            }
            if attempt > 64 {
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
        None
    }

    fn load_entry(&self, i: usize) -> Entry {
        let u = |f| self.u32(Self::entry_off(i, f)).load(Ordering::Relaxed);
        let q = |f| self.u64(Self::entry_off(i, f)).load(Ordering::Relaxed);
        let mut acl_perm = [0u16; 64];
        for (k, p) in acl_perm.iter_mut().enumerate() {
            *p = self
                .u16(Self::entry_off(i, E_ACL_PERM + 2 * k))
                .load(Ordering::Relaxed);
        }
        Entry {
            state: u(E_STATE),
            segid: u(E_SEGID),
            generation: u(E_GENERATION),
            owner_proc: u(E_OWNER_PROC),
            owner_incarnation: u(E_OWNER_INCARNATION),
            owner_pid: u(E_OWNER_PID),
            uid: u(E_UID),
            gid: u(E_GID),
            mode: u(E_MODE),
            offset: q(E_OFFSET),
            length: q(E_LENGTH),
            acl_len: u(E_ACL_LEN),
            acl_mask: q(E_ACL_MASK),
            acl_perm,
        }
    }

    /// Writes directory entry `i` (seqlock write). The caller holds the
    /// node lock, so there is one writer; an odd sequence found here was
    /// left by a writer that died mid-write, and is moved on.
    pub fn write_entry(&self, i: usize, e: &Entry) {
        let seq = self.u32(Self::entry_off(i, E_SEQ));
        let s = seq.load(Ordering::Relaxed);
        let s = s.wrapping_add(s & 1); // even
        seq.store(s.wrapping_add(1), Ordering::Relaxed);
        Self::wc_fence();
        let u = |f, v| self.u32(Self::entry_off(i, f)).store(v, Ordering::Relaxed);
        let q = |f, v| self.u64(Self::entry_off(i, f)).store(v, Ordering::Relaxed);
        u(E_STATE, e.state);
        u(E_SEGID, e.segid);
        u(E_GENERATION, e.generation);
        u(E_OWNER_PROC, e.owner_proc);
        u(E_OWNER_INCARNATION, e.owner_incarnation);
        u(E_OWNER_PID, e.owner_pid);
        u(E_UID, e.uid);
        u(E_GID, e.gid);
        u(E_MODE, e.mode);
        q(E_OFFSET, e.offset);
        q(E_LENGTH, e.length);
        u(E_ACL_LEN, e.acl_len);
        q(E_ACL_MASK, e.acl_mask);
        for (k, &p) in e.acl_perm.iter().enumerate() {
            self.u16(Self::entry_off(i, E_ACL_PERM + 2 * k))
                .store(p, Ordering::Relaxed);
        }
        Self::wc_fence();
        seq.store(s.wrapping_add(2), Ordering::Release);
    }

    /// Whether entry `i` was left half-written (odd sequence).
    pub fn entry_torn(&self, i: usize) -> bool {
        self.u32(Self::entry_off(i, E_SEQ)).load(Ordering::Acquire) & 1 == 1
    }

    /// The extents of the data area in use: every entry not free.
    pub fn extents(&self) -> Vec<(u64, u64)> {
        (0..DIR_ENTRIES)
            .filter(|&i| self.entry_state(i) != FREE || self.entry_torn(i))
            .filter_map(|i| {
                // A torn entry's extent is unknown: keep all of it in use
                // until the next writer repairs it.
                self.read_entry(i)
                    .map(|e| (e.offset, e.length))
                    .or(Some((DATA_OFF as u64, self.data_len() as u64)))
            })
            .collect()
    }
}

/// Seqlock read attempts before a reader gives up on an entry.
const SEQ_TRIES: u32 = 10_000;

/// A directory entry as read or to be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// `FREE`, `BOUND`, `PUBLISHED`, `DRAINING`.
    pub state: u32,
    /// Segment id while published.
    pub segid: u32,
    /// Bumped at every change of state.
    pub generation: u32,
    /// The exporting process's entry in the process table.
    pub owner_proc: u32,
    /// That entry's incarnation.
    pub owner_incarnation: u32,
    /// The exporting process's id.
    pub owner_pid: u32,
    /// Exporter's effective uid (spec 5.1 "owner of the file").
    pub uid: u32,
    /// Exporter's effective gid.
    pub gid: u32,
    /// Its creation mode (`0777 & ~umask`).
    pub mode: u32,
    /// Offset of the segment's memory in the window.
    pub offset: u64,
    /// Its length.
    pub length: u64,
    /// ACL entries published (0: every node, with `mode`).
    pub acl_len: u32,
    /// Bit n: node n has an ACL entry (the first one counts).
    pub acl_mask: u64,
    /// Per node, the permission of its first ACL entry.
    pub acl_perm: [u16; 64],
}

impl Default for Entry {
    fn default() -> Self {
        Entry {
            state: FREE,
            segid: 0,
            generation: 0,
            owner_proc: 0,
            owner_incarnation: 0,
            owner_pid: 0,
            uid: 0,
            gid: 0,
            mode: 0,
            offset: 0,
            length: 0,
            acl_len: 0,
            acl_mask: 0,
            acl_perm: [0; 64],
        }
    }
}

impl Entry {
    /// Stores an ACL (spec 4.4) in the entry's per-node form: the first
    /// entry of a node decides (spec 5.1), nodes above 63 can never
    /// connect and only count toward the length.
    pub fn set_acl(&mut self, acl: &[crate::core::permission::AccessEntry]) {
        self.acl_len = acl.len() as u32;
        self.acl_mask = 0;
        self.acl_perm = [0; 64];
        for a in acl {
            if a.node < 64 && self.acl_mask & (1 << a.node) == 0 {
                self.acl_mask |= 1 << a.node;
                self.acl_perm[a.node as usize] = a.perm as u16;
            }
        }
    }

    /// The ACL back in list form (in node order), for surveys.
    pub fn acl(&self) -> Vec<crate::core::permission::AccessEntry> {
        (0..64u32)
            .filter(|n| self.acl_mask & (1 << n) != 0)
            .map(|n| crate::core::permission::AccessEntry {
                node: n,
                perm: u32::from(self.acl_perm[n as usize]),
            })
            .collect()
    }

    /// Whether the extent lies in the data area of a `window_len` window,
    /// page-aligned: what a peer checks before it maps anything a
    /// directory (possibly a hostile one) points at.
    pub fn extent_ok(&self, window_len: usize, page: usize) -> bool {
        let page = page as u64;
        self.length > 0
            && self.offset >= DATA_OFF as u64
            && self.offset % page == 0
            && self.length % page == 0
            && self
                .offset
                .checked_add(self.length)
                .is_some_and(|end| end <= window_len as u64)
    }
}

/// First fit: the lowest offset in `[start, end)`, a multiple of `align`,
/// where `len` bytes overlap none of the `used` extents. The allocator of
/// the data area: segments are the extents of the directory, so nothing
/// else has to be kept consistent with it (a process that dies holds its
/// extents through its entries, which the node reclaims).
pub fn first_fit(
    mut used: Vec<(u64, u64)>,
    start: u64,
    end: u64,
    len: u64,
    align: u64,
) -> Option<u64> {
    if len == 0 || align == 0 {
        return None;
    }
    used.sort_unstable();
    let mut at = start.next_multiple_of(align);
    for (off, l) in used {
        let stop = off.saturating_add(l);
        if stop <= at {
            continue;
        }
        if off >= at.checked_add(len)? {
            break; // the gap before this extent fits
        }
        at = stop.next_multiple_of(align);
    }
    (at.checked_add(len)? <= end).then_some(at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::FromRawFd;
    use std::sync::atomic::AtomicBool;

    fn window(len: usize, node: NodeId) -> Window {
        // SAFETY: a NUL-terminated name.
        let fd = unsafe { libc::memfd_create(c"window-test".as_ptr(), libc::MFD_CLOEXEC) };
        assert!(fd >= 0);
        // SAFETY: memfd_create returned a descriptor we own.
        let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
        // SAFETY: plain call on our descriptor.
        assert_eq!(unsafe { libc::ftruncate(fd_raw(&fd), len as i64) }, 0);
        Window::map(fd, 0, len, node).unwrap()
    }

    fn fd_raw(fd: &std::os::fd::OwnedFd) -> i32 {
        std::os::fd::AsRawFd::as_raw_fd(fd)
    }

    #[test]
    fn format_and_check() {
        let w = window(2 << 20, 3);
        assert_eq!(w.check(), Err("not formatted (no magic)"));
        w.format(42, 4096);
        assert_eq!(w.check(), Ok(()));
        assert_eq!(w.format_id(), 42);
        assert_eq!(w.header(H_NODE), 3);
        assert_eq!(w.data_len(), (2 << 20) - DATA_OFF);
        // The same memory seen as another node's window is refused.
        let other = Window::map(
            dup(&w.fd),
            0,
            2 << 20,
            4, // another node
        )
        .unwrap();
        assert_eq!(other.check(), Err("formatted for another node"));
        w.u32(H_VERSION).store(VERSION + 1, Ordering::SeqCst);
        assert_eq!(w.check(), Err("another layout version"));
        w.u32(H_VERSION).store(VERSION, Ordering::SeqCst);
        w.u32(H_DIR).store(7, Ordering::SeqCst);
        assert_eq!(w.check(), Err("layout fields disagree with the version"));
        // Formatting again clears everything but keeps the heartbeat.
        w.u64(H_HEARTBEAT).store(99, Ordering::SeqCst);
        w.write_entry(
            5,
            &Entry {
                state: PUBLISHED,
                ..Entry::default()
            },
        );
        w.format(43, 4096);
        assert_eq!(w.check(), Ok(()));
        assert_eq!(w.entry_state(5), FREE);
        assert_eq!(w.u64(H_HEARTBEAT).load(Ordering::SeqCst), 99);
    }

    fn dup(fd: &std::os::fd::OwnedFd) -> std::os::fd::OwnedFd {
        fd.try_clone().unwrap()
    }

    /// An entry whose every field is derived from `k`, so a reader can
    /// tell a torn copy (fields from two writes) from a whole one.
    fn entry_of(k: u32) -> Entry {
        let mut e = Entry {
            state: PUBLISHED,
            segid: k,
            generation: k.wrapping_mul(3),
            owner_proc: k % 64,
            owner_incarnation: k ^ 0x5555,
            owner_pid: k.wrapping_add(1000),
            uid: k.wrapping_mul(7),
            gid: k.wrapping_mul(11),
            mode: k & 0o777,
            offset: u64::from(k) << 12,
            length: (u64::from(k) << 13) | 1,
            acl_len: k % 65,
            acl_mask: u64::from(k).wrapping_mul(0x9E37_79B9_7F4A_7C15),
            acl_perm: [0; 64],
        };
        for (n, p) in e.acl_perm.iter_mut().enumerate() {
            *p = (k as u16).wrapping_add(n as u16);
        }
        e
    }

    fn whole(e: &Entry) -> bool {
        *e == entry_of(e.segid)
    }

    /// A writer rewriting an entry as fast as it can never makes a reader
    /// (in another thread, through another mapping of the same memory, as
    /// a peer has it) see fields of two different writes.
    #[test]
    fn concurrent_writer_never_shows_a_torn_entry() {
        let w = window(1 << 20, 1);
        w.format(1, 4096);
        let peer = Window::map(dup(&w.fd), 0, 1 << 20, 1).unwrap();
        w.write_entry(9, &entry_of(0));
        let done = AtomicBool::new(false);
        let reads = AtomicU64::new(0);
        std::thread::scope(|s| {
            s.spawn(|| {
                for k in 1..=200_000u32 {
                    w.write_entry(9, &entry_of(k));
                }
                done.store(true, Ordering::SeqCst);
            });
            for _ in 0..2 {
                s.spawn(|| {
                    let mut last = 0;
                    while !done.load(Ordering::SeqCst) {
                        if let Some(e) = peer.read_entry(9) {
                            assert!(whole(&e), "torn entry: {e:?}");
                            assert!(e.segid >= last, "went back in time");
                            last = e.segid;
                            reads.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                });
            }
        });
        assert!(reads.load(Ordering::Relaxed) > 0);
        assert_eq!(peer.read_entry(9), Some(entry_of(200_000)));
    }

    #[test]
    fn a_writer_that_died_mid_write_is_repaired_by_the_next() {
        let w = window(1 << 20, 1);
        w.format(1, 4096);
        w.write_entry(0, &entry_of(5));
        // Die between the odd sequence and the even one.
        w.u32(DIR_OFF).fetch_add(1, Ordering::SeqCst);
        assert!(w.entry_torn(0));
        assert_eq!(w.read_entry(0), None, "readers give up");
        assert_eq!(
            w.extents(),
            vec![(DATA_OFF as u64, w.data_len() as u64)],
            "a torn extent keeps the whole area"
        );
        w.write_entry(0, &entry_of(6));
        assert!(!w.entry_torn(0));
        assert_eq!(w.read_entry(0), Some(entry_of(6)));
    }

    #[test]
    fn acl_round_trip_first_entry_decides() {
        use crate::core::permission::AccessEntry;
        let mut e = Entry::default();
        let acl = [
            AccessEntry {
                node: 3,
                perm: 0o640,
            },
            AccessEntry {
                node: 64,
                perm: 0o666,
            },
            AccessEntry {
                node: 3,
                perm: 0o666,
            },
            AccessEntry {
                node: 0,
                perm: 0o400,
            },
        ];
        e.set_acl(&acl);
        assert_eq!(e.acl_len, 4);
        assert_eq!(
            e.acl(),
            vec![
                AccessEntry {
                    node: 0,
                    perm: 0o400
                },
                AccessEntry {
                    node: 3,
                    perm: 0o640
                },
            ]
        );
        e.set_acl(&[]);
        assert_eq!((e.acl_len, e.acl_mask), (0, 0));
    }

    #[test]
    fn extents_are_checked_before_use() {
        let page = 4096;
        let len = 2 << 20;
        let e = |offset, length| Entry {
            offset,
            length,
            ..Entry::default()
        };
        assert!(e(DATA_OFF as u64, 4096).extent_ok(len, page));
        assert!(e(len as u64 - 4096, 4096).extent_ok(len, page));
        assert!(
            !e(DATA_OFF as u64 - 4096, 4096).extent_ok(len, page),
            "control area"
        );
        assert!(
            !e(len as u64 - 4096, 8192).extent_ok(len, page),
            "past the end"
        );
        assert!(
            !e(DATA_OFF as u64 + 1, 4096).extent_ok(len, page),
            "unaligned"
        );
        assert!(!e(DATA_OFF as u64, 0).extent_ok(len, page), "empty");
        assert!(
            !e(DATA_OFF as u64, 100).extent_ok(len, page),
            "not whole pages"
        );
        assert!(!e(u64::MAX - 4095, 8192).extent_ok(len, page), "overflow");
    }

    #[test]
    fn first_fit_allocates_the_lowest_gap() {
        let (s, e, p) = (0x10000u64, 0x20000u64, 0x1000u64);
        assert_eq!(first_fit(vec![], s, e, 0x1000, p), Some(s));
        assert_eq!(first_fit(vec![], s, e, 0x10000, p), Some(s));
        assert_eq!(first_fit(vec![], s, e, 0x11000, p), None, "too big");
        assert_eq!(first_fit(vec![], s, e, 0, p), None);
        let used = vec![(0x12000, 0x2000), (0x10000, 0x1000), (0x16000, 0x1000)];
        assert_eq!(first_fit(used.clone(), s, e, 0x1000, p), Some(0x11000));
        assert_eq!(first_fit(used.clone(), s, e, 0x2000, p), Some(0x14000));
        assert_eq!(first_fit(used.clone(), s, e, 0x3000, p), Some(0x17000));
        assert_eq!(first_fit(used.clone(), s, e, 0x9000, p), Some(0x17000));
        assert_eq!(first_fit(used, s, e, 0xA000, p), None);
        // Overlapping and out-of-area extents (a torn entry) are covered.
        let odd = vec![(0x10000, 0x8000), (0x11000, 0x1000), (0, 0x12000)];
        assert_eq!(first_fit(odd, s, e, 0x1000, p), Some(0x18000));
        // Alignment of the start and after unaligned extents.
        assert_eq!(
            first_fit(vec![(0x10000, 0x10)], s, e, 0x1000, p),
            Some(0x11000)
        );
        assert_eq!(first_fit(vec![], 0x10001, e, 0x1000, p), Some(0x11000));
        assert_eq!(
            first_fit(vec![(u64::MAX - 5, 10)], s, e, 0x1000, p),
            Some(s)
        );
    }

    /// Allocating and freeing at random never hands out overlapping
    /// extents and never fails while a fitting gap exists.
    #[test]
    fn first_fit_never_overlaps() {
        let (s, e, p) = (0u64, 256 * 4096u64, 4096u64);
        let mut live: Vec<(u64, u64)> = Vec::new();
        let mut x = 12345u64;
        for _ in 0..5000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if x % 3 == 0 && !live.is_empty() {
                let i = (x / 3) as usize % live.len();
                live.swap_remove(i);
                continue;
            }
            let len = (1 + x % 16) * p;
            match first_fit(live.clone(), s, e, len, p) {
                Some(at) => {
                    assert!(at % p == 0 && at + len <= e);
                    for &(o, l) in &live {
                        assert!(at + len <= o || o + l <= at, "overlap");
                    }
                    live.push((at, len));
                }
                None => {
                    // No gap of `len` anywhere: check by brute force.
                    let fits = (0..e / p).any(|pg| {
                        let at = pg * p;
                        at + len <= e && live.iter().all(|&(o, l)| at + len <= o || o + l <= at)
                    });
                    assert!(!fits, "a gap of {len:#x} was missed");
                }
            }
        }
    }
}
