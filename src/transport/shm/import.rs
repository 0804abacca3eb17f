//! The importer's side of the same-host transport: connect to a segment's
//! socket, receive its descriptor, map it; and on a forced disconnect
//! (DESIGN.md 5.4) re-point the mapping at anonymous "trash" memory, so the
//! program never faults, and report `RSMERR_CONN_ABORTED` from then on.

use super::agent::{self, Agent, Handler};
use super::channel::{self, Channel};
use super::export::segment_name;
use super::generation::Generation;
use super::wire::{self, Attach, Reply, Request};
use crate::config::NodeId;
use crate::error::{RsmError, RsmResult};
use crate::transport::events::{self, Doorbell, Ticket, Waitable, Woke};
use crate::transport::{ImportPort, Mapping, Signals};
use nix::sys::socket::{
    self, connect, socket, AddressFamily, MsgFlags, SockFlag, SockType, UnixAddr,
};
use parking_lot::{Condvar, Mutex};
use std::mem::{size_of, size_of_val};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

struct State {
    memfd: Option<OwnedFd>,
    mapping: Option<Mapping>,
}

/// An import segment on the same-host transport.
pub struct ShmImport {
    sock: OwnedFd,
    /// The segment's socket, for the second connection that fetches the
    /// event channel (`ask_for_channel`), and how long to wait for the
    /// answer.
    addr: UnixAddr,
    timeout: Duration,
    /// What the exporter's reply named this connection with.
    attach: Attach,
    /// The agent's token for `sock` while it watches it; 0 after.
    token: AtomicU64,
    size: usize,
    rights: u32,
    aborted: AtomicBool,
    /// Bumped on a forced disconnect, before the mappings are re-pointed;
    /// shared with forked children (`generation`).
    generation: Arc<Generation>,
    /// The library's own whole-segment mapping for get/put (DESIGN.md 5.5),
    /// with the granted protection; made by the first get/put (a program
    /// that only maps, or only signals, never pays for it) and kept as
    /// long as this import. Set under the state lock.
    data: OnceLock<Mapping>,
    state: Mutex<State>,
    /// Signals both ways (channel.rs): fetched from the exporter on first
    /// use, so a connect that never signals pays nothing for it. Set under
    /// the state lock (see `channel`).
    channel: OnceLock<Channel>,
    /// Held while fetching the channel: one fetch at a time.
    attaching: Mutex<()>,
    /// Held by the agent from reading a packet of our connection to
    /// acting on it (`import_event`), so `may_have_events` never looks
    /// between the two: a channel read but not yet installed is neither
    /// in the socket nor set.
    reading: Mutex<()>,
    /// Signalled (with the state lock) when the channel is set or the
    /// connection aborted.
    settled: Condvar,
    /// Bumped (and woken, a futex) when the channel is set or the
    /// connection aborted: what a wait with no channel yet sleeps on.
    installed: AtomicU32,
    /// Whether the program holds the pollfd (the `down` counter is armed
    /// then; waits sleep on its `wakes` word and need no arming).
    watched: Mutex<bool>,
}

impl Drop for ShmImport {
    fn drop(&mut self) {
        if let Some(m) = self.data.get() {
            // SAFETY: our own mapping; no reference to it outlives `self`.
            unsafe { libc::munmap(m.addr as *mut _, m.len) };
        }
    }
}

/// The `ImportPort` handed to core; dropping it disconnects.
pub struct ShmImportPort(Arc<ShmImport>);

fn errno_of(e: nix::errno::Errno) -> RsmError {
    match e {
        nix::errno::Errno::EINTR => RsmError::Interrupted,
        // No reply within the connect timeout: the exporter is not answering.
        nix::errno::Errno::EAGAIN => RsmError::RemoteNodeUnreachable,
        e => RsmError::from_alloc_errno(e as i32),
    }
}

fn page_round(len: usize) -> usize {
    let page = super::page_size();
    len.div_ceil(page) * page
}

