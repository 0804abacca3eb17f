//! The exporter's side of the same-host transport: the segment's memory
//! (memory.rs), its listening socket `rsm/<fabric>/<node>/<segid>`, and its
//! importers.

use super::agent::{self, Agent, Handler};
use super::channel::{self, Bell, Channel};
use super::memory::Region;
use super::wire::{self, Attach, Reply, Request};
use crate::config::NodeId;
use crate::core::permission::Peer;
use crate::error::{RsmError, RsmResult};
use crate::transport::events::{self, Counter, Doorbell, LocalCounter, Ticket, Waitable, Woke};
use crate::transport::survey::{self, ImporterReport, SegmentDetails};
use crate::transport::{Admission, ExportPort, ImporterInfo, Signals};
use arc_swap::ArcSwap;
use nix::sys::socket::{
    self, accept4, bind, listen, socket, AddressFamily, Backlog, ControlMessage, MsgFlags,
    SockFlag, SockType, UnixAddr,
};
use parking_lot::{Mutex, RwLock};
use std::collections::HashMap;
use std::io::IoSlice;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// Next id tried for a publish with id 0 (spec 3.3: from 0x80000000 up).
static NEXT_SYSTEM_ID: AtomicU32 = AtomicU32::new(0x8000_0000);

/// The abstract socket name of segment `segid` of `node` on `fabric`:
/// `rsm/<fabric>/<node>/<segid>/<tag>`, where the tag (four or five
/// printable characters, never `/`) spreads names evenly over the
/// kernel's hash chains (`spread_tag`).
pub fn segment_name(fabric: &str, node: NodeId, segid: u32) -> String {
    let mut name = format!("rsm/{fabric}/{node}/{segid}/");
    let tag = spread_tag(&name);
    name.push_str(&tag);
    name
}

/// The 16-bit ones' complement sum of an abstract socket address whose
/// name is `name`, as the kernel's `csum_partial` adds it up: the family
/// (`AF_UNIX`), the leading NUL, then the name, in little-endian words.
fn address_sum(name: &[u8]) -> u32 {
    let family = (libc::AF_UNIX as u16).to_le_bytes();
    let bytes = family.iter().chain(std::iter::once(&0u8)).chain(name);
    let mut sum: u32 = 0;
    for (i, &b) in bytes.enumerate() {
        sum += u32::from(b) << (8 * (i % 2));
    }
    fold(sum)
}

/// A ones' complement sum folded to 16 bits.
fn fold(mut sum: u32) -> u32 {
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum
}

/// The chain of an address whose folded checksum is `sum`.
fn chain_of_sum(sum: u32) -> u8 {
    let folded = !sum & 0xffff;
    ((folded ^ (folded >> 8)) & 0xff) as u8
}

/// The chain (0-255, before the socket type is mixed in) Linux looks an
/// abstract name up in: `unix_abstract_hash` in net/unix/af_unix.c folds
/// the address's checksum and xors its two bytes.
#[cfg(test)]
pub(super) fn chain_of(name: &[u8]) -> u8 {
    chain_of_sum(address_sum(name))
}

/// Characters that sum to `x` in two bytes, both printable and not `/`.
fn split_byte(x: u32) -> Option<(u8, u8)> {
    let ok = |c: u32| (0x21..=0x7e).contains(&c) && c != u32::from(b'/');
    if !(0x42..=0xfc).contains(&x) {
        return None;
    }
    let (mut a, mut b) = (x / 2, x - x / 2);
    if !ok(a) {
        (a, b) = (a + 1, b - 1);
    }
    if !ok(b) {
        (a, b) = (a - 1, b + 1);
    }
    (ok(a) && ok(b)).then_some((a as u8, b as u8))
}

/// A tag that puts `prefix` + tag on the chain a good hash of `prefix`
/// picks. The kernel picks the chain by a checksum, and checksums of
/// printable names that differ in a few decimal digits cluster: 10,000
/// segments of one exporter used 52 of the 256 chains, and a connect
/// walked 377 sockets on average where an even spread walks 40
/// (`make bench`, scale: 1.45x at 10,000 segments). Two 16-bit words of
/// tag can add any amount the wanted checksum needs (a filler byte first
/// keeps them aligned). A kernel that hashes otherwise only loses the
/// spreading; the name is the same on both sides either way.
fn spread_tag(prefix: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325; // FNV-1a, then a finaliser
    for &b in prefix.as_bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    let target = (h >> 56) as u32;
    let fill = if (3 + prefix.len()) % 2 == 1 { "_" } else { "" };
    let base = address_sum(format!("{prefix}{fill}").as_bytes());
    for hi in 0..256u32 {
        // A folded checksum whose two bytes xor to `target`, and what the
        // tag's words must add to the sum to get there (ones' complement).
        let want = !((hi << 8) | (target ^ hi)) & 0xffff;
        let add = (want + 0xffff - base) % 0xffff;
        let (Some((l1, l2)), Some((h1, h2))) = (split_byte(add & 0xff), split_byte(add >> 8))
        else {
            continue;
        };
        // The tag's two words, aligned (the filler), as the kernel adds
        // them; checked, so a slip in the algebra above costs a candidate,
        // never a wrong chain.
        let words = u32::from(l1) | u32::from(h1) << 8;
        let words = words + (u32::from(l2) | u32::from(h2) << 8);
        if u32::from(chain_of_sum(fold(base + words))) == target {
            return format!("{fill}{}", String::from_utf8_lossy(&[l1, h1, l2, h2]));
        }
    }
    "0000".to_string()
}

