//! Memory-window transport (DESIGN.md 6, issue 8): hosts that can all map
//! each node's window of memory. On a PCIe NTB a node's window is its
//! inbound buffer, which peers reach through their outbound BAR
//! (`resourceN_wc`); between QEMU guests it is a slice of the ivshmem BAR
//! (`resource2`); in tests it is a plain file in /dev/shm. The config file
//! names, per node, the path, offset and size of its window as this host
//! reaches it (README "Window controllers").
//!
//! Everything crosses the window: there is no socket, no daemon and no
//! system call between hosts. The window's layout is `layout.rs` and
//! docs/window-format.md: a header with a heartbeat, a table of the node's
//! attached processes (each with a heartbeat), a directory of segments
//! (seqlock), import slots (requests, grants, event counters), and the
//! segment memory.
//!
//! Per process and controller there is one [`Net`]: the windows it has
//! mapped, its entry in its own node's process table, a monitor of the
//! heartbeats it sees, and an agent thread (`agent.rs`) that beats,
//! answers connect requests, notices departures and deaths, and turns
//! event counters into pollable doorbells.
//!
//! Trust: a window has no kernel between the hosts. Who may open the
//! window files may read and write all of them; within that set, importers
//! are trusted to tell their uid and gid (docs/security.md).

mod agent;
mod export;
mod import;
pub mod layout;
mod memory;

use crate::config::{NodeId, WindowConfig, WindowSpec};
use crate::error::{RsmError, RsmResult};
use crate::transport::survey::{
    self, Access, ImporterReport, Present, SegmentDetails, SegmentReport,
};
use crate::transport::{ControllerAttributes, ExportPort, ImportPort, Presence, Transport};
use layout::Window;
use parking_lot::{Condvar, Mutex};
use std::collections::{BTreeMap, HashMap};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Direct-access and atomic sizes: aligned 1/2/4/8-byte loads and stores
/// are single-copy atomic on the CPUs, and on PCIe for naturally aligned
/// accesses up to 8 bytes.
const DAS_ALL: u32 = 1 | 2 | 4 | 8;

/// The window interconnect of one controller, as `core/` sees it.
pub struct WindowTransport {
    name: String,
    cfg: WindowConfig,
    local: NodeId,
    connect_timeout: Duration,
    max_segments: u64,
    net: OnceLock<Arc<Net>>,
}

impl WindowTransport {
    /// A transport for controller `name` (canonical), as node `local`.
    /// Cheap: nothing is opened or mapped until it is used.
    pub fn new(
        name: &str,
        cfg: &WindowConfig,
        local: NodeId,
        connect_timeout: Duration,
        max_segments: u64,
    ) -> Self {
        WindowTransport {
            name: name.to_string(),
            cfg: cfg.clone(),
            local,
            connect_timeout,
            max_segments,
            net: OnceLock::new(),
        }
    }

    /// This process's net of the controller. A forked child inherits the
    /// parent's transport (through core's controller table) but gets a
    /// net of its own: the parent's entry, agent and imports are not its.
    fn net(&self) -> Arc<Net> {
        let fresh = || Net::get(&self.name, &self.cfg, self.local, self.connect_timeout);
        match self.net.get() {
            Some(net) if net.pid == std::process::id() => Arc::clone(net),
            Some(_) => fresh(),
            None => Arc::clone(self.net.get_or_init(fresh)),
        }
    }
}

/// Keeps the process attached to its node's window (heartbeat, agent).
struct Attached {
    _net: Arc<Net>,
}
impl Presence for Attached {}

impl Transport for WindowTransport {
    fn attributes(&self) -> RsmResult<ControllerAttributes> {
        let data = |w: &WindowSpec| (w.size as usize).saturating_sub(layout::DATA_OFF);
        let own = self.cfg.window(self.local).map_or(0, data);
        let peers = self.cfg.windows.iter().map(data);
        let largest = peers.clone().max().unwrap_or(0);
        let total: usize = peers.sum();
        let nodes = self.cfg.windows.len() as u64;
        Ok(ControllerAttributes {
            direct_access_sizes: DAS_ALL,
            atomic_sizes: DAS_ALL,
            page_size: page_size(),
            max_export_segment_size: own,
            tot_export_segment_size: own,
            max_export_segments: self.max_segments.min(layout::DIR_ENTRIES as u64),
            max_import_map_size: largest,
            tot_import_map_size: total,
            max_import_segments: self.max_segments.min(layout::SLOTS_PER_NODE as u64 * nodes),
        })
    }

    fn hwaddr(&self, node: NodeId) -> u64 {
        u64::from(node)
    }

    fn announce(&self, _node: NodeId, _label: &str) -> RsmResult<Box<dyn Presence>> {
        let net = self.net();
        net.attach()?;
        Ok(Box::new(Attached { _net: net }))
    }

    fn nodes_present(&self) -> RsmResult<Vec<NodeId>> {
        let net = self.net();
        Ok(self
            .cfg
            .windows
            .iter()
            .map(|w| w.node)
            .filter(|&n| net.window(n).is_some_and(|w| net.node_alive(n, &w)))
            .collect())
    }

    fn bind(&self, vaddr: usize, len: usize) -> RsmResult<Box<dyn ExportPort>> {
        export::WinExport::bind(&self.net(), vaddr, len)
    }

