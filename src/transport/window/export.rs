//! The exporter's side of the window transport: the segment's memory is
//! an extent of its node's window, mapped in place over the program's
//! range (the trick of `shm/memory.rs`, onto window memory); its
//! directory entry says where it is and who may connect; the agent
//! answers import slots with core's permission model (spec 5.1) applied
//! to the credentials the importer claims.

use super::agent::{NoBell, Wake};
use super::layout::{self, Entry, Window};
use super::memory;
use super::Net;
use crate::config::NodeId;
use crate::core::permission::Peer;
use crate::error::{RsmError, RsmResult};
use crate::transport::events::{self, Counter, LocalCounter, Poster, Waitable, Woke};
use crate::transport::{Admission, ExportPort, ImporterInfo, Signals};
use parking_lot::{Mutex, RwLock};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;

/// Next id tried for a publish with id 0 (spec 3.3: from 0x80000000 up).
static NEXT_SYSTEM_ID: AtomicU32 = AtomicU32::new(0x8000_0000);

struct Published {
    segid: u32,
    admission: Arc<dyn Admission>,
}

struct State {
    /// Where the program has the segment.
    vaddr: usize,
    /// Our copy of the directory entry (we are its only writer).
    entry: Entry,
    published: Option<Published>,
    /// Destroyed: the entry is draining, the program's range private.
    gone: bool,
}

struct Importer {
    slot: usize,
    info: ImporterInfo,
    /// Ours, on the slot's `down` counter.
    poster: Poster,
}

/// An export segment on a window.
pub struct WinExport {
    net: Arc<Net>,
    own: Arc<Window>,
    index: usize,
    offset: u64,
    len: usize,
    state: Mutex<State>,
    importers: RwLock<Vec<Importer>>,
    /// Events of importers that left before they were consumed.
    departed: LocalCounter,
    /// Set while published (read by the agent without the state lock).
    published: AtomicBool,
    pub(super) wake: Wake,
    cursor: AtomicUsize,
}

/// The `ExportPort` handed to core.
pub struct WindowExportPort(Arc<WinExport>);

impl WinExport {
    /// `Transport::bind`: takes an extent of our window and a directory
    /// entry, copies the program's bytes there, and maps the extent over
    /// the program's range.
    pub fn bind(net: &Arc<Net>, vaddr: usize, len: usize) -> RsmResult<Box<dyn ExportPort>> {
        let me = net.attach()?;
        let own = net.own()?;
        memory::check_private_rw(vaddr, len)?;
        let page = net.page as u64;
        // SAFETY: getpid cannot fail.
        let pid = std::process::id();
        let (index, entry) = net.locked(|w| -> RsmResult<(usize, Entry)> {
            let end = w.len() as u64;
            let offset =
                layout::first_fit(w.extents(), layout::DATA_OFF as u64, end, len as u64, page)
                    .ok_or_else(|| {
                        crate::why!("window {}: no room for {len} bytes in the window", net.name);
                        RsmError::InsufficientMem
                    })?;
            let index = (0..layout::DIR_ENTRIES)
                .find(|&i| w.entry_state(i) == layout::FREE && !w.entry_torn(i))
                .ok_or_else(|| {
                    crate::why!("window {}: directory full", net.name);
                    RsmError::InsufficientResources
                })?;
            let entry = Entry {
                state: layout::BOUND,
                generation: w.entry_generation(index).wrapping_add(1),
                owner_proc: me.index,
                owner_incarnation: me.incarnation,
                owner_pid: pid,
                offset,
                length: len as u64,
                ..Entry::default()
            };
            w.write_entry(index, &entry);
            Ok((index, entry))
        })??;
        // SAFETY: both ranges are `len` bytes and mapped (the program's,
        // checked private and read-write; the extent, inside our window);
        // they do not overlap (the program's is private).
        unsafe {
            std::ptr::copy_nonoverlapping(
                vaddr as *const u8,
                (own.base() + entry.offset as usize) as *mut u8,
                len,
            )
        };
        let placed = memory::map_window_at(
            vaddr,
            len,
            own.fd.as_raw_fd(),
            own.file_offset + entry.offset,
        );
        let export = placed.and_then(|()| {
            Ok(Arc::new(WinExport {
                net: Arc::clone(net),
                own: Arc::clone(&own),
                index,
                offset: entry.offset,
                len,
                state: Mutex::new(State {
                    vaddr,
                    entry,
                    published: None,
                    gone: false,
                }),
                importers: RwLock::new(Vec::new()),
                departed: LocalCounter::default(),
                published: AtomicBool::new(false),
                wake: Wake::new(net)?,
                cursor: AtomicUsize::new(0),
            }))
        });
        let export = match export {
            Ok(x) => x,
            Err(e) => {
                let _ = net.locked(|w| {
                    let free = Entry {
                        generation: entry.generation.wrapping_add(1),
                        ..Entry::default()
                    };
                    w.write_entry(index, &free);
                });
                return Err(e);
            }
        };
        net.exports.lock().insert(index, Arc::downgrade(&export));
        Ok(Box::new(WindowExportPort(export)))
    }