impl ShmImportPort {
    /// Connects to segment `segid` of `node` (see `Transport::connect`).
    /// `absent` decides the error when no such segment socket exists.
    pub fn connect(
        fabric: &str,
        local_node: NodeId,
        node: NodeId,
        segid: u32,
        perm: u32,
        timeout: Duration,
        absent: impl Fn() -> RsmError,
    ) -> RsmResult<Self> {
        let name = segment_name(fabric, node, segid);
        let addr = UnixAddr::new_abstract(name.as_bytes()).map_err(|_| RsmError::InternalError)?;
        // An exporter under a flood of connections may drop us unanswered
        // (its agent bounds the clients it keeps). If the segment is still
        // there, try again a few times; then report its lack of resources.
        let mut backoff = Duration::from_millis(1);
        for _ in 0..DROPPED_RETRIES {
            match attempt(&addr, local_node, perm, timeout) {
                Attempt::Done(result) => return result.map(ShmImportPort),
                Attempt::Absent => return Err(absent()),
                Attempt::Dropped => {
                    if !listening(&addr) {
                        return Err(absent());
                    }
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_millis(50));
                }
            }
        }
        crate::why!("connect: {name} dropped us {DROPPED_RETRIES} times; exporter overloaded");
        Err(RsmError::InsufficientResources)
    }
}

/// How often a connect is retried when the exporter drops it unanswered.
const DROPPED_RETRIES: u32 = 8;

enum Attempt {
    Done(RsmResult<Arc<ShmImport>>),
    /// No socket by that name.
    Absent,
    /// Closed without an answer: unpublished meanwhile, or dropped.
    Dropped,
}

/// Receives one packet into `buf` with the descriptors sent along:
/// `(length, descriptors, truncated)`. Parsed by hand so that when the
/// kernel could install only some descriptors (`MSG_CTRUNC`, at
/// RLIMIT_NOFILE) those it did install are still owned, and closed.
fn recv_with_fds(
    sock: &OwnedFd,
    buf: &mut [u8; 64],
    flags: i32,
) -> Result<(usize, Vec<OwnedFd>, bool), nix::errno::Errno> {
    const MAX_FDS: usize = 8;
    // u64 elements: the control buffer must be aligned for cmsghdr.
    let mut control = [0u64; 16];
    // SAFETY: CMSG_SPACE is arithmetic.
    let space = unsafe { libc::CMSG_SPACE((MAX_FDS * size_of::<RawFd>()) as u32) } as usize;
    debug_assert!(space <= size_of_val(&control));
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: a zeroed msghdr is valid; the fields set point into our
    // locals, which outlive the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = space;
    // SAFETY: recvmsg writes at most iov_len bytes into `buf` and at most
    // msg_controllen bytes into `control`.
    let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC | flags) };
    if n < 0 {
        return Err(nix::errno::Errno::last());
    }
    let mut fds = Vec::new();
    // SAFETY: the CMSG_* walk stays within msg_controllen bytes of
    // `control`, as the kernel filled it; each SCM_RIGHTS entry's data is
    // an array of descriptors the kernel installed in this process for
    // us alone, read unaligned.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(c);
                let len = (*c).cmsg_len as usize - (data as usize - c as usize);
                for i in 0..len / size_of::<RawFd>() {
                    let fd = std::ptr::read_unaligned(data.cast::<RawFd>().add(i));
                    fds.push(OwnedFd::from_raw_fd(fd));
                }
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    Ok((n as usize, fds, msg.msg_flags & libc::MSG_CTRUNC != 0))
}

/// Whether anything listens on `addr` now.
fn listening(addr: &UnixAddr) -> bool {
    let Ok(probe) = socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        None,
    ) else {
        return true;
    };
    !matches!(
        connect(probe.as_raw_fd(), addr),
        Err(nix::errno::Errno::ECONNREFUSED) | Err(nix::errno::Errno::ENOENT)
    )
}

/// What one exchange of a packet for a reply on a new connection to a
/// segment's socket gave.
enum Exchange {
    /// The reply, the descriptors sent along, and the connection.
    Answer(Reply, Vec<OwnedFd>, OwnedFd),
    /// No socket by that name.
    Absent,
    /// Closed without an answer: unpublished meanwhile, or dropped.
    Dropped,
    Failed(RsmError),
}

