//! The exporter's side of the same-host transport: the segment's memory
//! (memory.rs), its listening socket `rsm/<fabric>/<node>/<segid>`, and its
//! importers.

use super::agent::{self, Agent, Handler};
use super::memory::Region;
use super::wire::{self, Reply, Request};
use crate::config::NodeId;
use crate::core::permission::Peer;
use crate::error::{RsmError, RsmResult};
use crate::transport::{Admission, ExportPort, ImporterInfo};
use nix::sys::socket::{
    self, accept4, bind, listen, socket, AddressFamily, Backlog, ControlMessage, MsgFlags,
    SockFlag, SockType, UnixAddr,
};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::io::IoSlice;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};

/// Next id tried for a publish with id 0 (spec 3.3: from 0x80000000 up).
static NEXT_SYSTEM_ID: AtomicU32 = AtomicU32::new(0x8000_0000);

/// The abstract socket name of segment `segid` of `node` on `fabric`.
pub fn segment_name(fabric: &str, node: NodeId, segid: u32) -> String {
    format!("rsm/{fabric}/{node}/{segid}")
}

struct Listening {
    fd: OwnedFd,
    token: u64,
    admission: Arc<dyn Admission>,
}

struct Importer {
    fd: OwnedFd,
    info: ImporterInfo,
}

struct State {
    region: Option<Region>,
    listening: Option<Listening>,
    importers: HashMap<u64, Importer>,
    /// Set once importers were handed a descriptor of the current memfd.
    handed_out: bool,
}

/// An export segment on the same-host transport.
pub struct ShmExport {
    fabric: String,
    state: Mutex<State>,
    /// The pollfd's eventfd, made on first use (a published segment that
    /// nobody signals or polls costs two descriptors, not three).
    events: OnceLock<OwnedFd>,
}

/// The `ExportPort` handed to core.
pub struct ShmExportPort(Arc<ShmExport>);

pub(super) fn new_eventfd() -> RsmResult<OwnedFd> {
    // SAFETY: eventfd has no memory preconditions.
    let fd = unsafe {
        libc::eventfd(
            0,
            libc::EFD_CLOEXEC | libc::EFD_NONBLOCK | libc::EFD_SEMAPHORE,
        )
    };
    if fd < 0 {
        return Err(RsmError::from_alloc_errno(
            std::io::Error::last_os_error().raw_os_error().unwrap_or(0),
        ));
    }
    // SAFETY: eventfd returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

impl ShmExportPort {
    /// Shares `[vaddr, vaddr + len)` in place.
    pub fn bind(fabric: &str, vaddr: usize, len: usize) -> RsmResult<Self> {
        let region = Region::create(vaddr, len)?;
        Ok(ShmExportPort(Arc::new(ShmExport {
            fabric: fabric.to_string(),
            state: Mutex::new(State {
                region: Some(region),
                listening: None,
                importers: HashMap::new(),
                handed_out: false,
            }),
            events: OnceLock::new(),
        })))
    }
}

/// Reads a peer's supplementary groups (SO_PEERGROUPS: as of its connect).
fn peer_groups(fd: RawFd) -> Vec<u32> {
    let mut groups = vec![0u32; 64];
    loop {
        let mut len = (groups.len() * 4) as libc::socklen_t;
        // SAFETY: `groups` has room for `len` bytes; the kernel writes at
        // most that and reports the size it needs on ERANGE.
        let rc = unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_PEERGROUPS,
                groups.as_mut_ptr().cast(),
                &mut len,
            )
        };
        if rc == 0 {
            groups.truncate(len as usize / 4);
            return groups;
        }
        let need = len as usize / 4;
        if std::io::Error::last_os_error().raw_os_error() != Some(libc::ERANGE)
            || need <= groups.len()
        {
            return Vec::new();
        }
        groups.resize(need, 0);
    }
}

/// Whether `pid` holds CAP_IPC_OWNER (bit 15 of CapEff).
fn has_ipc_owner(pid: i32) -> bool {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return false;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .is_some_and(|caps| caps & (1 << 15) != 0) // bit 15: CAP_IPC_OWNER
}