    /// Whether the segment is published now.
    pub fn published(&self) -> bool {
        self.published.load(Ordering::Acquire)
    }

    /// Writes a changed entry, under the node lock.
    fn write(&self, entry: &Entry) -> RsmResult<()> {
        self.net.locked(|w| w.write_entry(self.index, entry))
    }

    /// The agent answers a request in slot `s` for our segment: admitted
    /// with the rights core's permission model gives the credentials the
    /// importer claims, or refused with the RSMERR it gives.
    pub fn answer(&self, s: usize) {
        use layout::*;
        let w = &*self.own;
        let state = self.state.lock();
        let refuse = |e: RsmError| {
            w.set_slot_field(s, S_STATUS, e.code() as u32);
            let _ = w.slot_state(s).compare_exchange(
                REQUESTED,
                REFUSED,
                Ordering::AcqRel,
                Ordering::Acquire,
            );
        };
        let Some(p) = state.published.as_ref() else {
            return refuse(RsmError::SegNotPublished);
        };
        if w.slot_field(s, S_DIR_GENERATION) != state.entry.generation
            || w.slot_field(s, S_SEGID) != p.segid
        {
            return refuse(RsmError::SegNotPublished);
        }
        let node: NodeId = w.slot_field(s, S_NODE);
        if node as usize != s / SLOTS_PER_NODE {
            crate::why!("window: slot {s} claims node {node} outside its partition");
            return refuse(RsmError::PermDenied);
        }
        let groups = (0..(w.slot_field(s, S_NGROUPS) as usize).min(MAX_GROUPS))
            .map(|k| w.slot_field(s, S_GROUPS + 4 * k))
            .collect();
        let peer = Peer {
            node,
            uid: w.slot_field(s, S_UID),
            gid: w.slot_field(s, S_GID),
            groups,
            ipc_owner: w.slot_field(s, S_FLAGS) & FLAG_IPC_OWNER != 0,
        };
        let admitted = p.admission.admit(&peer, w.slot_field(s, S_REQUESTED));
        match admitted.and_then(|r| crate::oom::headroom().map(|()| r)) {
            Err(e) => refuse(e),
            Ok(rights) => {
                w.set_slot_field(s, S_GRANTED, rights);
                let mut importers = self.importers.write();
                // Fails if the importer gave up waiting meanwhile.
                let granted = w
                    .slot_state(s)
                    .compare_exchange(REQUESTED, GRANTED, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok();
                if granted {
                    importers.push(Importer {
                        slot: s,
                        poster: Poster::new(w.down(s)),
                        info: ImporterInfo {
                            pid: w.slot_field(s, S_PID),
                            uid: peer.uid,
                            node,
                            rights,
                        },
                    });
                }
            }
        }
    }

    /// The importer of slot `s` left (or died): its events not consumed
    /// yet stay with us, and nothing is posted to it any more.
    pub fn drop_importer(&self, s: usize) {
        let mut importers = self.importers.write();
        if let Some(k) = importers.iter().position(|i| i.slot == s) {
            importers.swap_remove(k);
            let n = self.own.up(s).take_all();
            self.departed.counter().add(n, &NoBell);
        }
    }

    /// Republish changed the ACL in core: the directory shows the new one
    /// within a heartbeat period (the trait has no republish call, and the
    /// agent's admission reads core's live list anyway).
    pub fn sync_acl(&self) {
        let mut state = self.state.lock();
        let Some(p) = state.published.as_ref() else {
            return;
        };
        let mut entry = state.entry;
        entry.set_acl(&p.admission.access().acl);
        if entry != state.entry && self.write(&entry).is_ok() {
            state.entry = entry;
        }
    }

    fn unpublish_locked(&self, state: &mut State) -> RsmResult<()> {
        if state.published.take().is_none() {
            return Err(RsmError::SegNotPublished);
        }
        self.published.store(false, Ordering::Release);
        let mut entry = state.entry;
        entry.state = layout::BOUND;
        entry.segid = 0;
        entry.generation = entry.generation.wrapping_add(1);
        self.write(&entry)?;
        state.entry = entry;
        // Every importer is told through its slot; the agent frees the
        // slot when the importer releases it (or dies).
        let mut importers = self.importers.write();
        for imp in importers.drain(..) {
            let n = self.own.up(imp.slot).take_all();
            self.departed.counter().add(n, &NoBell);
            let _ = self.own.slot_state(imp.slot).compare_exchange(
                layout::GRANTED,
                layout::ABORTED,
                Ordering::AcqRel,
                Ordering::Acquire,
            );
        }
        Ok(())
    }

    fn departed(&self) -> Counter<'_> {
        self.departed.counter()
    }