/// Connects to `addr`, sends `packet`, and receives the reply.
fn exchange(addr: &UnixAddr, packet: &[u8], timeout: Duration) -> Exchange {
    let sock = match socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC,
        None,
    ) {
        Ok(s) => s,
        Err(e) => return Exchange::Failed(RsmError::from_alloc_errno(e as i32)),
    };
    let tv = nix::sys::time::TimeVal::new(timeout.as_secs() as i64, timeout.subsec_micros() as i64);
    let _ = socket::setsockopt(&sock, socket::sockopt::ReceiveTimeout, &tv);
    match connect(sock.as_raw_fd(), addr) {
        Ok(()) => {}
        Err(nix::errno::Errno::ECONNREFUSED) | Err(nix::errno::Errno::ENOENT) => {
            return Exchange::Absent
        }
        Err(e) => return Exchange::Failed(errno_of(e)),
    }
    // Non-blocking: a full queue means an exporter under a flood, which
    // is retried like a dropped connection (no send timeout to set up).
    match socket::send(
        sock.as_raw_fd(),
        packet,
        MsgFlags::MSG_NOSIGNAL | MsgFlags::MSG_DONTWAIT,
    ) {
        Ok(n) if n == packet.len() => {}
        Ok(_)
        | Err(nix::errno::Errno::EPIPE)
        | Err(nix::errno::Errno::ECONNRESET)
        | Err(nix::errno::Errno::EAGAIN) => return Exchange::Dropped,
        Err(e) => return Exchange::Failed(errno_of(e)),
    }
    let mut buf = [0u8; 64];
    let (n, fds, truncated) = match recv_with_fds(&sock, &mut buf, 0) {
        Ok(got) => got,
        Err(nix::errno::Errno::ECONNRESET) | Err(nix::errno::Errno::EPIPE) => {
            return Exchange::Dropped
        }
        Err(e) => return Exchange::Failed(errno_of(e)),
    };
    if truncated {
        // No room for every descriptor (RLIMIT_NOFILE): the ones that
        // came are closed with `fds`.
        crate::why!("connect: no descriptor free for what the exporter sent");
        return Exchange::Failed(RsmError::InsufficientResources);
    }
    let Some(reply) = Reply::decode(&buf[..n]) else {
        return Exchange::Dropped;
    };
    if fds.len() != reply.fds as usize {
        crate::why!(
            "connect: the exporter said {} descriptors and sent {}",
            reply.fds,
            fds.len()
        );
        return Exchange::Failed(RsmError::InternalError);
    }
    Exchange::Answer(reply, fds, sock)
}

/// The error a refusing reply carries.
fn refusal(status: i32) -> RsmError {
    crate::error::ALL
        .iter()
        .copied()
        .find(|e| e.code() == status)
        .unwrap_or(RsmError::InternalError)
}

fn attempt(addr: &UnixAddr, local_node: NodeId, perm: u32, timeout: Duration) -> Attempt {
    let fail = |e: RsmError| Attempt::Done(Err(e));
    let request = Request {
        node: local_node,
        perm,
    }
    .encode();
    let (reply, fds, sock) = match exchange(addr, &request, timeout) {
        Exchange::Answer(reply, fds, sock) => (reply, fds, sock),
        Exchange::Absent => return Attempt::Absent,
        Exchange::Dropped => return Attempt::Dropped,
        Exchange::Failed(e) => return fail(e),
    };
    if reply.status != 0 {
        return fail(refusal(reply.status));
    }
    let Ok(size) = usize::try_from(reply.size) else {
        return fail(RsmError::InternalError);
    };
    // The segment's descriptor if any rights were granted (wire.rs).
    let expected = usize::from(reply.rights != 0);
    if fds.len() != expected {
        crate::why!(
            "connect: expected {expected} descriptors, got {}",
            fds.len()
        );
        return fail(RsmError::InternalError);
    }
    let memfd = fds.into_iter().next();
    let import = Arc::new(ShmImport {
        sock,
        addr: *addr,
        timeout,
        attach: Attach {
            token: reply.token,
            secret: reply.secret,
        },
        token: AtomicU64::new(0),
        size,
        rights: reply.rights,
        aborted: AtomicBool::new(false),
        generation: Generation::new(),
        data: OnceLock::new(),
        state: Mutex::new(State {
            memfd,
            mapping: None,
        }),
        channel: OnceLock::new(),
        attaching: Mutex::new(()),
        reading: Mutex::new(()),
        settled: Condvar::new(),
        installed: AtomicU32::new(0),
        watched: Mutex::new(false),
    });
    let registered = agent::agent().and_then(|agent| {
        agent.register(
            import.sock.as_fd(),
            Handler::Import(Arc::downgrade(&import)),
        )
    });
    match registered {
        Ok(token) => {
            import.token.store(token, Ordering::Release);
            Attempt::Done(Ok(import))
        }
        Err(e) => fail(e),
    }
}