    fn connect(
        &self,
        _local_node: NodeId,
        node: NodeId,
        segid: u32,
        perm: u32,
    ) -> RsmResult<Box<dyn ImportPort>> {
        import::WinImport::connect(&self.net(), node, segid, perm)
    }

    fn present(&self) -> RsmResult<Vec<Present>> {
        let net = self.net();
        let mut found = Vec::new();
        for spec in &self.cfg.windows {
            let Some(w) = net.window(spec.node) else {
                continue;
            };
            if !net.node_alive(spec.node, &w) {
                continue;
            }
            for i in 0..layout::PROCS {
                let Some(p) = ProcView::read(&w, i) else {
                    continue;
                };
                if net.proc_alive(spec.node, &w, i as u32, p.incarnation) {
                    found.push(Present {
                        node: spec.node,
                        pid: p.pid,
                        controller: self.name.clone(),
                    });
                }
            }
        }
        Ok(found)
    }

    fn survey(&self) -> RsmResult<Vec<SegmentReport>> {
        let net = self.net();
        // SAFETY: geteuid cannot fail and touches no memory.
        let euid = unsafe { libc::geteuid() };
        let mut found = Vec::new();
        for spec in &self.cfg.windows {
            let Some(w) = net.window(spec.node) else {
                continue;
            };
            if !net.node_alive(spec.node, &w) {
                continue;
            }
            for i in 0..layout::DIR_ENTRIES {
                if w.entry_state(i) != layout::PUBLISHED {
                    continue;
                }
                let Some(e) = w.read_entry(i).filter(|e| e.state == layout::PUBLISHED) else {
                    continue;
                };
                if !net.proc_alive(spec.node, &w, e.owner_proc, e.owner_incarnation) {
                    continue;
                }
                // Anyone who can open the window can read this anyway;
                // rsminfo shows it as the same-host transport does.
                let details = (euid == 0 || euid == e.uid).then(|| details(&w, i, &e));
                found.push(SegmentReport {
                    node: spec.node,
                    segid: e.segid,
                    details: Ok(details),
                });
            }
        }
        Ok(found)
    }
}

/// What a survey shows about directory entry `i` of `w`.
fn details(w: &Window, i: usize, e: &layout::Entry) -> SegmentDetails {
    let mut importers = Vec::new();
    for s in 0..layout::SLOTS {
        let granted = w.slot_state(s).load(Ordering::Acquire) == layout::GRANTED
            && w.slot_field(s, layout::S_DIR_INDEX) as usize == i
            && w.slot_field(s, layout::S_DIR_GENERATION) == e.generation;
        if granted && importers.len() < survey::MAX_LISTED {
            importers.push(ImporterReport {
                info: crate::transport::ImporterInfo {
                    pid: w.slot_field(s, layout::S_PID),
                    uid: w.slot_field(s, layout::S_UID),
                    node: w.slot_field(s, layout::S_NODE),
                    rights: w.slot_field(s, layout::S_GRANTED),
                },
                mapped: false,
                pending_to_exporter: w.up(s).count(),
                pending_to_importer: w.down(s).count(),
            });
        }
    }
    SegmentDetails {
        size: e.length,
        pid: e.owner_pid,
        access: Access {
            owner: crate::core::permission::Owner {
                uid: e.uid,
                gid: e.gid,
                creation_mode: e.mode,
            },
            acl: e.acl(),
        },
        pending_departed: 0,
        importers,
        more: 0,
    }
}

/// The system page size.
fn page_size() -> usize {
    crate::transport::shm::page_size()
}

/// CLOCK_REALTIME in nanoseconds: heartbeat times are compared across
/// hosts only as a fallback (an observer with no history yet).
fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// This process's entry in its node's process table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Me {
    index: u32,
    incarnation: u32,
}

/// A process entry as read.
#[derive(Debug, Clone, Copy)]
struct ProcView {
    pid: u32,
    incarnation: u32,
    time: u64,
    pidns: u64,
}

impl ProcView {
    /// Entry `i` of `w` if it is `LIVE`.
    fn read(w: &Window, i: usize) -> Option<ProcView> {
        use layout::*;
        if w.u32(Window::proc(i, P_STATE)).load(Ordering::Acquire) != LIVE {
            return None;
        }
        Some(ProcView {
            pid: w.u32(Window::proc(i, P_PID)).load(Ordering::Relaxed),
            incarnation: w
                .u32(Window::proc(i, P_INCARNATION))
                .load(Ordering::Relaxed),
            time: w.u64(Window::proc(i, P_TIME)).load(Ordering::Relaxed),
            pidns: w.u64(Window::proc(i, P_PIDNS)).load(Ordering::Relaxed),
        })
    }
}

/// Heartbeats seen: per counter, the value at the last look and how many
/// looks in a row found it unchanged.
#[derive(Default)]
struct Monitor {
    nodes: HashMap<NodeId, Seen>,
    procs: HashMap<(NodeId, u32), Seen>,
}

#[derive(Debug, Clone, Copy)]
struct Seen {
    /// What the counter belongs to: the window's format id, or the
    /// process entry's incarnation. Another key starts over.
    key: u64,
    value: u64,
    misses: u32,
}