fn send_reply(fd: &OwnedFd, reply: Reply, pass: Option<RawFd>) -> bool {
    let bytes = reply.encode();
    let iov = [IoSlice::new(&bytes)];
    let fds = pass.map(|f| [f]);
    let cmsgs: Vec<ControlMessage> = fds
        .as_ref()
        .map(|f| vec![ControlMessage::ScmRights(f)])
        .unwrap_or_default();
    socket::sendmsg::<()>(
        fd.as_raw_fd(),
        &iov,
        &cmsgs,
        MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL,
        None,
    )
    .is_ok_and(|n| n == bytes.len())
}

impl ShmExport {
    /// The pollfd's eventfd, made now if this is its first use.
    fn events(&self) -> RsmResult<&OwnedFd> {
        if let Some(fd) = self.events.get() {
            return Ok(fd);
        }
        // Two threads may race here: the loser's descriptor is dropped.
        let _ = self.events.set(new_eventfd()?);
        self.events.get().ok_or(RsmError::InternalError)
    }

    /// A signal post from an importer (a post that cannot get its eventfd
    /// is lost, like one to a vanished exporter).
    fn post(&self, no_accumulate: bool) {
        if let Ok(events) = self.events() {
            post(events, no_accumulate);
        }
    }

    /// Accepts every waiting client of the listener `token`.
    pub fn accept_all(self: &Arc<Self>, agent: &Agent, token: u64) {
        loop {
            let fd = {
                let state = self.state.lock();
                let Some(l) = state.listening.as_ref().filter(|l| l.token == token) else {
                    return;
                };
                match accept4(
                    l.fd.as_raw_fd(),
                    SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
                ) {
                    // SAFETY: accept4 returned a new descriptor we now own.
                    Ok(fd) => unsafe { OwnedFd::from_raw_fd(fd) },
                    Err(nix::errno::Errno::EINTR) => continue,
                    Err(_) => return,
                }
            };
            // A legitimate importer sends its request right after connect:
            // if it is there already, answer now, so a flood of silent
            // clients never stands in its way.
            let mut probe = [0u8; 1];
            // SAFETY: recv writes at most 1 byte into `probe`.
            let ready = unsafe {
                libc::recv(
                    fd.as_raw_fd(),
                    probe.as_mut_ptr().cast(),
                    1,
                    libc::MSG_PEEK | libc::MSG_DONTWAIT,
                )
            };
            if ready >= 0 {
                self.serve(agent, fd); // a request, or end of file: either way, done
            } else {
                agent.add_pending(fd, Arc::downgrade(self));
            }
        }
    }