/// Packets `ShmImport::import_event` reads per wake-up.
const EVENT_PACKETS: usize = 16;

impl ShmImport {
    /// Our connection is readable: the exporter sent our event channel
    /// (wire.rs), which is taken, or asks whether we mapped (a survey),
    /// which is answered; or its notice, or it closed, or it sent anything
    /// else: a forced disconnect. Only the agent reads it, at most
    /// `EVENT_PACKETS` packets per wake-up: epoll reports the rest again,
    /// so an exporter that keeps sending asks cannot hold the agent (and
    /// every other connection it serves) in this loop.
    pub fn import_event(&self, agent: &Agent, token: u64) {
        let _reading = self.reading.lock();
        for _ in 0..EVENT_PACKETS {
            let mut buf = [0u8; 64];
            let (n, fds, truncated) = match recv_with_fds(&self.sock, &mut buf, libc::MSG_DONTWAIT)
            {
                Err(nix::errno::Errno::EAGAIN) | Err(nix::errno::Errno::EINTR) => return,
                Err(_) => (0, Vec::new(), false),
                Ok(got) => got,
            };
            if let Some(nonce) = wire::decode_ask(&buf[..n.min(buf.len())]) {
                self.answer_ask(nonce);
                continue;
            }
            let reply = Reply::decode(&buf[..n.min(buf.len())]).filter(|_| n == wire::REPLY_LEN);
            let channel = match (reply, truncated) {
                (Some(r), false) if r.status == 0 && r.fds == 4 && self.channel.get().is_none() => {
                    let mut fds = fds.into_iter();
                    match (fds.next(), fds.next(), fds.next(), fds.next(), fds.next()) {
                        (Some(page), Some(up), Some(r), Some(w), None) => {
                            Channel::attach(page, up, r, w).ok()
                        }
                        _ => None,
                    }
                }
                _ => None,
            };
            match channel {
                Some(ch) => {
                    self.install(ch);
                }
                None => {
                    if truncated {
                        crate::why!("import: no descriptor free for the event channel");
                    }
                    return self.exporter_gone(agent, token);
                }
            }
        }
    }

    /// The exporter sent its notice or its socket closed: forced disconnect.
    fn exporter_gone(&self, agent: &Agent, token: u64) {
        self.token.store(0, Ordering::Release);
        agent.unregister(token, self.sock.as_fd());
        let mut state = self.state.lock();
        self.aborted.store(true, Ordering::Release);
        // Before the re-pointing: a get/put that reads the trash checks the
        // generation after its access and must see it moved (spec 5.2);
        // one that reads between this and the re-pointing reads real data
        // and is reported aborted anyway, which is only cautious.
        self.generation.bump();
        // The state lock keeps the program's own unmap out; the data
        // mapping lives as long as `self`.
        if let Some(m) = state.mapping.as_ref() {
            m.trash();
        }
        if let Some(m) = self.data.get() {
            m.trash();
        }

        state.memfd = None; // let the exporter's memory go
        self.settled.notify_all();
        drop(state);
        self.bump_installed();
        // Wake every waiter and poller: they report RSMERR_CONN_ABORTED
        // once the events posted before are consumed (spec 5.2 leaves
        // them asleep; docs/compatibility.md). A channel set after the
        // lock above sees `aborted` and does this itself (`channel`).
        if let Some(ch) = self.channel.get() {
            ch.down.ring();
            ch.down().wake_all(&DownBell(self, ch));
        }
    }