impl Monitor {
    fn look<K: std::hash::Hash + Eq>(map: &mut HashMap<K, Seen>, k: K, key: u64, value: u64) {
        match map.get_mut(&k) {
            Some(s) if s.key == key => {
                if s.value == value {
                    s.misses = s.misses.saturating_add(1);
                } else {
                    s.value = value;
                    s.misses = 0;
                }
            }
            _ => {
                map.insert(
                    k,
                    Seen {
                        key,
                        value,
                        misses: 0,
                    },
                );
            }
        }
    }
}

/// Wakes the agent early (a waiter arrived, a request was written).
struct Kick {
    kicked: Mutex<bool>,
    cv: Condvar,
}

impl Kick {
    fn kick(&self) {
        *self.kicked.lock() = true;
        self.cv.notify_one();
    }

    /// Sleeps up to `d` or until kicked; returns whether kicked.
    fn nap(&self, d: Duration) -> bool {
        let mut k = self.kicked.lock();
        if !*k {
            self.cv.wait_for(&mut k, d);
        }
        std::mem::take(&mut *k)
    }
}

/// One window controller in one process (see the module docs).
pub(crate) struct Net {
    name: String,
    cfg: WindowConfig,
    local: NodeId,
    connect_timeout: Duration,
    pid: u32,
    /// Our pid namespace (its inode): `kill(pid, 0)` tells about another
    /// process of the node only if it is in the same one.
    pidns: u64,
    page: usize,
    /// Windows mapped so far, by node (never unmapped while `self` lives:
    /// segments and slots borrow them).
    windows: Mutex<BTreeMap<NodeId, Arc<Window>>>,
    /// Nodes whose window could not be opened, already reported.
    unreachable: Mutex<std::collections::BTreeSet<NodeId>>,
    /// In-process half of the node lock (the other half is `flock`).
    node_lock: Mutex<()>,
    attach_lock: Mutex<()>,
    me: OnceLock<Me>,
    /// Set when our process entry was taken from us (we were declared
    /// dead by our node): we stop beating on someone else's entry.
    lost: AtomicBool,
    monitor: Mutex<Monitor>,
    /// Our export segments, by directory entry.
    exports: Mutex<BTreeMap<usize, Weak<export::WinExport>>>,
    /// Our import segments.
    imports: Mutex<Vec<Weak<import::WinImport>>>,
    kick: Arc<Kick>,
}

/// The process's nets, one per controller (a forked child makes its own).
static NETS: Mutex<Vec<Weak<Net>>> = Mutex::new(Vec::new());

impl Net {
    /// The net of controller `name` in this process, made on first use.
    fn get(name: &str, cfg: &WindowConfig, local: NodeId, timeout: Duration) -> Arc<Net> {
        let pid = std::process::id();
        let mut nets = NETS.lock();
        nets.retain(|w| w.strong_count() > 0);
        let found = nets
            .iter()
            .filter_map(Weak::upgrade)
            .find(|n| n.pid == pid && n.name == name && n.cfg == *cfg && n.local == local);
        if let Some(net) = found {
            return net;
        }
        let net = Arc::new(Net {
            name: name.to_string(),
            cfg: cfg.clone(),
            local,
            connect_timeout: timeout,
            pid,
            pidns: std::fs::metadata("/proc/self/ns/pid").map_or(0, |m| {
                use std::os::unix::fs::MetadataExt;
                m.ino()
            }),
            page: page_size(),
            windows: Mutex::new(BTreeMap::new()),
            unreachable: Mutex::new(std::collections::BTreeSet::new()),
            node_lock: Mutex::new(()),
            attach_lock: Mutex::new(()),
            me: OnceLock::new(),
            lost: AtomicBool::new(false),
            monitor: Mutex::new(Monitor::default()),
            exports: Mutex::new(BTreeMap::new()),
            imports: Mutex::new(Vec::new()),
            kick: Arc::new(Kick {
                kicked: Mutex::new(false),
                cv: Condvar::new(),
            }),
        });
        nets.push(Arc::downgrade(&net));
        net
    }

    /// Beats and looks at peers this often.
    fn period(&self) -> Duration {
        Duration::from_millis(self.cfg.heartbeat_ms)
    }

    /// Looks without a change after which a heartbeat counts as stopped.
    fn misses(&self) -> u32 {
        self.cfg.heartbeat_misses
    }

    /// Whether a heartbeat time `t` (ns) is recent enough to count as
    /// alive for an observer without history: within `misses + 1`
    /// periods of our clock.
    fn fresh(&self, t: u64) -> bool {
        let limit = u64::from(self.misses() + 1) * self.cfg.heartbeat_ms * 1_000_000;
        now_ns().saturating_sub(t) <= limit
    }

    /// The window of `node`, mapped on first use (`None`: not configured,
    /// or cannot be opened now). Not checked: see `Window::check`.
    fn window(&self, node: NodeId) -> Option<Arc<Window>> {
        if let Some(w) = self.windows.lock().get(&node) {
            return Some(Arc::clone(w));
        }
        let spec = self.cfg.window(node)?;
        match open_window(spec, false) {
            Ok(w) => {
                let w = Arc::new(w);
                let mut windows = self.windows.lock();
                Some(Arc::clone(windows.entry(node).or_insert(w)))
            }
            Err(e) => {
                // Said once per node: the agent retries every period.
                if self.unreachable.lock().insert(node) {
                    crate::why!("window {}: node {node}: {e}", self.name);
                }
                None
            }
        }
    }