struct Listening {
    fd: OwnedFd,
    token: u64,
    admission: Arc<dyn Admission>,
}

struct Importer {
    fd: OwnedFd,
    info: ImporterInfo,
    /// What the importer must show to be given its event channel.
    secret: u64,
    /// Whether its event channel was made and sent (on first use: its
    /// first signal call, or the exporter's first post after it
    /// connected).
    linked: bool,
    /// The map status it last said, in answer to ask `answered`.
    mapped: bool,
    answered: u64,
}

/// The secret of the connection with token `token`: a keyed hash (random
/// key per process), so no other process can compute it.
fn secret_of(token: u64) -> u64 {
    use std::hash::BuildHasher;
    static KEY: OnceLock<std::hash::RandomState> = OnceLock::new();
    KEY.get_or_init(std::hash::RandomState::new).hash_one(token)
}

/// The most packets read from one importer's connection per look (its
/// socket's send buffer bounds them anyway).
const STATUS_DRAIN: usize = 1024;

/// How long a survey's answer waits for the importers asked to answer.
const SURVEY_WAIT: Duration = Duration::from_millis(250);

/// A survey (`rsminfo`) waiting for the importers it asked.
struct Survey {
    client: OwnedFd,
    nonce: u64,
    asked: Vec<u64>,
    deadline: Instant,
}

/// Sends a survey its answer (`None`: the details are not for it).
fn send_answer(fd: &OwnedFd, details: Option<&SegmentDetails>) {
    let text = survey::encode(details);
    let bytes = &text.as_bytes()[..text.len().min(wire::ANSWER_MAX)];
    // SAFETY: send reads bytes.len() bytes from `bytes`.
    unsafe {
        libc::send(
            fd.as_raw_fd(),
            bytes.as_ptr().cast(),
            bytes.len(),
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
        )
    };
}

/// Reads the map status packets `imp` sent since the last look (answers
/// to asks; the latest counts). Anything else it sent is discarded.
fn drain_status(imp: &mut Importer) {
    let mut buf = [0u8; 64];
    for _ in 0..STATUS_DRAIN {
        // SAFETY: recv writes at most buf.len() bytes into buf.
        let n = unsafe {
            libc::recv(
                imp.fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT | libc::MSG_TRUNC,
            )
        };
        // Nothing more, end of file, or an error.
        let Ok(n @ 1..) = usize::try_from(n) else {
            return;
        };
        if let Some((mapped, nonce)) = wire::decode_status(&buf[..n.min(buf.len())]) {
            if nonce >= imp.answered {
                imp.mapped = mapped;
                imp.answered = nonce;
            }
        }
    }
}

struct State {
    region: Option<Region>,
    listening: Option<Listening>,
    importers: HashMap<u64, Importer>,
    /// Set once importers were handed a descriptor of the current memfd.
    handed_out: bool,
    /// Surveys waiting for importers' answers.
    surveys: Vec<Survey>,
}

/// Who waits on the importers' event channels. Its lock orders changes
/// to the channel list (`ShmExport::channels`) and to the arming against
/// sleeps and doorbell drains; posts and takes read the list without it.
struct Hub {
    /// Threads asleep in a wait.
    sleepers: u32,
    /// The program holds the pollfd.
    watched: bool,
}

/// The importers' event channels by importer token, replaced whole (under
/// the hub's write lock) when one joins or leaves.
type Channels = Vec<(u64, Arc<Channel>)>;

impl Hub {
    fn armed(&self) -> bool {
        self.sleepers > 0 || self.watched
    }
}

/// An export segment on the same-host transport.
pub struct ShmExport {
    fabric: String,
    state: Mutex<State>,
    hub: RwLock<Hub>,
    /// Shared with a waiter asleep on one's `wakes`. A snapshot, so the
    /// signal fast paths (post, take, spin) take no lock.
    channels: ArcSwap<Channels>,
    /// Destroyed: waiters leave with `RSMERR_BAD_SEG_HNDL`.
    destroyed: AtomicBool,
    /// Events posted by importers that left before they were consumed
    /// (they are not lost); also rung to wake waiters at destroy.
    own: LocalCounter,
    /// The exporter's doorbell for all its counters: its read end is the
    /// pollfd; importers get its write end. Made on first need (a segment
    /// nobody connects to, waits on or polls costs no descriptor for it).
    up: OnceLock<Bell>,
    /// Where the next scan of the channels starts (fairness).
    cursor: AtomicUsize,
    /// Importers (admitted or being answered) without an event channel:
    /// a post makes theirs first, so none misses it.
    unlinked: AtomicUsize,
    /// The number of the next ask (surveys), from 1.
    next_ask: AtomicU64,
    /// Threads asleep (or about to sleep) on the only importer's `wakes`
    /// word; changed under the hub's read lock, read under its write
    /// lock by `link` and `unlink`. Kept here, not in the `SLEEPING` flag
    /// of the importer's page, which that importer can clear: it would
    /// then keep the exporter asleep through another importer's arrival
    /// and posts.
    futex_sleepers: AtomicUsize,
}