    /// The event channel, fetched from the exporter on first use. If the
    /// exporter is gone (or dropped this connection), a dead channel of
    /// our own stands in: the forced disconnect rings it like any other.
    fn channel(&self) -> RsmResult<&Channel> {
        if let Some(ch) = self.channel.get() {
            return Ok(ch);
        }
        let _one = self.attaching.lock();
        if let Some(ch) = self.channel.get() {
            return Ok(ch);
        }
        let asked = !self.aborted.load(Ordering::Acquire) && self.ask_for_channel()?;
        // Asked: it was sent on our connection before the answer, and the
        // agent takes it. Refused (the exporter dropped us or is gone): it
        // may still have sent it before, followed by the end, which the
        // agent reads in order; then its events are still ours.
        if asked || self.connection_readable() {
            let mut state = self.state.lock();
            let deadline = std::time::Instant::now() + self.timeout;
            while self.channel.get().is_none() && !self.aborted.load(Ordering::Acquire) {
                if self.settled.wait_until(&mut state, deadline).timed_out() {
                    break;
                }
            }
            drop(state);
            if let Some(ch) = self.channel.get() {
                return Ok(ch);
            }
            if asked && !self.aborted.load(Ordering::Acquire) {
                crate::why!("signal: the exporter said it sent the event channel; none came");
                return Err(RsmError::RemoteNodeUnreachable);
            }
        }
        Ok(self.install(Channel::dead()?))
    }

    /// Wakes the waits that sleep until the channel comes (`await_channel`).
    fn bump_installed(&self) {
        self.installed.fetch_add(1, Ordering::SeqCst);
        channel::futex_wake(&self.installed);
    }

    /// Before a wait (timeout not 0) on an import with no event channel
    /// yet. The exporter sends the channel before its first post, so until
    /// our agent installs it nothing can be pending, and no round trip is
    /// needed: asking a stopped exporter held the wait for the connect
    /// timeout and ended it with `RSMERR_REMOTE_NODE_UNREACHABLE`. Sleeps
    /// until the channel comes, the connection ends, or the time is up
    /// (`RSMERR_TIMEOUT`); a signal ends the sleep as it ends the wait's own
    /// (a futex). Returns the time left, in the wait's terms.
    fn await_channel(&self, timeout_ms: i32) -> RsmResult<i32> {
        let start = std::time::Instant::now();
        let deadline = (timeout_ms > 0).then(|| start + Duration::from_millis(timeout_ms as u64));
        loop {
            let seen = self.installed.load(Ordering::SeqCst);
            let left = match deadline {
                None => -1,
                Some(d) => {
                    let now = std::time::Instant::now();
                    if now >= d && self.channel.get().is_none() {
                        return Err(self.ended_or(RsmError::Timeout));
                    }
                    // Round up: never before the deadline; at least 1 ms
                    // left for the wait proper once the channel is here.
                    let us = d.saturating_duration_since(now).as_micros();
                    i32::try_from(us.div_ceil(1000)).unwrap_or(i32::MAX).max(1)
                }
            };
            if self.channel.get().is_some() || self.aborted.load(Ordering::Acquire) {
                return Ok(left);
            }
            channel::futex_sleep(&self.installed, seen, left)?;
        }
    }

    /// Whether an event may be pending for us: we have the channel, or
    /// something waits on our connection (it may be the channel). Without
    /// either, the exporter has not posted to us (it sends the channel
    /// before its first post), and a look (timeout 0) needs no round trip
    /// to it, which a stopped exporter would never answer.
    fn may_have_events(&self) -> bool {
        let _reading = self.reading.lock();
        self.channel.get().is_some() || self.connection_readable()
    }

    /// `RSMERR_CONN_ABORTED` after a forced disconnect, else `e`.
    fn ended_or(&self, e: RsmError) -> RsmError {
        if self.aborted.load(Ordering::Acquire) {
            RsmError::ConnAborted
        } else {
            e
        }
    }