    /// Our own node's window (only once attached).
    fn own(&self) -> RsmResult<Arc<Window>> {
        if self.me.get().is_none() {
            return Err(RsmError::CtlrNotPresent);
        }
        self.window(self.local).ok_or(RsmError::CtlrNotPresent)
    }

    /// Our process entry: attaches on first use.
    fn attach(self: &Arc<Self>) -> RsmResult<Me> {
        if let Some(me) = self.me.get() {
            return Ok(*me);
        }
        let _once = self.attach_lock.lock();
        if let Some(me) = self.me.get() {
            return Ok(*me);
        }
        let Some(spec) = self.cfg.window(self.local) else {
            crate::why!(
                "window {}: node {} has no window in the config file",
                self.name,
                self.local
            );
            return Err(RsmError::CtlrNotPresent);
        };
        let own = open_window(spec, true).map_err(|e| {
            crate::why!("window {}: own window: {e}", self.name);
            RsmError::CtlrNotPresent
        })?;
        let own = Arc::new(own);
        self.windows.lock().insert(self.local, Arc::clone(&own));
        let me = self.locked_on(&own, |w| self.claim_entry(w))??;
        let _ = self.me.set(me);
        // Beat once now: peers see the node alive as soon as the
        // controller is ours, not after the agent's first round.
        self.beat();
        if let Err(e) = agent::start(self) {
            self.detach();
            return Err(e);
        }
        Ok(me)
    }

    /// Under the node lock: formats the window if it is not ours yet,
    /// reclaims what dead processes of the node left, and takes a process
    /// entry.
    fn claim_entry(&self, w: &Window) -> RsmResult<Me> {
        use layout::*;
        if let Err(why) = w.check() {
            let beating = w.u64(H_MAGIC).load(Ordering::Acquire) == MAGIC
                && w.header(H_VERSION) != VERSION
                && self.fresh(w.u64(H_TIME).load(Ordering::Acquire));
            if beating {
                crate::why!(
                    "window {}: own window is in use with layout version {}",
                    self.name,
                    w.header(H_VERSION)
                );
                return Err(RsmError::CtlrNotPresent);
            }
            crate::why!("window {}: formatting own window ({why})", self.name);
            let id = now_ns() ^ (u64::from(self.pid) << 32);
            w.format(id, self.page);
        }
        self.reclaim(w);
        let Some(i) =
            (0..PROCS).find(|&i| w.u32(Window::proc(i, P_STATE)).load(Ordering::Acquire) == FREE)
        else {
            crate::why!("window {}: {PROCS} processes attached already", self.name);
            return Err(RsmError::InsufficientResources);
        };
        // SAFETY: geteuid cannot fail and touches no memory.
        let uid = unsafe { libc::geteuid() };
        let inc = w
            .u32(Window::proc(i, P_INCARNATION))
            .load(Ordering::Relaxed)
            .wrapping_add(1);
        w.u32(Window::proc(i, P_PID))
            .store(self.pid, Ordering::Relaxed);
        w.u32(Window::proc(i, P_INCARNATION))
            .store(inc, Ordering::Relaxed);
        w.u32(Window::proc(i, P_UID)).store(uid, Ordering::Relaxed);
        w.u64(Window::proc(i, P_TIME))
            .store(now_ns(), Ordering::Relaxed);
        w.u64(Window::proc(i, P_PIDNS))
            .store(self.pidns, Ordering::Relaxed);
        w.u32(Window::proc(i, P_STATE))
            .store(LIVE, Ordering::Release);
        Ok(Me {
            index: i as u32,
            incarnation: inc,
        })
    }

    /// Gives our process entry back (the last reference went).
    fn detach(&self) {
        let Some(me) = self.me.get().copied() else {
            return;
        };
        if self.pid != std::process::id() || self.lost.load(Ordering::Acquire) {
            return; // a forked child's copy, or no longer ours
        }
        let _ = self.locked(|w| {
            let i = me.index as usize;
            let ours = w
                .u32(Window::proc(i, layout::P_INCARNATION))
                .load(Ordering::Relaxed)
                == me.incarnation;
            if ours {
                w.u32(Window::proc(i, layout::P_STATE))
                    .store(layout::FREE, Ordering::Release);
            }
            self.reclaim(w);
        });
    }

    /// Runs `f` under the node lock of our own window.
    fn locked<R>(&self, f: impl FnOnce(&Window) -> R) -> RsmResult<R> {
        let own = self.own()?;
        self.locked_on(&own, f)
    }