    /// Answers a client's request: admitted importers get the segment's
    /// descriptor, read-only unless they may write.
    pub fn serve(self: &Arc<Self>, agent: &Agent, fd: OwnedFd) {
        let mut buf = [0u8; 64];
        // MSG_TRUNC: learn a packet's real length, so an oversized one is
        // refused rather than read in part. No control buffer: descriptors
        // a hostile client sends are discarded by the kernel.
        // SAFETY: recv writes at most buf.len() bytes into buf.
        let n = unsafe {
            libc::recv(
                fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT | libc::MSG_TRUNC,
            )
        };
        let Some(request) = usize::try_from(n).ok().and_then(|n| {
            Request::decode(&buf[..n.min(buf.len())]).filter(|_| n == wire::REQUEST_LEN)
        }) else {
            crate::why!("agent: dropped a client with a malformed request ({n} bytes)");
            return;
        };
        let Ok(cred) = socket::getsockopt(&fd, socket::sockopt::PeerCredentials) else {
            return;
        };
        let peer = Peer {
            node: request.node,
            uid: cred.uid(),
            gid: cred.gid(),
            groups: peer_groups(fd.as_raw_fd()),
            ipc_owner: has_ipc_owner(cred.pid()),
        };
        let mut state = self.state.lock();
        let Some(listening) = state.listening.as_ref() else {
            return;
        }; // unpublished meanwhile
        let admitted = listening.admission.admit(&peer, request.perm);
        let size = state.region.as_ref().map_or(0, |r| r.size()) as u64;
        let rights = match admitted {
            Err(e) => {
                send_reply(
                    &fd,
                    Reply {
                        status: e.code(),
                        rights: 0,
                        size: 0,
                    },
                    None,
                );
                return;
            }
            Ok(rights) => rights,
        };
        // The descriptor carries the rights: the kernel refuses PROT_WRITE
        // on a read-only one, and the memfd's mode (0600) stops another uid
        // from reopening it writable through /proc.
        let Some(region) = state.region.as_ref() else {
            return;
        };
        let pass: Option<OwnedFd> = if rights & crate::core::permission::PERM_WRITE != 0 {
            region.memfd().try_clone().ok()
        } else if rights != 0 {
            reopen_read_only(region.memfd())
        } else {
            None
        };
        if rights != 0 && pass.is_none() {
            send_reply(
                &fd,
                Reply {
                    status: RsmError::InsufficientResources.code(),
                    rights: 0,
                    size: 0,
                },
                None,
            );
            return;
        }
        let reply = Reply {
            status: 0,
            rights,
            size,
        };
        if !send_reply(&fd, reply, pass.as_ref().map(|f| f.as_raw_fd())) {
            return;
        }
        drop(pass);
        let Ok(token) = agent.register(fd.as_fd(), Handler::Importer(Arc::downgrade(self))) else {
            return;
        };
        let info = ImporterInfo {
            pid: cred.pid() as u32,
            uid: cred.uid(),
            node: request.node,
            rights,
        };
        state.importers.insert(token, Importer { fd, info });
        state.handed_out = true;
    }

    /// An importer's connection closed: it disconnected, exited or died.
    /// An importer's connection is readable: signal posts, or end of file
    /// (it disconnected, exited or died) and then it is dropped. Anything
    /// else from it is hostile and drops it too.
    pub fn importer_event(&self, agent: &Agent, token: u64) {
        let mut state = self.state.lock();
        let Some(imp) = state.importers.get(&token) else {
            return;
        };
        let mut buf = [0u8; 64];
        let gone = loop {
            // SAFETY: recv writes at most buf.len() bytes into buf.
            let n = unsafe {
                libc::recv(
                    imp.fd.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_DONTWAIT | libc::MSG_TRUNC,
                )
            };
            if n < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EAGAIN) {
                break false;
            }
            let Ok(n) = usize::try_from(n) else {
                break true;
            };
            match wire::decode_notice(&buf[..n.min(buf.len())]).filter(|_| n == wire::NOTICE_LEN) {
                Some(wire::NOTICE_POST) => self.post(false),
                Some(wire::NOTICE_POST_NO_ACCUMULATE) => self.post(true),
                _ => break true,
            }
        };
        if gone {
            if let Some(imp) = state.importers.remove(&token) {
                agent.unregister(token, imp.fd.as_fd());
            }
        }
    }

    fn unpublish_locked(&self, state: &mut State) -> RsmResult<()> {
        let Some(listening) = state.listening.take() else {
            return Err(RsmError::SegNotPublished);
        };
        let agent = agent::agent()?;
        agent.unregister(listening.token, listening.fd.as_fd());
        drop(listening);
        let notice = wire::encode_notice(wire::NOTICE_UNPUBLISHED);
        for (token, imp) in state.importers.drain() {
            // SAFETY: send reads notice.len() bytes from our buffer.
            unsafe {
                libc::send(
                    imp.fd.as_raw_fd(),
                    notice.as_ptr().cast(),
                    notice.len(),
                    libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
                )
            };
            agent.unregister(token, imp.fd.as_fd());
        }
        // Importers that kept their descriptor (bypassing the library) must
        // not reach the memory any more: move it to a fresh memfd.
        if std::mem::take(&mut state.handed_out) {
            if let Some(region) = state.region.as_mut() {
                region.rotate()?;
            }
        }
        Ok(())
    }
}