    /// Whether something waits on our connection (a packet, or its end)
    /// for the agent to read.
    fn connection_readable(&self) -> bool {
        let mut byte = 0u8;
        // SAFETY: recv writes at most 1 byte into `byte`.
        let n = unsafe {
            libc::recv(
                self.sock.as_raw_fd(),
                (&mut byte as *mut u8).cast(),
                1,
                libc::MSG_PEEK | libc::MSG_DONTWAIT,
            )
        };
        n >= 0
    }

    /// Sets the channel (the first one set stays), under the state lock,
    /// against `exporter_gone` and map/unmap: an abort before it is
    /// passed on to it here, one after it finds it.
    fn install(&self, ch: Channel) -> &Channel {
        let state = self.state.lock();
        let ch = self.channel.get_or_init(|| ch);
        ch.set_mapped(state.mapping.is_some());
        let aborted = self.aborted.load(Ordering::Acquire);
        self.settled.notify_all();
        drop(state);
        self.bump_installed();
        if aborted {
            ch.down.ring();
            ch.down().wake_all(&DownBell(self, ch));
        }
        ch
    }

    /// Asks the exporter, over a second connection, to send our channel
    /// on this one. `false`: it no longer knows this connection (or is
    /// gone).
    fn ask_for_channel(&self) -> RsmResult<bool> {
        let packet = self.attach.encode();
        let mut backoff = Duration::from_millis(1);
        for _ in 0..DROPPED_RETRIES {
            match exchange(&self.addr, &packet, self.timeout) {
                Exchange::Answer(reply, _, _) => {
                    return match reply.status {
                        0 => Ok(true),
                        s if s == RsmError::ConnAborted.code() => Ok(false),
                        s => Err(refusal(s)),
                    };
                }
                Exchange::Absent => return Ok(false),
                Exchange::Failed(e) => return Err(e),
                Exchange::Dropped => {
                    if !listening(&self.addr) {
                        return Ok(false);
                    }
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_millis(50));
                }
            }
        }
        crate::why!("signal: the exporter dropped us {DROPPED_RETRIES} times; overloaded");
        Err(RsmError::InsufficientResources)
    }

    /// Says (for `rsminfo`) whether we hold an explicit mapping: in the
    /// channel's page if we have it; else only when the exporter asks
    /// (`import_event`), so a map costs no message.
    fn say_mapped(&self, on: bool) {
        if let Some(ch) = self.channel.get() {
            ch.set_mapped(on);
        }
    }

    /// Answers the exporter's ask `nonce` (a survey) with whether we hold
    /// an explicit mapping.
    fn answer_ask(&self, nonce: u64) {
        let mapped = self.state.lock().mapping.is_some();
        let packet = wire::encode_status(mapped, nonce);
        // SAFETY: send reads packet.len() bytes from our buffer.
        unsafe {
            libc::send(
                self.sock.as_raw_fd(),
                packet.as_ptr().cast(),
                packet.len(),
                libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
            )
        };
    }

    /// The agent stops watching our socket (once: later calls do nothing).
    fn leave_agent(&self) {
        let token = self.token.swap(0, Ordering::AcqRel);
        if token != 0 {
            if let Some(agent) = agent::running() {
                agent.unregister(token, self.sock.as_fd());
            }
        }
    }

    /// Arms the `down` counter while the program holds the pollfd.
    fn watch(&self, on: bool) -> RsmResult<()> {
        let ch = match self.channel.get() {
            Some(ch) => ch,
            None if !on => return Ok(()), // never armed
            None => self.channel()?,
        };
        let mut watched = self.watched.lock();
        if *watched != on {
            *watched = on;
            ch.down().arm(on, &DownBell(self, ch));
        }
        Ok(())
    }
}

/// The write end of the exporter's doorbell: rung, never drained here.
struct PipeEnd<'a>(Option<&'a OwnedFd>);

impl Doorbell for PipeEnd<'_> {
    fn ring(&self) {
        if let Some(w) = self.0 {
            channel::ring(w.as_raw_fd());
        }
    }
    fn drain(&self) {}
    fn wake(&self, wakes: &AtomicU32) {
        channel::futex_wake(wakes);
    }
}