    /// The node lock: one writer of the process table and directory among
    /// the node's processes (`flock` of the window file: released by the
    /// kernel if its holder dies) and among our threads. A directory
    /// entry left half-written by a holder that died is repaired first.
    fn locked_on<R>(&self, w: &Window, f: impl FnOnce(&Window) -> R) -> RsmResult<R> {
        let _threads = self.node_lock.lock();
        loop {
            // SAFETY: flock on our own descriptor.
            if unsafe { libc::flock(w.fd.as_raw_fd(), libc::LOCK_EX) } == 0 {
                break;
            }
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EINTR) {
                crate::why!("window {}: cannot lock own window: {e}", self.name);
                return Err(RsmError::InternalError);
            }
        }
        for i in 0..layout::DIR_ENTRIES {
            if w.entry_torn(i) {
                crate::why!(
                    "window {}: directory entry {i} was left torn; freed",
                    self.name
                );
                let e = layout::Entry {
                    generation: w.entry_generation(i).wrapping_add(1),
                    ..layout::Entry::default()
                };
                w.write_entry(i, &e);
            }
        }
        let r = f(w);
        // SAFETY: flock on our own descriptor.
        unsafe { libc::flock(w.fd.as_raw_fd(), libc::LOCK_UN) };
        Ok(r)
    }

    /// Whether process entry `i` of our own node is dead: its process is
    /// gone (`kill(pid, 0)`, when it is in our pid namespace: the same
    /// host, and pids mean the same), or its heartbeat time is stale.
    fn local_dead(&self, w: &Window, i: usize) -> bool {
        let Some(p) = ProcView::read(w, i) else {
            return true;
        };
        if self.me.get().is_some_and(|me| me.index as usize == i) && p.pid == self.pid {
            return false;
        }
        let gone = p.pidns == self.pidns
            && self.pidns != 0
            // SAFETY: kill with signal 0 only checks that the process exists.
            && unsafe { libc::kill(p.pid as i32, 0) } != 0
            && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH);
        gone || !self.fresh(p.time)
    }

    /// Whether the owner of directory entry `e` (of our own window) is
    /// gone: its process entry is free, reused, or dead.
    fn owner_gone(&self, w: &Window, e: &layout::Entry) -> bool {
        let i = e.owner_proc as usize;
        if i >= layout::PROCS {
            return true;
        }
        match ProcView::read(w, i) {
            Some(p) if p.incarnation == e.owner_incarnation => self.local_dead(w, i),
            _ => true,
        }
    }

    /// Whether `e` belongs to this process.
    fn mine(&self, e: &layout::Entry) -> bool {
        self.me
            .get()
            .is_some_and(|me| me.index == e.owner_proc && me.incarnation == e.owner_incarnation)
    }

    /// Whether any import slot still refers to directory entry `i`.
    fn referenced(w: &Window, i: usize) -> bool {
        (0..layout::SLOTS).any(|s| {
            let st = w.slot_state(s).load(Ordering::Acquire);
            st != layout::FREE
                && st != layout::CLAIMED
                && st != layout::REFUSED
                && w.slot_field(s, layout::S_DIR_INDEX) as usize == i
        })
    }

    /// What a reclaim would change (looked at without the lock first).
    fn needs_reclaim(&self, w: &Window) -> bool {
        use layout::*;
        let me = self.me.get().map(|m| m.index as usize);
        let dead_proc = (0..PROCS)
            .any(|i| Some(i) != me && ProcView::read(w, i).is_some() && self.local_dead(w, i));
        dead_proc
            || (0..DIR_ENTRIES).any(|i| match w.entry_state(i) {
                FREE => w.entry_torn(i),
                BOUND | PUBLISHED => w.read_entry(i).is_some_and(|e| self.owner_gone(w, &e)),
                _ => w.read_entry(i).is_some_and(|e| {
                    (self.mine(&e) || self.owner_gone(w, &e)) && !Self::referenced(w, i)
                }),
            })
    }

    /// Under the node lock: frees the process entries of dead processes,
    /// moves their segments to `DRAINING` (aborting their importers), and
    /// frees draining segments nobody refers to any more. Our own entry
    /// is never reclaimed.
    fn reclaim(&self, w: &Window) {
        use layout::*;
        let me = self.me.get().map(|m| m.index as usize);
        for i in 0..PROCS {
            if Some(i) != me && ProcView::read(w, i).is_some() && self.local_dead(w, i) {
                crate::why!(
                    "window {}: process {} of node {} is dead; its entry is freed",
                    self.name,
                    w.u32(Window::proc(i, P_PID)).load(Ordering::Relaxed),
                    self.local
                );
                w.u32(Window::proc(i, P_STATE))
                    .store(FREE, Ordering::Release);
            }
        }
        for i in 0..DIR_ENTRIES {
            let state = w.entry_state(i);
            if state == FREE {
                continue;
            }
            let Some(mut e) = w.read_entry(i) else {
                continue;
            };
            let gone = self.owner_gone(w, &e);
            if (state == BOUND || state == PUBLISHED) && gone {
                e.state = DRAINING;
                e.generation = e.generation.wrapping_add(1);
                w.write_entry(i, &e);
                abort_slots(w, i);
            } else if state == DRAINING && (gone || self.mine(&e)) && !Self::referenced(w, i) {
                let free = Entry {
                    generation: e.generation.wrapping_add(1),
                    ..Entry::default()
                };
                w.write_entry(i, &free);
            }
        }
    }

    /// Whether `node`'s window (already mapped as `w`) is formatted and
    /// its heartbeat is going: by our monitor's looks if it has any, else
    /// by the time of its last beat.
    fn node_alive(&self, node: NodeId, w: &Window) -> bool {
        if w.check().is_err() {
            return false;
        }
        if node == self.local && self.me.get().is_some() {
            return true;
        }
        let seen = self.monitor.lock().nodes.get(&node).copied();
        let beat = w.u64(layout::H_HEARTBEAT).load(Ordering::Acquire);
        match seen {
            // Beating again since our last look (a new process): alive.
            Some(s) if s.key == w.format_id() => s.misses < self.misses() || s.value != beat,
            _ => self.fresh(w.u64(layout::H_TIME).load(Ordering::Acquire)),
        }
    }

    /// Whether process entry `idx` of `node`'s window, with incarnation
    /// `inc`, belongs to a live process.
    fn proc_alive(&self, node: NodeId, w: &Window, idx: u32, inc: u32) -> bool {
        if idx as usize >= layout::PROCS || w.check().is_err() {
            return false;
        }
        let Some(p) = ProcView::read(w, idx as usize).filter(|p| p.incarnation == inc) else {
            return false;
        };
        if node == self.local {
            return !self.local_dead(w, idx as usize);
        }
        // A process entry's incarnation changes when a new process takes
        // it, so a stopped counter never comes back under the same key.
        let seen = self.monitor.lock().procs.get(&(node, idx)).copied();
        match seen {
            Some(s) if s.key == u64::from(inc) => s.misses < self.misses(),
            _ => self.fresh(p.time),
        }
    }

    /// One heartbeat of this process: its entry and the node's header.
    fn beat(&self) {
        let (Some(me), Ok(w)) = (self.me.get(), self.own()) else {
            return;
        };
        if self.lost.load(Ordering::Acquire) {
            return;
        }
        let i = me.index as usize;
        let ours = w
            .u32(Window::proc(i, layout::P_STATE))
            .load(Ordering::Acquire)
            == layout::LIVE
            && w.u32(Window::proc(i, layout::P_PID))
                .load(Ordering::Relaxed)
                == self.pid
            && w.u32(Window::proc(i, layout::P_INCARNATION))
                .load(Ordering::Relaxed)
                == me.incarnation;
        if !ours {
            crate::why!(
                "window {}: our process entry was reclaimed (were we stopped?); \
                 this process no longer takes part",
                self.name
            );
            self.lost.store(true, Ordering::Release);
            return;
        }
        let t = now_ns();
        w.u64(Window::proc(i, layout::P_HEARTBEAT))
            .fetch_add(1, Ordering::Release);
        w.u64(Window::proc(i, layout::P_TIME))
            .store(t, Ordering::Release);
        w.u64(layout::H_HEARTBEAT).fetch_add(1, Ordering::Release);
        w.u64(layout::H_TIME).store(t, Ordering::Release);
    }

    /// One look at every heartbeat of every window we reach (mapping the
    /// configured ones not mapped yet: peers that came up later).
    fn look(&self) {
        let nodes: Vec<NodeId> = self.cfg.windows.iter().map(|w| w.node).collect();
        let windows: Vec<(NodeId, Arc<Window>)> = nodes
            .into_iter()
            .filter_map(|n| self.window(n).map(|w| (n, w)))
            .collect();
        let mut m = self.monitor.lock();
        for (node, w) in windows {
            if w.check().is_err() {
                m.nodes.remove(&node);
                m.procs.retain(|(n, _), _| *n != node);
                continue;
            }
            let beat = w.u64(layout::H_HEARTBEAT).load(Ordering::Acquire);
            Monitor::look(&mut m.nodes, node, w.format_id(), beat);
            for i in 0..layout::PROCS {
                match ProcView::read(&w, i) {
                    Some(p) => {
                        let beat = w
                            .u64(Window::proc(i, layout::P_HEARTBEAT))
                            .load(Ordering::Acquire);
                        Monitor::look(
                            &mut m.procs,
                            (node, i as u32),
                            u64::from(p.incarnation),
                            beat,
                        );
                    }
                    None => {
                        m.procs.remove(&(node, i as u32));
                    }
                }
            }
        }
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        self.detach();
    }
}