    /// One event from any importer, scanning from a rotating start.
    fn take_one(&self) -> bool {
        if self.departed().take(&NoBell) {
            return true;
        }
        let importers = self.importers.read();
        let n = importers.len();
        if n == 0 {
            return false;
        }
        let start = self.cursor.fetch_add(1, Ordering::Relaxed) % n;
        (0..n).any(|k| self.own.up(importers[(start + k) % n].slot).take(&NoBell))
    }

    /// Whether any event is pending for us.
    pub fn has_pending(&self) -> bool {
        self.departed().pending()
            || self
                .importers
                .read()
                .iter()
                .any(|i| self.own.up(i.slot).pending())
    }
}

impl Drop for WinExport {
    fn drop(&mut self) {
        let mut exports = self.net.exports.lock();
        if exports
            .get(&self.index)
            .is_some_and(|w| w.strong_count() == 0)
        {
            exports.remove(&self.index);
        }
    }
}

impl ExportPort for WindowExportPort {
    fn publish(&self, node: NodeId, segid: u32, admission: Arc<dyn Admission>) -> RsmResult<u32> {
        let x = &self.0;
        let mut state = x.state.lock();
        if state.gone {
            return Err(RsmError::BadSegHndl);
        }
        if state.published.is_some() {
            return Err(RsmError::SegAlreadyPublished);
        }
        if node != x.net.local {
            return Err(RsmError::InternalError);
        }
        let owner = admission.owner();
        let acl = admission.access().acl;
        let mut entry = state.entry;
        let id = x.net.locked(|w| -> RsmResult<u32> {
            let taken = |id: u32| {
                (0..layout::DIR_ENTRIES).any(|i| {
                    w.entry_state(i) == layout::PUBLISHED
                        && w.read_entry(i)
                            .is_none_or(|e| e.state == layout::PUBLISHED && e.segid == id)
                })
            };
            let id = if segid == 0 {
                loop {
                    let id = NEXT_SYSTEM_ID.fetch_add(1, Ordering::Relaxed);
                    if id < 0x8000_0000 {
                        return Err(RsmError::InsufficientResources); // wrapped (spec 3.3)
                    }
                    if !taken(id) {
                        break id;
                    }
                }
            } else if taken(segid) {
                return Err(RsmError::SegidInUse);
            } else {
                segid
            };
            entry.state = layout::PUBLISHED;
            entry.segid = id;
            entry.generation = entry.generation.wrapping_add(1);
            entry.uid = owner.uid;
            entry.gid = owner.gid;
            entry.mode = owner.creation_mode;
            entry.set_acl(&acl);
            w.write_entry(x.index, &entry);
            Ok(id)
        })??;
        state.entry = entry;
        state.published = Some(Published {
            segid: id,
            admission,
        });
        x.published.store(true, Ordering::Release);
        x.net.kick.kick();
        Ok(id)
    }