/// The importer's doorbell. After a forced disconnect it is never drained
/// again, so every waiter and poller, now or later, wakes and learns of it.
struct DownBell<'a>(&'a ShmImport, &'a Channel);

impl Doorbell for DownBell<'_> {
    fn ring(&self) {
        self.1.down.ring();
    }
    fn drain(&self) {
        if self.0.aborted.load(Ordering::Acquire) {
            return;
        }
        self.1.down.drain();
        // The abort's ring may have come just before that read.
        if self.0.aborted.load(Ordering::Acquire) {
            self.1.down.ring();
        }
    }
    fn wake(&self, wakes: &AtomicU32) {
        channel::futex_wake(wakes);
    }
}

/// An import with its channel, as the counter protocol waits on it.
struct Attached<'a>(&'a ShmImport, &'a Channel);

impl<'a> Attached<'a> {
    fn of(import: &'a ShmImport) -> RsmResult<Self> {
        Ok(Attached(import, import.channel()?))
    }
}

impl Waitable for Attached<'_> {
    type Claim = Ticket;

    /// The importer's only counter, if this process made the import (a
    /// forked child takes instead: see `Counter::claim`).
    fn claim(&self) -> Option<Ticket> {
        if !self.1.poster().owned() {
            return None;
        }
        self.1.down().claim()
    }

    fn spin_claimed(&self, t: &Ticket, rounds: u32) -> Option<bool> {
        let down = self.1.down();
        let bell = DownBell(self.0, self.1);
        for _ in 0..rounds {
            if down.claimed(t, &bell) {
                return Some(true);
            }
            std::hint::spin_loop();
        }
        Some(false)
    }

    fn unclaim(&self, t: Ticket) -> bool {
        self.1.down().unclaim(t, &DownBell(self.0, self.1))
    }

    fn take(&self) -> bool {
        self.1.down().take(&DownBell(self.0, self.1))
    }

    fn pending(&self) -> bool {
        self.1.down().pending()
    }

    fn ended(&self) -> Option<RsmError> {
        self.0
            .aborted
            .load(Ordering::Acquire)
            .then_some(RsmError::ConnAborted)
    }

    fn sleep(&self, timeout_ms: i32) -> RsmResult<Woke> {
        let down = self.1.down();
        let seen = down.prepare_sleep();
        if down.pending() || self.0.aborted.load(Ordering::SeqCst) {
            return Ok(Woke::Woken);
        }
        channel::futex_sleep(down.wakes(), seen, timeout_ms)
    }

    fn settle(&self) {
        self.1.down().settle(&DownBell(self.0, self.1));
    }
}

impl Signals for ShmImportPort {
    fn post(&self, no_accumulate: bool) -> RsmResult<()> {
        // After a forced disconnect nobody reads the counter: a silent
        // success, as on Solaris (spec 5.2).
        if !self.0.aborted.load(Ordering::Acquire) {
            let ch = self.0.channel()?;
            ch.up()
                .post(ch.poster(), no_accumulate, &PipeEnd(ch.up.as_ref()));
        }
        Ok(())
    }

    fn wait(&self, timeout_ms: i32) -> RsmResult<()> {
        if timeout_ms == 0 && !self.0.may_have_events() {
            return Err(self.0.ended_or(RsmError::Timeout));
        }
        let left = if timeout_ms != 0 && self.0.channel.get().is_none() {
            self.0.await_channel(timeout_ms)?
        } else {
            timeout_ms
        };
        events::wait(&Attached::of(&self.0)?, left, events::spin()?)
    }

    fn take(&self) -> RsmResult<bool> {
        if !self.0.may_have_events() {
            if self.0.aborted.load(Ordering::Acquire) {
                return Err(RsmError::ConnAborted);
            }
            return Ok(false);
        }
        events::take_now(&Attached::of(&self.0)?)
    }

    fn pollfd(&self) -> RsmResult<RawFd> {
        Ok(self.0.channel()?.down.read_fd())
    }

    fn watch(&self, on: bool) -> RsmResult<()> {
        self.0.watch(on)
    }
}