/// Marks every live import slot of directory entry `i` aborted (requests
/// are refused): its importers notice at their next look.
fn abort_slots(w: &Window, i: usize) {
    use layout::*;
    for s in 0..SLOTS {
        if w.slot_field(s, S_DIR_INDEX) as usize != i {
            continue;
        }
        let state = w.slot_state(s);
        if state
            .compare_exchange(GRANTED, ABORTED, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            w.set_slot_field(s, S_STATUS, RsmError::SegNotPublished.code() as u32);
            let _ = state.compare_exchange(REQUESTED, REFUSED, Ordering::AcqRel, Ordering::Acquire);
        }
    }
}

/// Opens and maps a node's window. `own`: this host owns it, so a plain
/// file may be created or grown to size (never a device).
fn open_window(spec: &WindowSpec, own: bool) -> Result<Window, String> {
    let path = std::ffi::CString::new(spec.path.as_bytes()).map_err(|_| "NUL in the path")?;
    let flags = libc::O_RDWR | libc::O_CLOEXEC | if own { libc::O_CREAT } else { 0 };
    // SAFETY: `path` is NUL-terminated; the mode only applies to a new file.
    let fd = unsafe { libc::open(path.as_ptr(), flags, 0o600 as libc::c_uint) };
    if fd < 0 {
        return Err(format!(
            "{}: {}",
            spec.path,
            std::io::Error::last_os_error()
        ));
    }
    // SAFETY: open returned a new descriptor we own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: `st` is written by fstat before it is read.
    let st = unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        if libc::fstat(fd.as_raw_fd(), &mut st) != 0 {
            return Err(format!(
                "{}: {}",
                spec.path,
                std::io::Error::last_os_error()
            ));
        }
        st
    };
    let end = spec.offset + spec.size;
    if st.st_mode & libc::S_IFMT == libc::S_IFREG && (st.st_size as u64) < end {
        if !own {
            return Err(format!("{}: shorter than the window", spec.path));
        }
        // SAFETY: grows our own window file; nothing is mapped from it yet.
        if unsafe { libc::ftruncate(fd.as_raw_fd(), end as libc::off_t) } != 0 {
            return Err(format!(
                "{}: {}",
                spec.path,
                std::io::Error::last_os_error()
            ));
        }
    }
    Window::map(fd, spec.offset, spec.size as usize, spec.node)
        .map_err(|e| format!("{}: mmap: {e}", spec.path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &str, nodes: &[NodeId]) -> WindowConfig {
        WindowConfig {
            windows: nodes
                .iter()
                .map(|&n| WindowSpec {
                    node: n,
                    path: format!("{dir}/node{n}"),
                    offset: 0,
                    size: 2 << 20,
                })
                .collect(),
            heartbeat_ms: 10,
            heartbeat_misses: 5,
        }
    }

    /// A directory for one test's window files (tests run in parallel),
    /// removed when the test ends, passed or failed (`ctests/faults.c`
    /// counts what is left in /dev/shm).
    struct Scratch(String);

    impl std::ops::Deref for Scratch {
        type Target = str;
        fn deref(&self) -> &str {
            &self.0
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn scratch(test: &str) -> Scratch {
        let dir = format!("/dev/shm/rsm-window-unit-{}-{test}", std::process::id());
        let _ = std::fs::create_dir_all(&dir);
        Scratch(dir)
    }

    #[test]
    fn monitor_counts_unchanged_looks_and_starts_over_on_a_new_key() {
        let mut m: HashMap<u32, Seen> = HashMap::new();
        Monitor::look(&mut m, 1, 7, 100);
        Monitor::look(&mut m, 1, 7, 100);
        Monitor::look(&mut m, 1, 7, 100);
        assert_eq!(m[&1].misses, 2);
        Monitor::look(&mut m, 1, 7, 101);
        assert_eq!(m[&1].misses, 0);
        Monitor::look(&mut m, 1, 7, 101);
        Monitor::look(&mut m, 1, 8, 101); // reformatted or reused
        assert_eq!((m[&1].key, m[&1].misses), (8, 0));
    }

    /// Lets everyone in with what they ask for, or refuses with `refuse`.
    struct Door(Option<RsmError>);
    impl crate::transport::Admission for Door {
        fn admit(&self, peer: &crate::core::permission::Peer, requested: u32) -> RsmResult<u32> {
            assert_eq!(peer.uid, unsafe_euid(), "the claimed uid is ours");
            self.0.map_or(Ok(requested), Err)
        }
        fn access(&self) -> Access {
            Access::default()
        }
        fn owner(&self) -> crate::core::permission::Owner {
            crate::core::permission::Owner::default()
        }
    }

    fn unsafe_euid() -> u32 {
        // SAFETY: geteuid cannot fail and touches no memory.
        unsafe { libc::geteuid() }
    }

    /// The whole cycle within one process and node (the exporter's agent
    /// answers its own process's request): share in place, publish,
    /// connect, data both ways, signals both ways, refusal, unpublish.
    #[test]
    fn export_import_cycle_in_one_process() {
        let dir = scratch("cycle");
        let cfg = config(&dir, &[4]);
        let t = WindowTransport::new("unitw1", &cfg, 4, Duration::from_secs(5), 100);
        let _presence = t.announce(4, "unitw1").unwrap();
        let page = page_size();
        let len = 4 * page;
        let buf = memory::anonymous(len).unwrap();
        // SAFETY: our own fresh mapping of `len` bytes.
        let bytes = unsafe { std::slice::from_raw_parts_mut(buf.addr as *mut u8, len) };
        bytes[7] = 7;
        let x = t.bind(buf.addr, len).unwrap();
        assert_eq!(bytes[7], 7, "the program's data moved into the window");
        assert_eq!(
            t.connect(4, 4, 0x123456, PERM).err(),
            Some(RsmError::SegNotPublished)
        );
        let id = x.publish(4, 0x123456, Arc::new(Door(None))).unwrap();
        assert_eq!(id, 0x123456);
        let i = t.connect(4, 4, id, PERM).unwrap();
        assert_eq!((i.size(), i.rights()), (len, PERM));
        let (data, size) = i.data().unwrap().unwrap();
        assert_eq!(size, len);
        // SAFETY: the import's data mapping of `len` bytes, read-write.
        let seen = unsafe { std::slice::from_raw_parts_mut(data as *mut u8, len) };
        assert_eq!(seen[7], 7);
        seen[8] = 8;
        assert_eq!(
            bytes[8], 8,
            "the importer's store is in the exporter's memory"
        );
        assert_eq!(i.generation(), 0);
        assert_eq!(x.importers().len(), 1);
        // What rsminfo sees.
        let seen_by_survey = t.survey().unwrap();
        assert_eq!(seen_by_survey.len(), 1);
        assert_eq!((seen_by_survey[0].node, seen_by_survey[0].segid), (4, id));
        let d = seen_by_survey[0].details.clone().unwrap().unwrap();
        assert_eq!((d.size, d.pid), (len as u64, std::process::id()));
        assert_eq!(d.importers.len(), 1);
        assert_eq!(d.importers[0].info.rights, PERM);
        assert_eq!(t.present().unwrap().len(), 1);
        // Signals both ways.
        i.post(false).unwrap();
        x.wait(2000).unwrap();
        assert_eq!(x.wait(0), Err(RsmError::Timeout));
        x.post(false).unwrap();
        x.post(true).unwrap(); // one pending: dropped
        i.wait(2000).unwrap();
        assert_eq!(i.wait(0), Err(RsmError::Timeout));
        // Refused with the exporter's answer.
        let y = t.bind(memory::anonymous(page).unwrap().addr, page).unwrap();
        let id2 = y
            .publish(4, 0, Arc::new(Door(Some(RsmError::PermDenied))))
            .unwrap();
        assert!(id2 >= 0x8000_0000);
        assert_eq!(t.connect(4, 4, id2, PERM).err(), Some(RsmError::PermDenied));
        assert_eq!(
            y.publish(4, 0, Arc::new(Door(None))).err(),
            Some(RsmError::SegAlreadyPublished)
        );
        let z = t.bind(memory::anonymous(page).unwrap().addr, page).unwrap();
        assert_eq!(
            z.publish(4, id2, Arc::new(Door(None))).err(),
            Some(RsmError::SegidInUse)
        );
        // Unpublish, with an event pending for the importer: it is aborted
        // at its next barrier (or by its agent). Once the mappings are
        // trash, a get/put's check must see the generation moved, and a
        // waiter that sees the end must find the event posted before it.
        x.post(false).unwrap();
        let at_trash = Arc::new(Mutex::new(None));
        let seen_then = at_trash.clone();
        *import::AFTER_TRASH.lock() = Some(Box::new(move |w: &import::WinImport| {
            use crate::transport::events::Waitable;
            *seen_then.lock() = Some((w.generation_now(), w.ended(), w.has_pending()));
        }));
        x.unpublish().unwrap();
        assert_eq!(i.generation(), 1);
        let hang = std::time::Instant::now() + Duration::from_secs(60);
        while at_trash.lock().is_none() {
            assert!(
                std::time::Instant::now() < hang,
                "abort never reached the trash"
            );
            std::thread::yield_now(); // the agent's abort, still running
        }
        assert_eq!(
            at_trash.lock().take(),
            Some((1, Some(RsmError::ConnAborted), true)),
            "at the trash: the generation moved, the end shown, the event kept"
        );
        assert!(i.aborted());
        assert_eq!(i.wait(0), Ok(()), "the event posted before the end");
        assert_eq!(i.wait(0), Err(RsmError::ConnAborted));
        seen[9] = 9; // trash
        assert_eq!(bytes[9], 0);
        drop(i);
        x.destroy().unwrap();
        assert_eq!(bytes[8], 8, "the program keeps its memory");
        y.destroy().unwrap();
        z.destroy().unwrap();
    }

    const PERM: u32 = crate::core::permission::PERM_READ | crate::core::permission::PERM_WRITE;

    /// Attaching formats the window, takes a process entry and beats; a
    /// second net of the same node sees it alive; detaching frees it.
    #[test]
    fn attach_beat_detach() {
        let dir = scratch("attach");
        let cfg = config(&dir, &[0, 1]);
        let t = WindowTransport::new("unitw0", &cfg, 0, Duration::from_secs(1), 100);
        assert!(
            t.nodes_present().unwrap().is_empty(),
            "nothing formatted yet"
        );
        let presence = t.announce(0, "unitw0").unwrap();
        let net = t.net();
        let me = *net.me.get().unwrap();
        let own = net.own().unwrap();
        assert_eq!(own.check(), Ok(()));
        let beat = |w: &Window| w.u64(layout::H_HEARTBEAT).load(Ordering::SeqCst);
        let b0 = beat(&own);
        std::thread::sleep(Duration::from_millis(60));
        assert!(beat(&own) > b0, "the agent beats");
        assert_eq!(t.nodes_present().unwrap(), vec![0]);
        // Node 1, seen from node 0, has no window yet.
        assert!(net.window(1).is_none());
        let p = t.present().unwrap();
        assert_eq!(p.len(), 1);
        assert_eq!((p[0].node, p[0].pid), (0, std::process::id()));
        drop(t);
        drop(presence);
        drop(net);
        // Detached (when the agent, which may hold the net for a moment,
        // lets go too): the entry is free again.
        let w = open_window(&cfg.windows[0], false).unwrap();
        let state = || {
            w.u32(Window::proc(me.index as usize, layout::P_STATE))
                .load(Ordering::SeqCst)
        };
        for _ in 0..1000 {
            if state() == layout::FREE {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(state(), layout::FREE);
    }
}