/// The `ExportPort` handed to core.
pub struct ShmExportPort(Arc<ShmExport>);

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
                surveys: Vec::new(),
            }),
            hub: RwLock::new(Hub {
                sleepers: 0,
                watched: false,
            }),
            channels: ArcSwap::from_pointee(Vec::new()),
            destroyed: AtomicBool::new(false),
            own: LocalCounter::default(),
            up: OnceLock::new(),
            cursor: AtomicUsize::new(0),
            unlinked: AtomicUsize::new(0),
            next_ask: AtomicU64::new(1),
            futex_sleepers: AtomicUsize::new(0),
        })))
    }
}

/// Reads a client's first packet into `buf`, returning its real length.
/// MSG_TRUNC: an oversized packet is refused rather than read in part. No
/// control buffer: descriptors a hostile client sends are discarded by the
/// kernel.
fn read_request(fd: &OwnedFd, buf: &mut [u8; 64]) -> Result<isize, nix::errno::Errno> {
    // SAFETY: recv writes at most buf.len() bytes into buf.
    let n = unsafe {
        libc::recv(
            fd.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            libc::MSG_DONTWAIT | libc::MSG_TRUNC,
        )
    };
    if n < 0 {
        return Err(nix::errno::Errno::last());
    }
    Ok(n)
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

fn send_reply(fd: &OwnedFd, reply: Reply, pass: &[RawFd]) -> bool {
    let bytes = Reply {
        fds: pass.len() as u32,
        ..reply
    }
    .encode();
    let iov = [IoSlice::new(&bytes)];
    let cmsgs: Vec<ControlMessage> = if pass.is_empty() {
        Vec::new()
    } else {
        vec![ControlMessage::ScmRights(pass)]
    };
    socket::sendmsg::<()>(
        fd.as_raw_fd(),
        &iov,
        &cmsgs,
        MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL,
        None,
    )
    .is_ok_and(|n| n == bytes.len())
}

/// Tells a client it is refused, with `e`'s code and nothing passed.
fn refuse(fd: &OwnedFd, e: RsmError) {
    send_reply(
        fd,
        Reply {
            status: e.code(),
            rights: 0,
            fds: 0,
            size: 0,
            token: 0,
            secret: 0,
        },
        &[],
    );
}

impl ShmExport {
    /// Accepts up to `max` waiting clients of the listener `token`; the
    /// agent comes back for the others (agent.rs: departures first).
    pub fn accept_some(self: &Arc<Self>, agent: &Agent, token: u64, max: usize) {
        for _ in 0..max {
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
                    Err(nix::errno::Errno::EMFILE) | Err(nix::errno::Errno::ENFILE) => {
                        // No descriptor free: take the client with the
                        // reserve one and tell it, rather than leave it
                        // waiting and the listener readable (a busy loop).
                        let l = l.fd.as_raw_fd();
                        agent.with_spare(|| {
                            if let Ok(fd) =
                                accept4(l, SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC)
                            {
                                // SAFETY: accept4 returned a new descriptor we now own.
                                let fd = unsafe { OwnedFd::from_raw_fd(fd) };
                                crate::why!("agent: no descriptor free; a connect is refused");
                                refuse(&fd, RsmError::InsufficientResources);
                            }
                        });
                        return;
                    }
                    Err(_) => return,
                }
            };
            // A legitimate importer sends its request right after connect:
            // if it is there already, answer now, so a flood of silent
            // clients never stands in its way.
            let mut buf = [0u8; 64];
            match read_request(&fd, &mut buf) {
                Err(nix::errno::Errno::EAGAIN) => agent.add_pending(fd, Arc::downgrade(self)),
                // A request, or end of file: either way, done.
                n => self.answer(agent, fd, &buf, n.unwrap_or(-1)),
            }
        }
    }

    /// Answers a client that was pending when its request came.
    pub fn serve(self: &Arc<Self>, agent: &Agent, fd: OwnedFd) {
        let mut buf = [0u8; 64];
        let n = read_request(&fd, &mut buf).unwrap_or(-1);
        self.answer(agent, fd, &buf, n);
    }

    /// Answers a client's request (`n` bytes long, of which `buf` holds
    /// the first): admitted importers get the segment's descriptor,
    /// read-only unless they may write.
    fn answer(self: &Arc<Self>, agent: &Agent, fd: OwnedFd, buf: &[u8; 64], n: isize) {
        if usize::try_from(n) == Ok(wire::QUERY_LEN) && wire::is_query(&buf[..wire::QUERY_LEN]) {
            self.answer_query(agent, fd);
            return;
        }
        if usize::try_from(n) == Ok(wire::ATTACH_LEN) {
            if let Some(attach) = Attach::decode(&buf[..wire::ATTACH_LEN]) {
                self.answer_attach(&fd, attach);
                return;
            }
        }
        let Some(request) = usize::try_from(n).ok().and_then(|n| {
            Request::decode(&buf[..n.min(buf.len())]).filter(|_| n == wire::REQUEST_LEN)
        }) else {
            crate::why!("agent: dropped a client with a malformed request ({n} bytes)");
            return;
        };
        let Ok(cred) = socket::getsockopt(&fd, socket::sockopt::PeerCredentials) else {
            return;
        };
        let mut state = self.state.lock();
        let Some(listening) = state.listening.as_ref() else {
            return;
        }; // unpublished meanwhile
           // Supplementary groups decide only for a peer that is neither the
           // owner nor in the owner's primary group.
        let owner = listening.admission.owner();
        let groups = if cred.uid() != owner.uid && cred.gid() != owner.gid {
            peer_groups(fd.as_raw_fd())
        } else {
            Vec::new()
        };
        let mut peer = Peer {
            node: request.node,
            uid: cred.uid(),
            gid: cred.gid(),
            groups,
            ipc_owner: false,
        };
        let mut admitted = listening.admission.admit(&peer, request.perm);
        // CAP_IPC_OWNER only matters when the mode refuses: read the
        // peer's /proc status (the dearest step of a connect) only then.
        if admitted == Err(RsmError::PermDenied) && crate::transport::has_ipc_owner(cred.pid()) {
            peer.ipc_owner = true;
            admitted = listening.admission.admit(&peer, request.perm);
        }
        // An exporter out of memory says so rather than take on the
        // per-importer state it could not allocate (oom.rs).
        let admitted = admitted.and_then(|r| crate::oom::headroom().map(|()| r));
        let size = state.region.as_ref().map_or(0, |r| r.size()) as u64;
        let rights = match admitted {
            Err(e) => {
                refuse(&fd, e);
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
        // A writer gets the memfd itself (SCM_RIGHTS duplicates it; the
        // state lock keeps it open until sent); a reader a read-only one.
        let writer = rights & crate::core::permission::PERM_WRITE != 0;
        let read_only: Option<OwnedFd> = if !writer && rights != 0 {
            reopen_read_only(region.memfd())
        } else {
            None
        };
        let pass: Option<RawFd> = if writer {
            Some(region.memfd().as_raw_fd())
        } else {
            read_only.as_ref().map(|f| f.as_raw_fd())
        };
        if rights != 0 && pass.is_none() {
            refuse(&fd, RsmError::InsufficientResources);
            return;
        }
        // The event channel is made on first use (`answer_attach`,
        // `link_all`): a connect that never signals pays nothing for it.
        // Counted before the reply, under the state lock held until the
        // importer is listed, so a post made after its connect returns
        // makes its channel first and it misses nothing.
        let token = agent.reserve(Handler::Importer(Arc::downgrade(self)));
        let secret = secret_of(token);
        let reply = Reply {
            status: 0,
            rights,
            fds: 0,
            size,
            token,
            secret,
        };
        let fds: Vec<RawFd> = pass.into_iter().collect();
        self.unlinked.fetch_add(1, Ordering::SeqCst);
        state.handed_out |= pass.is_some();
        if !send_reply(&fd, reply, &fds) {
            agent.release(token);
            self.unlinked.fetch_sub(1, Ordering::SeqCst);
            return;
        }
        drop(read_only);
        // Watched for hang-up alone: its answers to a survey's asks wait
        // in the socket until the survey reads them (`advance_surveys`).
        // Watched after the reply (off the importer's wait); a hang-up
        // meanwhile is reported then, epoll being level-triggered.
        if agent.watch_hangup(fd.as_fd(), token).is_err() {
            // Unwatched, its departure would go unnoticed: end it now, so
            // the importer sees a forced disconnect.
            // SAFETY: shutdown on a socket we own.
            unsafe { libc::shutdown(fd.as_raw_fd(), libc::SHUT_RDWR) };
            self.unlinked.fetch_sub(1, Ordering::SeqCst);
            return;
        }
        let info = ImporterInfo {
            pid: cred.pid() as u32,
            uid: cred.uid(),
            node: request.node,
            rights,
        };
        state.importers.insert(
            token,
            Importer {
                fd,
                info,
                secret,
                linked: false,
                mapped: false,
                answered: 0,
            },
        );
    }

    /// Makes the event channel of importer `token` and sends it on its
    /// connection (wire.rs), where its agent takes it. Sent rather than
    /// waiting to be asked: descriptors in flight outlive this process,
    /// so events posted before a crash still reach the importer. If it
    /// cannot be sent, the importer would miss events: its connection is
    /// ended instead (a forced disconnect for it).
    fn push(&self, token: u64, imp: &mut Importer) -> RsmResult<()> {
        if imp.linked {
            return Ok(());
        }
        let up = self.up()?;
        let (channel, handout) = Channel::create()?;
        // What it last said when asked, until it writes the page itself
        // as it takes the channel.
        drain_status(imp);
        channel.set_mapped(imp.mapped);
        let (Some(up_write), Some(down_write)) = (&up.write, &channel.down.write) else {
            return Err(RsmError::InternalError);
        };
        let fds = [
            handout.page.as_raw_fd(),
            up_write.as_raw_fd(),
            handout.down_read.as_raw_fd(),
            down_write.as_raw_fd(),
        ];
        let reply = Reply {
            status: 0,
            rights: 0,
            fds: 0,
            size: 0,
            token,
            secret: 0,
        };
        self.link(token, channel);
        imp.linked = true;
        self.unlinked.fetch_sub(1, Ordering::SeqCst);
        if !send_reply(&imp.fd, reply, &fds) {
            crate::why!("agent: an importer's event channel could not be sent; it is disconnected");
            // SAFETY: shutdown on a socket we own; the hang-up removes it.
            unsafe { libc::shutdown(imp.fd.as_raw_fd(), libc::SHUT_RDWR) };
        }
        Ok(())
    }

    /// An importer asks for its event channel, over the second connection
    /// `fd` it opened for that: it is sent on its own connection (`push`)
    /// and the answer says so. Only the process that connected, showing
    /// the secret its reply carried, is answered.
    fn answer_attach(&self, fd: &OwnedFd, attach: Attach) {
        let Ok(cred) = socket::getsockopt(fd, socket::sockopt::PeerCredentials) else {
            return;
        };
        let mut state = self.state.lock();
        let imp = state.importers.get_mut(&attach.token).filter(|imp| {
            imp.secret == attach.secret
                && imp.info.uid == cred.uid()
                && imp.info.pid == cred.pid() as u32
        });
        let Some(imp) = imp else {
            crate::why!("agent: refused an event channel to a client that does not own it");
            refuse(fd, RsmError::ConnAborted);
            return;
        };
        if let Err(e) = self.push(attach.token, imp) {
            refuse(fd, e);
            return;
        }
        let reply = Reply {
            status: 0,
            rights: 0,
            fds: 0,
            size: 0,
            token: attach.token,
            secret: 0,
        };
        send_reply(fd, reply, &[]);
    }

    /// A post is coming while some importers have no event channel yet:
    /// send theirs now, so they find the event in it.
    fn link_all(&self) -> RsmResult<()> {
        let mut state = self.state.lock();
        if self.unlinked.load(Ordering::SeqCst) == 0 {
            return Ok(());
        }
        for (token, imp) in state.importers.iter_mut() {
            // One importer's channel that cannot be made (no descriptor
            // left) must not fail the post for the others: that importer
            // is disconnected instead, as when its channel cannot be sent,
            // and the hang-up takes it off the list.
            if let Err(e) = self.push(*token, imp) {
                crate::why!("agent: an importer's event channel could not be made ({e:?}); it is disconnected");
                // SAFETY: shutdown on a socket we own.
                unsafe { libc::shutdown(imp.fd.as_raw_fd(), libc::SHUT_RDWR) };
            }
        }
        Ok(())
    }

    /// An importer is gone from the list: the count of those without a
    /// channel follows.
    fn forget(&self, imp: &Importer) {
        if !imp.linked {
            self.unlinked.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// An importer's connection hung up (it disconnected, exited or
    /// died; it is watched for nothing else): it is dropped.
    pub fn importer_event(&self, agent: &Agent, token: u64) {
        let mut state = self.state.lock();
        let Some(imp) = state.importers.remove(&token) else {
            return;
        };
        agent.unregister(token, imp.fd.as_fd());
        self.forget(&imp);
        drop(state);
        drop(imp);
        self.unlink(token);
    }

    /// Answers a survey (`rsminfo`): the details to root and to the
    /// exporter's own uid, to anyone else only that the segment exists.
    /// Listed importers without an event channel are asked whether they
    /// mapped (an `Ask` on their connection); the answer then waits for
    /// theirs, up to `SURVEY_WAIT` (`advance_surveys`, which the agent
    /// calls).
    fn answer_query(self: &Arc<Self>, agent: &Agent, fd: OwnedFd) {
        let Ok(cred) = socket::getsockopt(&fd, socket::sockopt::PeerCredentials) else {
            return;
        };
        let mut state = self.state.lock();
        if state.listening.is_none() {
            return;
        }
        // SAFETY: geteuid cannot fail and touches no memory.
        let euid = unsafe { libc::geteuid() };
        if cred.uid() != 0 && cred.uid() != euid {
            send_answer(&fd, None);
            return;
        }
        let nonce = self.next_ask.fetch_add(1, Ordering::Relaxed);
        let asked: Vec<u64> = state
            .importers
            .iter()
            .take(survey::MAX_LISTED)
            .filter(|(_, imp)| !imp.linked)
            .filter(|(_, imp)| {
                let ask = wire::encode_ask(nonce);
                // SAFETY: send reads ask.len() bytes from our buffer.
                let n = unsafe {
                    libc::send(
                        imp.fd.as_raw_fd(),
                        ask.as_ptr().cast(),
                        ask.len(),
                        libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
                    )
                };
                n == ask.len() as isize
            })
            .map(|(token, _)| *token)
            .collect();
        if asked.is_empty() {
            let details = self.details(&mut state);
            send_answer(&fd, details.as_ref());
            return;
        }
        state.surveys.push(Survey {
            client: fd,
            nonce,
            asked,
            deadline: Instant::now() + SURVEY_WAIT,
        });
        drop(state);
        agent.surveying(Arc::downgrade(self));
    }

    /// Answers the surveys whose importers all answered, or whose time is
    /// up (those that did not are reported as they last said). Whether
    /// any is still waiting.
    pub fn advance_surveys(&self) -> bool {
        let mut state = self.state.lock();
        if state.surveys.is_empty() {
            return false;
        }
        let now = Instant::now();
        let surveys = std::mem::take(&mut state.surveys);
        for token in surveys.iter().flat_map(|s| s.asked.iter()) {
            if let Some(imp) = state.importers.get_mut(token) {
                drain_status(imp);
            }
        }
        for survey in surveys {
            let answered = survey.asked.iter().all(|token| {
                state
                    .importers
                    .get(token)
                    .is_none_or(|imp| imp.linked || imp.answered >= survey.nonce)
            });
            if answered || now >= survey.deadline {
                let details = self.details(&mut state);
                if state.listening.is_some() {
                    send_answer(&survey.client, details.as_ref());
                }
            } else {
                state.surveys.push(survey);
            }
        }
        !state.surveys.is_empty()
    }

    /// What a survey shows of this segment, if it is published.
    fn details(&self, state: &mut State) -> Option<SegmentDetails> {
        let listening = state.listening.as_ref()?;
        let access = listening.admission.access();
        let channels = self.channels.load();
        let more = state.importers.len().saturating_sub(survey::MAX_LISTED) as u64;
        let mut importers: Vec<ImporterReport> = state
            .importers
            .iter_mut()
            .take(survey::MAX_LISTED)
            .map(|(token, imp)| {
                let ch = channels.iter().find(|(t, _)| t == token);
                // An importer that has its channel says it there; before,
                // when asked (`drain_status`).
                let mapped = match ch {
                    Some((_, c)) if imp.linked => c.mapped(),
                    _ => {
                        drain_status(imp);
                        imp.mapped
                    }
                };
                ImporterReport {
                    info: imp.info.clone(),
                    mapped,
                    pending_to_exporter: ch.map_or(0, |(_, c)| c.up().count()),
                    pending_to_importer: ch.map_or(0, |(_, c)| c.down().count()),
                }
            })
            .collect();
        importers.sort_by_key(|i| i.info.pid);
        Some(SegmentDetails {
            size: state.region.as_ref().map_or(0, |r| r.size()) as u64,
            pid: std::process::id(),
            access,
            pending_departed: self.own().count(),
            more,
            importers,
        })
    }

    fn unpublish_locked(&self, state: &mut State) -> RsmResult<()> {
        let Some(listening) = state.listening.take() else {
            return Err(RsmError::SegNotPublished);
        };
        let agent = agent::agent()?;
        agent.unregister(listening.token, listening.fd.as_fd());
        drop(listening);
        let notice = wire::encode_notice(wire::NOTICE_UNPUBLISHED);
        let tokens: Vec<u64> = state.importers.keys().copied().collect();
        let importers: Vec<(u64, Importer)> = state.importers.drain().collect();
        for (token, imp) in importers {
            self.forget(&imp);
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
        for token in tokens {
            self.unlink(token);
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
        agent.keep_spare();
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
        self.0.end_waits();
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
}

/// The exporter's doorbell as the counter protocol sees it: one pipe for
/// all its counters, so draining it must leave it rung if any counter has
/// events (another counter's ring may have been among the bytes read).
struct UpBell<'a> {
    x: &'a ShmExport,
}

impl Doorbell for UpBell<'_> {
    fn ring(&self) {
        if let Some(up) = self.x.up.get() {
            up.ring();
        }
    }
    fn drain(&self) {
        self.x.settle_all();
    }
    fn wake(&self, wakes: &AtomicU32) {
        channel::futex_wake(wakes);
    }
}

/// Signals (spec 4.9) on the exporter's side.
impl ShmExport {
    fn own(&self) -> Counter<'_> {
        self.own.counter()
    }

    /// Every counter the exporter waits on.
    fn counters<'a>(&'a self, channels: &'a Channels) -> impl Iterator<Item = Counter<'a>> {
        std::iter::once(self.own()).chain(channels.iter().map(|(_, ch)| ch.up()))
    }

    /// The doorbell, made now if this is its first need.
    fn up(&self) -> RsmResult<&Bell> {
        if let Some(up) = self.up.get() {
            return Ok(up);
        }
        // Two threads may race here before anyone used either pipe: the
        // loser's is dropped.
        let _ = self.up.set(Bell::new()?);
        self.up.get().ok_or(RsmError::InternalError)
    }

    /// Drains the doorbell without losing a ring: counters with nothing
    /// pending stop claiming it, it is read empty, and it is rung again if
    /// any counter has events.
    /// Under the hub's read lock, so no channel joins meanwhile (its ring
    /// could be drained unclaimed); recursive: a take may come here.
    fn settle_all(&self) {
        let Some(up) = self.up.get() else {
            return;
        };
        let _hub = self.hub.read_recursive();
        let channels = self.channels.load();
        for c in self.counters(&channels) {
            c.quiet();
        }
        up.drain();
        let mut pending = false;
        for c in self.counters(&channels) {
            pending |= c.claim_if_pending();
        }
        if pending {
            up.ring();
        }
    }

    /// Arms or disarms every counter the exporter waits on.
    /// The caller holds the hub's write lock.
    fn arm_all(&self, on: bool) {
        let bell = UpBell { x: self };
        let channels = self.channels.load();
        for c in self.counters(&channels) {
            c.arm(on, &bell);
        }
    }

    /// Changes who waits; arms on the first, disarms after the last.
    fn set_waiting(&self, change: impl FnOnce(&mut Hub)) -> RsmResult<()> {
        self.up()?;
        let mut hub = self.hub.write();
        let before = hub.armed();
        change(&mut hub);
        if hub.armed() != before {
            self.arm_all(hub.armed());
        }
        Ok(())
    }

    /// A new importer's channel joins the hub.
    fn link(&self, token: u64, channel: Channel) {
        let hub = self.hub.write();
        let bell = UpBell { x: self };
        if hub.armed() {
            channel.up().arm(true, &bell);
        }
        let old = self.channels.load_full();
        // A waiter asleep on the only importer's `wakes` would not hear
        // this one: wake it to sleep on the doorbell instead.
        if let [(_, only)] = old.as_slice() {
            self.wake_futex_sleepers(only, &bell);
        }
        let mut new = Vec::with_capacity(old.len() + 1);
        new.extend(old.iter().cloned());
        new.push((token, Arc::new(channel)));
        self.channels.store(Arc::new(new));
    }

    /// An importer left: its channel goes, and the events it posted that
    /// were not consumed yet move to `own`, so none is lost.
    fn unlink(&self, token: u64) {
        let _hub = self.hub.write();
        let old = self.channels.load_full();
        let Some(i) = old.iter().position(|(t, _)| *t == token) else {
            return;
        };
        let mut new: Channels = (*old).clone();
        let (_, channel) = new.swap_remove(i);
        self.channels.store(Arc::new(new));
        // A take from an older snapshot races `take_all` on `consumed`:
        // each event still goes to exactly one of them.
        let bell = UpBell { x: self };
        let n = channel.up().take_all();
        self.own().add(n, &bell);
        // A waiter asleep on its `wakes` looks again (at `own` now).
        self.wake_futex_sleepers(&channel, &bell);
    }

    /// Wakes the threads asleep on `only`'s `wakes` word, if any: counted
    /// by this process (`futex_sleepers`), not read from the page. The
    /// caller holds the hub's write lock.
    fn wake_futex_sleepers(&self, only: &Channel, bell: &UpBell<'_>) {
        if self.futex_sleepers.load(Ordering::SeqCst) != 0 {
            only.up().wake_all(bell);
        }
    }

    /// Destroy: waiters leave with `RSMERR_BAD_SEG_HNDL`.
    fn end_waits(&self) {
        let _hub = self.hub.write();
        self.destroyed.store(true, Ordering::SeqCst);
        let bell = UpBell { x: self };
        for (_, ch) in self.channels.load().iter() {
            ch.up().wake_all(&bell);
        }
        bell.ring();
    }

    /// One event from any importer, scanning from a rotating start.
    fn take_one(&self, channels: &Channels) -> bool {
        let bell = UpBell { x: self };
        if self.own().take(&bell) {
            return true;
        }
        let n = channels.len();
        match n {
            0 => return false,
            1 => return channels[0].1.up().take(&bell),
            _ => {}
        }
        let start = self.cursor.fetch_add(1, Ordering::Relaxed) % n;
        (0..n).any(|i| channels[(start + i) % n].1.up().take(&bell))
    }
}

impl Waitable for ShmExport {
    /// The only importer's channel, kept alive while claimed on (it may
    /// leave meanwhile), and the ticket.
    type Claim = (Arc<Channel>, Ticket);

    /// With one importer and nothing of `own` pending, its counter.
    fn claim(&self) -> Option<Self::Claim> {
        let channels = self.channels.load();
        let [(_, only)] = channels.as_slice() else {
            return None;
        };
        if !only.poster().owned() || self.own().pending() {
            return None;
        }
        let t = only.up().claim()?;
        Some((Arc::clone(only), t))
    }

    /// Gives up the claim (`None`) when another importer joins or this one
    /// leaves, or when events land in `own`.
    fn spin_claimed(&self, (ch, t): &Self::Claim, rounds: u32) -> Option<bool> {
        match self.channels.load().as_slice() {
            [(_, only)] if Arc::ptr_eq(only, ch) => {}
            _ => return None,
        }
        let bell = UpBell { x: self };
        for _ in 0..rounds {
            if ch.up().claimed(t, &bell) {
                return Some(true);
            }
            if self.own().pending() {
                return None;
            }
            std::hint::spin_loop();
        }
        Some(false)
    }

    /// Gives the claim back; if its importer left meanwhile, `unlink`'s
    /// move to `own` may have come before the give-back (the claimed
    /// event is not pending until then): what the channel still holds is
    /// moved to `own` here. Under the hub's read lock, so `unlink` is
    /// either over (the channel is off the list) or not begun (it moves
    /// the events itself); both moves are `take_all`, so each event goes
    /// once. Only when a spin ends, never between an event and a wait's
    /// return.
    fn unclaim(&self, (ch, t): Self::Claim) -> bool {
        let bell = UpBell { x: self };
        if ch.up().unclaim(t, &bell) {
            return true;
        }
        let _hub = self.hub.read();
        if !self
            .channels
            .load()
            .iter()
            .any(|(_, c)| Arc::ptr_eq(c, &ch))
        {
            let n = ch.up().take_all();
            self.own().add(n, &bell);
        }
        false
    }

    fn take(&self) -> bool {
        self.take_one(&self.channels.load())
    }

    fn pending(&self) -> bool {
        let channels = self.channels.load();
        let pending = self.counters(&channels).any(|c| c.pending());
        pending
    }

    fn spin(&self, rounds: u32) -> bool {
        // One snapshot for a batch of probes; a connect meanwhile is seen
        // at the next batch.
        let channels = self.channels.load();
        for _ in 0..rounds {
            if self.counters(&channels).any(|c| c.pending()) && self.take_one(&channels) {
                return true;
            }
            std::hint::spin_loop();
        }
        false
    }

    fn ended(&self) -> Option<RsmError> {
        self.destroyed
            .load(Ordering::Acquire)
            .then_some(RsmError::BadSegHndl)
    }

    fn sleep(&self, timeout_ms: i32) -> RsmResult<Woke> {
        let hub = self.hub.read();
        let channels = self.channels.load();
        if let [(_, only)] = channels.as_slice() {
            // One importer: sleep on its `wakes` word, read under the lock
            // so a `link` or `unlink` after it wakes us.
            let only = Arc::clone(only);
            self.futex_sleepers.fetch_add(1, Ordering::SeqCst);
            let seen = only.up().prepare_sleep();
            let now = self.destroyed.load(Ordering::SeqCst)
                || self.counters(&channels).any(|c| c.pending());
            drop(channels);
            drop(hub);
            let woke = if now {
                Ok(Woke::Woken)
            } else {
                channel::futex_sleep(only.up().wakes(), seen, timeout_ms)
            };
            self.futex_sleepers.fetch_sub(1, Ordering::SeqCst);
            return woke;
        }
        drop(channels);
        drop(hub);
        // Several importers (or none yet): the one doorbell, with every
        // counter armed for this sleep.
        self.set_waiting(|h| h.sleepers += 1)?;
        let woke = channel::sleep_on(self.up()?.read_fd(), timeout_ms);
        let _ = self.set_waiting(|h| h.sleepers = h.sleepers.saturating_sub(1));
        woke
    }

    fn settle(&self) {
        self.settle_all();
    }
}

impl Signals for ShmExportPort {
    fn post(&self, no_accumulate: bool) -> RsmResult<()> {
        if self.0.unlinked.load(Ordering::SeqCst) != 0 {
            self.0.link_all()?;
        }
        for (_, ch) in self.0.channels.load().iter() {
            ch.down().post(ch.poster(), no_accumulate, &ch.down);
        }
        Ok(())
    }

    fn wait(&self, timeout_ms: i32) -> RsmResult<()> {
        events::wait(&*self.0, timeout_ms, events::spin()?)
    }

    fn take(&self) -> RsmResult<bool> {
        if self.0.take_one(&self.0.channels.load()) {
            return Ok(true);
        }
        self.0.settle_all();
        Ok(false)
    }

    fn pollfd(&self) -> RsmResult<RawFd> {
        Ok(self.0.up()?.read_fd())
    }

    fn watch(&self, on: bool) -> RsmResult<()> {
        self.0.set_waiting(|h| h.watched = on)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::events::{Poster, BEFORE_GIVE_BACK};

    /// An export of one fresh page, with no listener (nothing connects:
    /// channels are linked by hand).
    fn export() -> ShmExportPort {
        let len = crate::transport::shm::page_size();
        let p = crate::transport::shm::memory::tests::anon(len);
        ShmExportPort::bind("unit", p, len).unwrap()
    }

    /// The claimer looks for its event (not yet), the importer posts it
    /// and leaves (`unlink` moves what is pending to `own`: the claimed
    /// event is not pending), then the claimer gives the claim back: the
    /// event is pending again, on a channel nobody looks at any more. It
    /// must still reach a wait.
    #[test]
    fn a_claim_given_back_after_its_importer_left_keeps_the_event() {
        let port = export();
        let x = Arc::clone(&port.0);
        let (channel, _handout) = Channel::create().unwrap();
        x.link(7, channel);
        let claim = x.claim().expect("one importer, nothing pending: claims");
        let ch = Arc::clone(&claim.0);
        let importer = Poster::new(ch.up());
        let leaver = Arc::clone(&x);
        BEFORE_GIVE_BACK.with(|h| {
            *h.borrow_mut() = Some(Box::new(move || {
                ch.up().post(&importer, false, &UpBell { x: &leaver });
                leaver.unlink(7);
            }))
        });
        let mine = x.unclaim(claim);
        assert!(
            mine || events::take_now(&*x).unwrap(),
            "the importer's last event is delivered"
        );
        assert!(!events::take_now(&*x).unwrap(), "once");
    }
}