impl ImportPort for ShmImportPort {
    fn size(&self) -> usize {
        self.0.size
    }

    fn rights(&self) -> u32 {
        self.0.rights
    }

    fn map(&self, fixed: Option<usize>, offset: usize, len: usize, perm: u32) -> RsmResult<usize> {
        let mut state = self.0.state.lock();
        if self.0.aborted.load(Ordering::Acquire) {
            return Err(RsmError::ConnAborted);
        }
        if state.mapping.is_some() {
            return Err(RsmError::SegAlreadyMapped);
        }
        let Some(memfd) = state.memfd.as_ref() else {
            return Err(RsmError::BadPerms);
        };
        let prot = crate::transport::prot_of(perm);
        let len = page_round(len);
        let p = crate::transport::map_shared(memfd.as_raw_fd(), offset as u64, len, prot, fixed)
            .map_err(crate::transport::map_error)?;
        state.mapping = Some(Mapping { addr: p, len });
        self.0.say_mapped(true);
        Ok(p)
    }

    fn unmap(&self) -> RsmResult<()> {
        let mut state = self.0.state.lock();
        let m = state.mapping.take().ok_or(RsmError::SegNotMapped)?;
        // SAFETY: our own mapping (segment or, after an abort, trash).
        unsafe { libc::munmap(m.addr as *mut _, m.len) };
        self.0.say_mapped(false);
        Ok(())
    }

    fn aborted(&self) -> bool {
        // A forked child's copy learns of the end from the generation its
        // parent's agent bumps.
        self.0.aborted.load(Ordering::Acquire) || self.0.generation.get() != 0
    }

    fn data(&self) -> RsmResult<Option<(usize, usize)>> {
        if let Some(m) = self.0.data.get() {
            return Ok(Some((m.addr, self.0.size)));
        }
        if self.0.rights == 0 || self.0.size == 0 {
            return Ok(None);
        }
        let state = self.0.state.lock();
        if let Some(m) = self.0.data.get() {
            return Ok(Some((m.addr, self.0.size))); // another thread made it
        }
        let len = page_round(self.0.size);
        // After a forced disconnect the memory is gone: anonymous pages
        // stand in, as for a mapping re-pointed then (`trash`).
        let (prot, flags, fd) = match state.memfd.as_ref() {
            Some(fd) => (
                crate::transport::prot_of(self.0.rights),
                libc::MAP_SHARED,
                fd.as_raw_fd(),
            ),
            None => (
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
            ),
        };
        // SAFETY: a fresh mapping where the kernel chooses, of the segment
        // descriptor with the protection granted, or anonymous.
        let p = unsafe { libc::mmap(std::ptr::null_mut(), len, prot, flags, fd, 0) };
        if p == libc::MAP_FAILED {
            let e = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
            return Err(RsmError::from_alloc_errno(e));
        }
        let m = Mapping {
            addr: p as usize,
            len,
        };
        let _ = self.0.data.set(m);
        Ok(Some((p as usize, self.0.size)))
    }

    fn generation(&self) -> u32 {
        self.0.generation.get()
    }

    fn close(&self, shared: bool) {
        self.0.leave_agent();
        let mut state = self.0.state.lock();
        // Unshared, the mapping goes with `self` at once: no need to
        // re-point it first.
        if let Some(m) = self.0.data.get().filter(|_| shared) {
            m.trash();
        }
        state.memfd = None;
        drop(state);
        // Unshared and with no other reference (the agent no longer takes
        // one once we left it), the socket closes as the port is dropped,
        // right after this. Otherwise the exporter's agent must still see
        // end of file at once, although the descriptor itself is closed
        // only when the last reference goes.
        if shared || Arc::strong_count(&self.0) > 1 {
            // SAFETY: shutdown on our own socket.
            unsafe { libc::shutdown(self.0.sock.as_raw_fd(), libc::SHUT_RDWR) };
        }
    }
}

impl Drop for ShmImportPort {
    fn drop(&mut self) {
        self.0.leave_agent();
        let _ = self.unmap();
        // Closing the socket (when the last Arc goes) tells the exporter.
    }
}