    fn unpublish(&self) -> RsmResult<()> {
        let mut state = self.0.state.lock();
        self.0.unpublish_locked(&mut state)
    }

    fn rebind(&self, vaddr: usize) -> RsmResult<()> {
        let x = &self.0;
        let mut state = x.state.lock();
        if state.gone {
            return Err(RsmError::BadSegHndl);
        }
        memory::check_private_rw(vaddr, x.len)?;
        memory::privatize(state.vaddr, x.len)?;
        // SAFETY: as in bind: the program's new range and our extent.
        unsafe {
            std::ptr::copy_nonoverlapping(
                vaddr as *const u8,
                (x.own.base() + x.offset as usize) as *mut u8,
                x.len,
            )
        };
        memory::map_window_at(
            vaddr,
            x.len,
            x.own.fd.as_raw_fd(),
            x.own.file_offset + x.offset,
        )?;
        state.vaddr = vaddr;
        Ok(())
    }

    fn destroy(&self) -> RsmResult<()> {
        let x = &self.0;
        x.wake.end();
        let mut state = x.state.lock();
        if state.gone {
            return Ok(());
        }
        if state.published.is_some() {
            x.unpublish_locked(&mut state)?;
        }
        memory::privatize(state.vaddr, x.len)?;
        // The extent is freed by the agent once no importer refers to it
        // (one that has not noticed yet may still write to it).
        let mut entry = state.entry;
        entry.state = layout::DRAINING;
        entry.generation = entry.generation.wrapping_add(1);
        x.write(&entry)?;
        state.entry = entry;
        state.gone = true;
        x.net.exports.lock().remove(&x.index);
        Ok(())
    }

    fn importers(&self) -> Vec<ImporterInfo> {
        self.0
            .importers
            .read()
            .iter()
            .map(|i| i.info.clone())
            .collect()
    }
}

impl Waitable for WinExport {
    /// No claims on a window yet: its counters are polled across the
    /// bus, where the take's locked instruction is not what a spin pays.
    type Claim = std::convert::Infallible;

    fn take(&self) -> bool {
        self.take_one()
    }

    fn pending(&self) -> bool {
        self.has_pending()
    }

    fn ended(&self) -> Option<RsmError> {
        self.wake.ended().then_some(RsmError::BadSegHndl)
    }

    fn sleep(&self, timeout_ms: i32) -> RsmResult<Woke> {
        self.wake.sleep(timeout_ms, || self.has_pending())
    }

    fn settle(&self) {
        self.wake.settle(self.has_pending());
    }
}

impl Signals for WindowExportPort {
    fn post(&self, no_accumulate: bool) -> RsmResult<()> {
        let x = &self.0;
        for i in x.importers.read().iter() {
            x.own.down(i.slot).post(&i.poster, no_accumulate, &NoBell);
        }
        Ok(())
    }

    fn wait(&self, timeout_ms: i32) -> RsmResult<()> {
        events::wait(&*self.0, timeout_ms, events::spin()?)
    }

    fn take(&self) -> RsmResult<bool> {
        if self.0.take_one() {
            self.0.settle();
            return Ok(true);
        }
        self.0.settle();
        Ok(false)
    }

    fn pollfd(&self) -> RsmResult<RawFd> {
        Ok(self.0.wake.bell.read_fd())
    }

    fn watch(&self, on: bool) -> RsmResult<()> {
        self.0.wake.watch(on);
        Ok(())
    }
}