/// Adds one event to the counter behind `events` (an `EFD_SEMAPHORE`
/// eventfd, the segment's pollfd); with `no_accumulate`, not if one is
/// pending already (spec 4.9).
fn post(events: &OwnedFd, no_accumulate: bool) {
    if no_accumulate {
        let mut pfd = libc::pollfd {
            fd: events.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one pollfd of ours, no wait.
        if unsafe { libc::poll(&mut pfd, 1, 0) } == 1 {
            return;
        }
    }
    let one: u64 = 1;
    // SAFETY: writes 8 bytes from `one` to our eventfd.
    unsafe { libc::write(events.as_raw_fd(), (&one as *const u64).cast(), 8) };
}

/// A read-only descriptor of the same memfd (through /proc/self/fd).
fn reopen_read_only(memfd: &OwnedFd) -> Option<OwnedFd> {
    let path = format!("/proc/self/fd/{}\0", memfd.as_raw_fd());
    // SAFETY: `path` is NUL-terminated.
    let fd = unsafe { libc::open(path.as_ptr().cast(), libc::O_RDONLY | libc::O_CLOEXEC) };
    // SAFETY: open returned a new descriptor we own.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd) })
}

impl ExportPort for ShmExportPort {
    fn publish(&self, node: NodeId, segid: u32, admission: Arc<dyn Admission>) -> RsmResult<u32> {
        let agent = agent::agent()?;
        let mut state = self.0.state.lock();
        if state.listening.is_some() {
            return Err(RsmError::SegAlreadyPublished);
        }
        let fd = socket(
            AddressFamily::Unix,
            SockType::SeqPacket,
            SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
            None,
        )
        .map_err(|e| RsmError::from_alloc_errno(e as i32))?;
        let mut id = segid;
        loop {
            if segid == 0 {
                id = NEXT_SYSTEM_ID.fetch_add(1, Ordering::Relaxed);
                if id < 0x8000_0000 {
                    return Err(RsmError::InsufficientResources); // wrapped (spec 3.3)
                }
            }
            let name = segment_name(&self.0.fabric, node, id);
            let addr =
                UnixAddr::new_abstract(name.as_bytes()).map_err(|_| RsmError::InternalError)?;
            match bind(fd.as_raw_fd(), &addr) {
                Ok(()) => break,
                Err(nix::errno::Errno::EADDRINUSE) if segid == 0 => continue,
                Err(nix::errno::Errno::EADDRINUSE) => return Err(RsmError::SegidInUse),
                Err(e) => return Err(RsmError::from_alloc_errno(e as i32)),
            }
        }
        listen(&fd, Backlog::new(128).unwrap_or(Backlog::MAXCONN))
            .map_err(|e| RsmError::from_alloc_errno(e as i32))?;
        let token = agent.register(fd.as_fd(), Handler::Listener(Arc::downgrade(&self.0)))?;
        state.listening = Some(Listening {
            fd,
            token,
            admission,
        });
        Ok(id)
    }

    fn unpublish(&self) -> RsmResult<()> {
        let mut state = self.0.state.lock();
        self.0.unpublish_locked(&mut state)
    }

    fn rebind(&self, vaddr: usize) -> RsmResult<()> {
        let mut state = self.0.state.lock();
        state
            .region
            .as_mut()
            .ok_or(RsmError::BadSegHndl)?
            .rebind(vaddr)
    }

    fn destroy(&self) -> RsmResult<()> {
        let mut state = self.0.state.lock();
        if state.listening.is_some() {
            state.handed_out = false; // the memfd goes away entirely below
            self.0.unpublish_locked(&mut state)?;
        }
        match state.region.take() {
            Some(region) => region.release(),
            None => Ok(()),
        }
    }

    fn importers(&self) -> Vec<ImporterInfo> {
        self.0
            .state
            .lock()
            .importers
            .values()
            .map(|i| i.info.clone())
            .collect()
    }

    fn pollfd(&self) -> RsmResult<RawFd> {
        Ok(self.0.events()?.as_raw_fd())
    }
}
