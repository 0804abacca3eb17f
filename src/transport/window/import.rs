//! The importer's side of the window transport. Connect claims an import
//! slot in the exporter's window (in this node's partition), writes its
//! request there with the credentials it claims, and waits for the
//! exporter's agent to grant or refuse it. Map and get/put use the
//! segment's extent of the exporter's window, mapped with the granted
//! protection. A forced disconnect (the slot aborted, the exporter's
//! heartbeat stopped, its window reformatted) re-points the mappings at
//! anonymous memory, as `shm` does (DESIGN.md 5.4).

use super::agent::{NoBell, Wake};
use super::layout::{self, Window};
use super::memory::{self, Mapping};
use super::Net;
use crate::config::NodeId;
use crate::core::permission::{PERM_READ, PERM_WRITE};
use crate::error::{RsmError, RsmResult};
use crate::transport::events::{self, LocalCounter, Poster, Waitable, Woke};
use crate::transport::{ImportPort, Signals};
use parking_lot::Mutex;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{fence, AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// An import segment on a window.
pub struct WinImport {
    net: Arc<Net>,
    win: Arc<Window>,
    node: NodeId,
    slot: usize,
    /// The exporting process's entry in its node's process table.
    owner: (u32, u32),
    format_id: u64,
    offset: u64,
    size: usize,
    rights: u32,
    aborted: AtomicBool,
    closed: AtomicBool,
    /// Bumped on a forced disconnect, before the mappings are re-pointed.
    generation: AtomicU32,
    /// The library's own mapping of the whole segment for get/put; set
    /// under the state lock, kept for the life of `self`.
    data: OnceLock<Mapping>,
    /// The program's explicit mapping.
    state: Mutex<Option<Mapping>>,
    /// Events the exporter posted that were pending when the connection
    /// ended (the slot is given back, its counters with it).
    kept: LocalCounter,
    /// Ours, on the slot's `up` counter.
    poster: Poster,
    pub(super) wake: Wake,
}

/// Tests: run by the next `abort`, in whichever thread, once the mappings
/// are trash and `aborted` is set, before the slot is given back.
#[cfg(test)]
pub static AFTER_TRASH: Mutex<Option<TrashHook>> = Mutex::new(None);

/// What `AFTER_TRASH` holds.
#[cfg(test)]
pub type TrashHook = Box<dyn FnOnce(&WinImport) + Send>;

/// The `ImportPort` handed to core; dropping it disconnects.
pub struct WindowImportPort(Arc<WinImport>);

/// Whether this process holds CAP_IPC_OWNER (bit 15 of CapEff): claimed
/// in the request, as the uid is (docs/security.md).
fn ipc_owner() -> bool {
    crate::transport::has_ipc_owner(std::process::id() as i32)
}

/// Our effective uid, gid and supplementary groups (the first
/// `MAX_GROUPS`).
fn credentials() -> (u32, u32, Vec<u32>) {
    // SAFETY: geteuid and getegid cannot fail and touch no memory.
    let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
    let mut groups = vec![0 as libc::gid_t; 64];
    // SAFETY: getgroups writes at most groups.len() entries.
    let n = unsafe { libc::getgroups(groups.len() as i32, groups.as_mut_ptr()) };
    groups.truncate(usize::try_from(n).unwrap_or(0));
    groups.truncate(layout::MAX_GROUPS);
    (uid, gid, groups)
}

impl WinImport {
    /// `Transport::connect` (spec 4.5, 5.1).
    pub fn connect(
        net: &Arc<Net>,
        node: NodeId,
        segid: u32,
        perm: u32,
    ) -> RsmResult<Box<dyn ImportPort>> {
        use layout::*;
        let me = net.attach()?;
        let Some(win) = net.window(node) else {
            return Err(RsmError::RemoteNodeUnreachable);
        };
        if !net.node_alive(node, &win) {
            return Err(RsmError::RemoteNodeUnreachable);
        }
        let format_id = win.format_id();
        let found = (0..DIR_ENTRIES)
            .filter(|&i| win.entry_state(i) == PUBLISHED)
            .find_map(|i| {
                win.read_entry(i)
                    .filter(|e| e.state == PUBLISHED && e.segid == segid)
                    .map(|e| (i, e))
            });
        let Some((index, entry)) = found else {
            return Err(RsmError::SegNotPublished);
        };
        let owner_alive = || net.proc_alive(node, &win, entry.owner_proc, entry.owner_incarnation);
        if !owner_alive() {
            return Err(RsmError::SegNotPublished);
        }
        if !entry.extent_ok(win.len(), net.page) {
            crate::why!("window {}: node {node} publishes a bad extent", net.name);
            return Err(RsmError::InternalError);
        }
        // A slot of our node's partition.
        let base = net.local as usize * SLOTS_PER_NODE;
        let Some(s) = (base..base + SLOTS_PER_NODE).find(|&s| {
            win.slot_state(s)
                .compare_exchange(FREE, CLAIMED, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        }) else {
            crate::why!(
                "window {}: all {SLOTS_PER_NODE} import slots of node {} in node {node}'s window are taken",
                net.name,
                net.local
            );
            return Err(RsmError::InsufficientResources);
        };
        let (uid, gid, groups) = credentials();
        let set = |f, v| win.set_slot_field(s, f, v);
        set(S_STATUS, 0);
        set(S_NODE, net.local);
        set(S_PID, net.pid);
        set(S_PROC, me.index);
        set(S_PROC_INCARNATION, me.incarnation);
        set(S_UID, uid);
        set(S_GID, gid);
        set(S_REQUESTED, perm);
        set(S_GRANTED, 0);
        set(S_DIR_INDEX, index as u32);
        set(S_DIR_GENERATION, entry.generation);
        set(S_SEGID, segid);
        set(S_FLAGS, if ipc_owner() { FLAG_IPC_OWNER } else { 0 });
        set(S_NGROUPS, groups.len() as u32);
        for (k, g) in groups.iter().enumerate() {
            set(S_GROUPS + 4 * k, *g);
        }
        for f in [S_UP_POSTED, S_UP_CONSUMED, S_DOWN_POSTED, S_DOWN_CONSUMED] {
            win.u64(Window::slot(s, f)).store(0, Ordering::Relaxed);
        }
        // The request's fields reach the owner before its state says so,
        // also through a write-combining BAR.
        Window::wc_fence();
        win.slot_state(s).store(REQUESTED, Ordering::Release);
        if node == net.local {
            net.kick.kick(); // the exporter may be this process
        }
        // Wait for the answer, backing off; give up if the exporter died,
        // unpublished, or does not answer in time.
        let deadline = Instant::now() + net.connect_timeout;
        let mut backoff = Duration::from_micros(10);
        let mut why = RsmError::RemoteNodeUnreachable;
        loop {
            let state = win.slot_state(s).load(Ordering::Acquire);
            Window::wc_fence(); // the answer's fields are read after its state
            match state {
                GRANTED => break,
                REFUSED => {
                    let status = win.slot_field(s, S_STATUS) as i32;
                    win.slot_state(s).store(FREE, Ordering::Release);
                    let e = crate::error::ALL
                        .iter()
                        .copied()
                        .find(|e| e.code() == status)
                        .unwrap_or(RsmError::InternalError);
                    return Err(e);
                }
                REQUESTED => {}
                _ => return Err(RsmError::SegNotPublished), // reclaimed
            }
            let changed = win.entry_generation(index) != entry.generation;
            let late = Instant::now() >= deadline;
            if changed || late || !owner_alive() {
                if changed {
                    why = RsmError::SegNotPublished;
                } else if !late {
                    why = RsmError::SegNotPublished; // its process died
                }
                let gave_up = win
                    .slot_state(s)
                    .compare_exchange(REQUESTED, FREE, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok();
                if gave_up {
                    return Err(why);
                }
                continue; // answered meanwhile
            }
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(Duration::from_millis(1));
        }
        let rights = win.slot_field(s, S_GRANTED) & (PERM_READ | PERM_WRITE);
        let import = Arc::new(WinImport {
            net: Arc::clone(net),
            win: Arc::clone(&win),
            node,
            slot: s,
            owner: (entry.owner_proc, entry.owner_incarnation),
            format_id,
            offset: entry.offset,
            size: entry.length as usize,
            rights,
            aborted: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            generation: AtomicU32::new(0),
            data: OnceLock::new(),
            state: Mutex::new(None),
            kept: LocalCounter::default(),
            poster: Poster::new(win.up(s)),
            wake: match Wake::new(net) {
                Ok(w) => w,
                Err(e) => {
                    release(&win, s, net.pid);
                    return Err(e);
                }
            },
        });
        // Granted, but was it unpublished in between? Then the slot is
        // aborted already, and the agent's first look ends it.
        net.imports.lock().push(Arc::downgrade(&import));
        Ok(Box::new(WindowImportPort(import)))
    }

    /// Whether the connection is over (disconnected or aborted): the
    /// agent stops looking at it.
    pub fn done(&self) -> bool {
        self.closed.load(Ordering::Acquire) || self.aborted.load(Ordering::Acquire)
    }

    /// The agent's look: ends the connection if the exporter aborted the
    /// slot, reformatted its window, or (on a `tick`) stopped beating.
    /// Returns whether it ended it.
    pub fn check(&self, tick: bool) -> bool {
        if self.done() {
            return false;
        }
        let gone = !self.slot_granted()
            || self.win.format_id() != self.format_id
            || (tick
                && !self
                    .net
                    .proc_alive(self.node, &self.win, self.owner.0, self.owner.1));
        if gone {
            self.abort();
        }
        gone
    }

    /// Whether the slot still says granted to us (one read through the
    /// window).
    fn slot_granted(&self) -> bool {
        self.win.slot_state(self.slot).load(Ordering::Acquire) == layout::GRANTED
            && self.win.slot_field(self.slot, layout::S_PID) == self.net.pid
    }

    /// Forced disconnect (spec 5.2): the generation bumped, mappings
    /// re-pointed at anonymous memory, the slot given back with the
    /// events still pending kept here, waiters woken.
    pub fn abort(&self) {
        // Only `abort` and `close` set `aborted` and `closed`, both under
        // this lock.
        let mapping = self.state.lock();
        // After a disconnect the slot is no longer ours to touch.
        if self.done() {
            return;
        }
        // Before the re-pointing: a get/put that touches the trash checks
        // the generation after its access and must see it moved (a put
        // reported done would be lost). One that runs between this and
        // the re-pointing reaches the real memory and is reported aborted
        // anyway, which is only cautious.
        self.generation.fetch_add(1, Ordering::SeqCst);
        // The events posted before the end, moved here before `aborted`
        // says it ended: a waiter that sees the end takes those first
        // (`events::ended`), and once `aborted` is set, takes no longer
        // look at the slot. Only while the slot still names us, and only
        // in the process that owns it: a forked child that notices the
        // end first (its get/put read the slot) must neither take its
        // parent's events nor give the slot back under them.
        let owner = crate::transport::process::pid() == self.net.pid;
        if owner && self.win.slot_field(self.slot, layout::S_PID) == self.net.pid {
            let n = self.win.down(self.slot).take_all();
            self.kept.counter().add(n, &NoBell);
        }
        self.aborted.store(true, Ordering::Release);
        if let Some(m) = mapping.as_ref() {
            m.trash();
        }
        if let Some(m) = self.data.get() {
            m.trash();
        }
        #[cfg(test)]
        if let Some(h) = AFTER_TRASH.lock().take() {
            h(self);
        }
        drop(mapping);
        if owner {
            release(&self.win, self.slot, self.net.pid);
        }
        self.wake.end();
    }

    /// Tests: the generation as a get/put's check reads it.
    #[cfg(test)]
    pub fn generation_now(&self) -> u32 {
        self.generation.load(Ordering::Acquire)
    }

    /// Whether an event is pending for us.
    pub fn has_pending(&self) -> bool {
        self.kept.counter().pending() || (!self.done() && self.win.down(self.slot).pending())
    }
}

/// Gives slot `s` back to the owner's agent, if it is still ours.
fn release(win: &Window, s: usize, pid: u32) {
    use layout::*;
    if win.slot_field(s, S_PID) != pid {
        return;
    }
    for from in [GRANTED, ABORTED] {
        if win
            .slot_state(s)
            .compare_exchange(from, RELEASED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            return;
        }
    }
}

impl Drop for WinImport {
    fn drop(&mut self) {
        // A forked child's copy never gives back its parent's slot.
        if !self.done() {
            release(&self.win, self.slot, std::process::id());
        }
        if let Some(m) = self.data.get() {
            // SAFETY: our own mapping; no reference to it outlives `self`.
            unsafe { libc::munmap(m.addr as *mut _, m.len) };
        }
    }
}

fn page_round(len: usize, page: usize) -> usize {
    len.div_ceil(page) * page
}

impl Waitable for WinImport {
    /// No claims on a window yet: its counters are polled across the
    /// bus, where the take's locked instruction is not what a spin pays.
    type Claim = std::convert::Infallible;

    fn take(&self) -> bool {
        self.kept.counter().take(&NoBell)
            || (!self.done() && self.win.down(self.slot).take(&NoBell))
    }

    fn pending(&self) -> bool {
        self.has_pending()
    }

    fn ended(&self) -> Option<RsmError> {
        self.aborted
            .load(Ordering::Acquire)
            .then_some(RsmError::ConnAborted)
    }

    fn sleep(&self, timeout_ms: i32) -> RsmResult<Woke> {
        self.wake.sleep(timeout_ms, || self.has_pending())
    }

    fn settle(&self) {
        self.wake.settle(self.has_pending());
    }
}

impl Signals for WindowImportPort {
    fn post(&self, no_accumulate: bool) -> RsmResult<()> {
        // After a forced disconnect nobody reads the counter: a silent
        // success, as on Solaris (spec 5.2).
        if !self.0.done() && self.0.slot_granted() {
            self.0
                .win
                .up(self.0.slot)
                .post(&self.0.poster, no_accumulate, &NoBell);
        }
        Ok(())
    }

    fn wait(&self, timeout_ms: i32) -> RsmResult<()> {
        events::wait(&*self.0, timeout_ms, events::spin()?)
    }

    fn take(&self) -> RsmResult<bool> {
        let took = events::take_now(&*self.0)?;
        if took {
            self.0.settle(); // the agent's ring may be stale now
        }
        Ok(took)
    }

    fn pollfd(&self) -> RsmResult<RawFd> {
        Ok(self.0.wake.bell.read_fd())
    }

    fn watch(&self, on: bool) -> RsmResult<()> {
        self.0.wake.watch(on);
        Ok(())
    }
}

impl ImportPort for WindowImportPort {
    fn size(&self) -> usize {
        self.0.size
    }

    fn rights(&self) -> u32 {
        self.0.rights
    }

    fn map(&self, fixed: Option<usize>, offset: usize, len: usize, perm: u32) -> RsmResult<usize> {
        let i = &self.0;
        let mut mapping = i.state.lock();
        if i.aborted.load(Ordering::Acquire) {
            return Err(RsmError::ConnAborted);
        }
        if mapping.is_some() {
            return Err(RsmError::SegAlreadyMapped);
        }
        if i.rights == 0 || perm & !i.rights != 0 {
            return Err(RsmError::BadPerms);
        }
        let len = page_round(len, i.net.page);
        let m = memory::map_segment(
            i.win.fd.as_raw_fd(),
            i.win.file_offset + i.offset + offset as u64,
            len,
            crate::transport::prot_of(perm),
            fixed,
            crate::transport::map_error,
        )?;
        let addr = m.addr;
        *mapping = Some(m);
        Ok(addr)
    }

    fn unmap(&self) -> RsmResult<()> {
        let m = self.0.state.lock().take().ok_or(RsmError::SegNotMapped)?;
        // SAFETY: our own mapping (segment or, after an abort, trash).
        unsafe { libc::munmap(m.addr as *mut _, m.len) };
        Ok(())
    }

    fn aborted(&self) -> bool {
        self.0.aborted.load(Ordering::Acquire)
    }

    fn data(&self) -> RsmResult<Option<(usize, usize)>> {
        let i = &self.0;
        if let Some(m) = i.data.get() {
            return Ok(Some((m.addr, i.size)));
        }
        if i.rights == 0 || i.size == 0 {
            return Ok(None);
        }
        let _state = i.state.lock();
        if let Some(m) = i.data.get() {
            return Ok(Some((m.addr, i.size))); // another thread made it
        }
        let len = page_round(i.size, i.net.page);
        // After a forced disconnect the memory is gone: anonymous pages
        // stand in, as for a mapping re-pointed then.
        let m = if i.done() {
            memory::anonymous(len)?
        } else {
            memory::map_segment(
                i.win.fd.as_raw_fd(),
                i.win.file_offset + i.offset,
                len,
                crate::transport::prot_of(i.rights),
                None,
                data_error,
            )?
        };
        let addr = m.addr;
        let _ = i.data.set(m);
        Ok(Some((addr, i.size)))
    }

    /// The barrier's close (spec 4.8), PCIe-faithful: a full fence orders
    /// (and on x86 drains, `mfence`) the stores before it, then a read
    /// through the window, which on PCIe cannot pass the posted writes
    /// before it, so they have reached the exporter's memory when it
    /// returns; what it reads is the slot's state, so a forced disconnect
    /// the agent has not noticed yet is seen here too.
    fn generation(&self) -> u32 {
        let i = &self.0;
        if !i.done() {
            fence(Ordering::SeqCst);
            if !i.slot_granted() {
                i.abort();
            }
        }
        i.generation.load(Ordering::Acquire)
    }

    fn close(&self, shared: bool) {
        let i = &self.0;
        let _state = i.state.lock();
        // Unshared, the data mapping goes with `self` at once. Shared, it
        // is trash before the slot is given back: once the exporter frees
        // the slot it may place another segment on the extent, which a
        // put racing this close must not reach.
        if let Some(m) = i.data.get().filter(|_| shared) {
            m.trash();
        }
        if !i.done() {
            release(&i.win, i.slot, std::process::id());
        }
        i.closed.store(true, Ordering::Release);
    }
}

impl Drop for WindowImportPort {
    fn drop(&mut self) {
        let _ = self.unmap();
    }
}

/// mmap's errors for the mapping get and put use (not the program's own
/// map, which follows spec 4.5 step 10: `transport::map_error`).
fn data_error(errno: i32) -> RsmError {
    match errno {
        libc::EACCES | libc::EPERM => RsmError::BadPerms,
        libc::ENOMEM => RsmError::InsufficientMem,
        libc::EAGAIN => RsmError::InsufficientResources,
        _ => RsmError::MapFailed,
    }
}
