//! Fuzz target (b) of issue 7: what the exporter's agent accepts on a
//! segment socket.
//!
//! Two published segments live in this process (A: `shm0`, with an ACL of
//! several nodes; B: `loopback`, empty ACL). Each input opens a
//! `SOCK_SEQPACKET` connection to one of their abstract sockets
//! (`rsm/<fabric>/<node>/<segid>`, transport/shm/export.rs
//! `segment_name`) and sends the input as packets, some carrying
//! `SCM_RIGHTS` descriptors, then reads what comes back. Checked:
//! - the agent answers only with a `Reply` (a query: survey text), whose
//!   status is 0 or an RSMERR code, with exactly the descriptors it
//!   announces, and with the decision the permission model
//!   (`core::permission::admit`) makes for the request it was sent; an
//!   `Attach` (a guessed token and secret) is refused with nothing sent;
//! - the wire decoders (`Request`/`Reply`/`Attach::decode`, `is_query`,
//!   `decode_ask`, `decode_status`) accept only what re-encodes to the
//!   same bytes;
//! - every 32 inputs, legitimate `rsm_memseg_import_connect`s to both
//!   segments still succeed and move data; every 512, the process holds no
//!   more descriptors than at the start plus what the agent may keep
//!   (`MAX_PENDING` silent clients and their importers), so the agent
//!   leaks none.
//!
//! Input: byte 0 flags (bit 0 segment B, bit 1 descriptors on the first
//! packet, bit 2 on every packet, bit 3 shut down the write side after
//! sending, bit 6 close without reading, bit 7 keep the connection open
//! after this input (up to HELD at once, the oldest closed first: silent
//! clients beyond the agent's MAX_PENDING of 64, and idle importers),
//! bits 4-5 descriptor count - 1);
//! then packets, each a length byte and that many bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use librsm_fuzz::{check_rc, fuzz_bug, is_rsm_code, map_anon, open_fds, page};
use rsm::abi::types::*;
use rsm::abi::{controller as ctl, export as ex, getput as gp, import as im};
use rsm::core::permission::{self, AccessEntry, Owner, Peer};
use rsm::transport::shm::wire::{self, Reply, Request};
use rsm::transport::survey;
use std::ffi::{c_char, c_int, c_void};
use std::sync::Mutex;

const SEG_A: u32 = 0x4000_0001;
const SEG_B: u32 = 0x4000_0002;
const ACL_A: [(u32, u32); 4] = [(0, 0o600), (3, 0o400), (5, 0o200), (63, 0o000)];
/// A legitimate connect every this many inputs.
const CHECK_EVERY: u64 = 32;
/// A descriptor count every this many inputs.
const FD_EVERY: u64 = 512;
/// Connections kept open across inputs (flag bit 7), at most.
const HELD: usize = 96;
/// What may be open at once beyond our baseline: our HELD connections, the
/// agent's ends of them (an importer's event channel, up to 6 descriptors,
/// is made only on first use, but counted), its MAX_PENDING (64,
/// transport/shm/agent.rs) silent clients, and slack. A leak per connection passes this within a few
/// thousand inputs.
const FD_SLACK: usize = HELD * 8 + 2 * 64 + 64;

struct Seg {
    name: Vec<u8>,
    size: usize,
    vaddr: usize,
    acl: Vec<AccessEntry>,
}

struct World {
    loopback: usize,
    shm0: usize,
    segs: [Seg; 2],
    garbage: Vec<c_int>,
    owner: Owner,
    me: Peer,
    ipc_owner: bool,
    iter: u64,
    baseline: Option<usize>,
    checks: u64,
    held: std::collections::VecDeque<c_int>,
}

static WORLD: Mutex<Option<World>> = Mutex::new(None);

fn must(what: &str, rc: c_int) {
    if rc != 0 {
        fuzz_bug!("{what} failed: {} ({rc})", rsm::error::name_of_code(rc));
    }
}

fn get_controller(name: &std::ffi::CStr) -> usize {
    let mut h: rsmapi_controller_handle_t = std::ptr::null_mut();
    // SAFETY: a C string and our own out-pointer.
    must("get_controller", unsafe {
        ctl::rsm_get_controller(name.as_ptr() as *mut c_char, &mut h)
    });
    h as usize
}

fn export(ctrl: usize, pages: usize, segid: u32, acl: &[(u32, u32)]) -> (usize, usize) {
    let size = pages * page();
    let vaddr = map_anon(size, libc::PROT_READ | libc::PROT_WRITE, false);
    let mut h: rsm_memseg_export_handle_t = std::ptr::null_mut();
    // SAFETY: our own fresh mapping and out-pointer.
    must("export_create", unsafe {
        ex::rsm_memseg_export_create(ctrl as _, &mut h, vaddr as *mut c_void, size, 0)
    });
    let mut list: Vec<rsmapi_access_entry_t> = acl
        .iter()
        .map(|&(n, p)| rsmapi_access_entry_t {
            ae_node: n,
            ae_permission: p,
        })
        .collect();
    let mut id = segid;
    // SAFETY: our own id and list.
    must("publish", unsafe {
        ex::rsm_memseg_export_publish(
            h as _,
            &mut id,
            if list.is_empty() {
                std::ptr::null_mut()
            } else {
                list.as_mut_ptr()
            },
            list.len() as u32,
        )
    });
    (vaddr, size)
}

/// CAP_IPC_OWNER in our effective set (root has it).
fn has_ipc_owner() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .is_some_and(|c| c & (1 << 15) != 0)
}

impl World {
    fn new() -> World {
        let fabric = std::env::var("RSM_FABRIC").unwrap_or_default();
        let loopback = get_controller(c"loopback");
        let shm0 = get_controller(c"shm0");
        let (va, sa) = export(shm0, 2, SEG_A, &ACL_A);
        let (vb, sb) = export(loopback, 1, SEG_B, &[]);
        let name = |id: u32| rsm::transport::shm::segment_name(&fabric, 0, id).into_bytes();
        // Descriptors to send as garbage: /dev/null, a pipe, an eventfd, a memfd.
        let mut garbage = Vec::new();
        // SAFETY: plain syscalls creating descriptors we keep.
        unsafe {
            garbage.push(libc::open(
                c"/dev/null".as_ptr(),
                libc::O_RDWR | libc::O_CLOEXEC,
            ));
            let mut p = [0; 2];
            libc::pipe2(p.as_mut_ptr(), libc::O_CLOEXEC);
            garbage.extend(p);
            garbage.push(libc::eventfd(0, libc::EFD_CLOEXEC));
            garbage.push(libc::memfd_create(c"garbage".as_ptr(), libc::MFD_CLOEXEC));
        }
        garbage.retain(|&fd| fd >= 0);
        // SAFETY: umask is read by setting and restoring it (init is
        // single-threaded apart from the agent, which never creates files).
        let mask = unsafe {
            let m = libc::umask(0o022);
            libc::umask(m);
            m
        };
        // SAFETY: plain getters.
        let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
        let mut groups = vec![0 as libc::gid_t; 256];
        // SAFETY: room for 256 groups.
        let n = unsafe { libc::getgroups(256, groups.as_mut_ptr()) };
        groups.truncate(n.max(0) as usize);
        World {
            loopback,
            shm0,
            segs: [
                Seg {
                    name: name(SEG_A),
                    size: sa,
                    vaddr: va,
                    acl: ACL_A
                        .iter()
                        .map(|&(node, perm)| AccessEntry { node, perm })
                        .collect(),
                },
                Seg {
                    name: name(SEG_B),
                    size: sb,
                    vaddr: vb,
                    acl: Vec::new(),
                },
            ],
            garbage,
            owner: Owner {
                uid,
                gid,
                creation_mode: 0o777 & !(mask as u32),
            },
            me: Peer {
                node: 0,
                uid,
                gid,
                groups,
                ipc_owner: false,
            },
            ipc_owner: has_ipc_owner(),
            iter: 0,
            baseline: None,
            checks: 0,
            held: std::collections::VecDeque::new(),
        }
    }

    /// What the agent must answer to `req` on segment `seg`.
    fn expected(&self, seg: &Seg, req: &Request) -> Result<u32, i32> {
        let peer = Peer {
            node: req.node,
            ..self.me.clone()
        };
        let mut r = permission::admit(&seg.acl, &self.owner, &peer, req.perm);
        if r == Err(rsm::RsmError::PermDenied) && self.ipc_owner {
            let peer = Peer {
                ipc_owner: true,
                ..peer
            };
            r = permission::admit(&seg.acl, &self.owner, &peer, req.perm);
        }
        r.map_err(|e| e.code())
    }

    /// A legitimate importer: connect, put, get, disconnect, on both.
    fn legit(&mut self) {
        for (k, (ctrl, id)) in [(self.shm0, SEG_A), (self.loopback, SEG_B)]
            .into_iter()
            .enumerate()
        {
            let mut h: rsm_memseg_import_handle_t = std::ptr::null_mut();
            // SAFETY: our own out-pointer.
            let rc =
                unsafe { im::rsm_memseg_import_connect(ctrl as _, 0, id, RSM_PERM_RDWR, &mut h) };
            check_rc("rsm_memseg_import_connect", rc, &"legitimate connect");
            must("a legitimate connect after hostile clients", rc);
            let v = (self.iter as u8) ^ 0xA5;
            let mut back = 0u8;
            // SAFETY: our buffers; explicit mode needs no barrier.
            unsafe {
                must(
                    "set_mode",
                    rsm::abi::barrier::rsm_memseg_import_set_mode(h, 0),
                );
                must(
                    "put8",
                    gp::rsm_memseg_import_put8(h, 8, &v as *const u8 as *mut u8, 1),
                );
                must("get8", gp::rsm_memseg_import_get8(h, 8, &mut back, 1));
                if back != v || *((self.segs[k].vaddr + 8) as *const u8) != v {
                    fuzz_bug!("data did not go through after hostile clients");
                }
                must("disconnect", im::rsm_memseg_import_disconnect(h));
            }
        }
        self.checks += 1;
    }
}

/// Sends one packet, with `fds` attached if not empty.
fn send(sock: c_int, pkt: &[u8], fds: &[c_int]) -> bool {
    let mut iov = libc::iovec {
        iov_base: pkt.as_ptr() as *mut c_void,
        iov_len: pkt.len(),
    };
    // SAFETY: a msghdr over our buffers; CMSG_* compute within `cbuf`.
    unsafe {
        let space = libc::CMSG_SPACE((fds.len() * 4) as u32) as usize;
        let mut cbuf = vec![0u64; space.div_ceil(8).max(1)];
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        if !fds.is_empty() {
            msg.msg_control = cbuf.as_mut_ptr().cast();
            msg.msg_controllen = space;
            let c = libc::CMSG_FIRSTHDR(&msg);
            (*c).cmsg_level = libc::SOL_SOCKET;
            (*c).cmsg_type = libc::SCM_RIGHTS;
            (*c).cmsg_len = libc::CMSG_LEN((fds.len() * 4) as u32) as usize;
            std::ptr::copy_nonoverlapping(
                fds.as_ptr(),
                libc::CMSG_DATA(c).cast::<c_int>(),
                fds.len(),
            );
        }
        libc::sendmsg(sock, &msg, libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT) >= 0
    }
}

/// One received packet: its bytes (None at end of file), whether it was
/// truncated, and how many descriptors came with it (closed here).
fn recv(sock: c_int, buf: &mut [u8]) -> Option<(usize, bool, usize)> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let mut cbuf = [0u64; 64];
    // SAFETY: a msghdr over our buffers; the descriptors the kernel
    // installs are ours and closed below.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cbuf.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&cbuf);
        let n = libc::recvmsg(sock, &mut msg, libc::MSG_DONTWAIT | libc::MSG_CMSG_CLOEXEC);
        if n <= 0 {
            return None;
        }
        let mut fds = 0;
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                let count = ((*c).cmsg_len - libc::CMSG_LEN(0) as usize) / 4;
                let data = libc::CMSG_DATA(c).cast::<c_int>();
                for k in 0..count {
                    libc::close(*data.add(k));
                }
                fds += count;
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
        if msg.msg_flags & libc::MSG_CTRUNC != 0 {
            fuzz_bug!("the agent sent more descriptors than any reply has");
        }
        Some((n as usize, msg.msg_flags & libc::MSG_TRUNC != 0, fds))
    }
}

/// The decoders on their own: what they accept re-encodes to itself.
fn decoders(b: &[u8]) {
    if let Some(r) = Request::decode(b) {
        if r.encode()[..] != *b {
            fuzz_bug!("Request::decode accepted {b:?} which re-encodes differently");
        }
    }
    if let Some(r) = Reply::decode(b) {
        if r.encode()[..] != *b {
            fuzz_bug!("Reply::decode accepted {b:?} which re-encodes differently");
        }
    }
    if wire::is_query(b) && b != wire::encode_query() {
        fuzz_bug!("is_query accepted {b:?}");
    }
    if let Some(a) = wire::Attach::decode(b) {
        if a.encode()[..] != *b {
            fuzz_bug!("Attach::decode accepted {b:?} which re-encodes differently");
        }
    }
    if let Some(n) = wire::decode_ask(b) {
        if wire::encode_ask(n)[..] != *b {
            fuzz_bug!("decode_ask accepted {b:?} which re-encodes differently");
        }
    }
    if let Some((m, n)) = wire::decode_status(b) {
        if wire::encode_status(m, n)[..] != *b {
            fuzz_bug!("decode_status accepted {b:?} which re-encodes differently");
        }
    }
}

/// Reads what the agent answers on `sock` (waiting up to `wait` ms) and
/// checks it against what was sent: a survey answer to a query, else a
/// reply to `request`, the first packet if it was exactly one request.
fn check_answer(
    w: &World,
    seg: &Seg,
    sock: c_int,
    wait: c_int,
    query: bool,
    attach: bool,
    request: Option<Request>,
    packets: &[&[u8]],
) {
    let mut buf = vec![0u8; 8192];
    let mut pfd = libc::pollfd {
        fd: sock,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one pollfd of ours.
    if unsafe { libc::poll(&mut pfd, 1, wait) } <= 0 {
        return;
    }
    let Some((n, truncated, nfds)) = recv(sock, &mut buf) else {
        return;
    };
    let bytes = &buf[..n];
    if query {
        if nfds != 0 {
            fuzz_bug!("a survey answer came with {nfds} descriptors");
        }
        let text = String::from_utf8_lossy(bytes);
        match survey::decode(&text) {
            _ if truncated => {}
            Some(Some(d)) if d.size == seg.size as u64 && d.pid == std::process::id() => {}
            other => fuzz_bug!("survey answer {text:?} decodes to {other:?}"),
        }
        return;
    }
    let Some(reply) = Reply::decode(bytes) else {
        fuzz_bug!("the agent sent {bytes:?} ({nfds} fds), not a reply, after {packets:?}");
    };
    if attach {
        // Nobody can guess a connection's secret.
        if reply.status != rsm::RsmError::ConnAborted.code() || nfds != 0 {
            fuzz_bug!("the agent answered {reply:?} ({nfds} fds) to a guessed attach");
        }
        return;
    }
    let Some(req) = request else {
        fuzz_bug!("the agent answered {reply:?} to {packets:?}, not a request");
    };
    if !is_rsm_code(reply.status) {
        fuzz_bug!("reply status {} is not an RSMERR code", reply.status);
    }
    let want = w.expected(seg, &req);
    let got = if reply.status == 0 {
        Ok(reply.rights)
    } else {
        Err(reply.status)
    };
    // Resource errors are the agent's to give; anything else must be the
    // permission model's decision.
    let resources = [
        rsm::RsmError::InsufficientResources.code(),
        rsm::RsmError::InsufficientMem.code(),
    ];
    if got != want && !got.is_err_and(|e| resources.contains(&e)) {
        fuzz_bug!(
            "agent answered {got:?} to {req:?} on {}, the model says {want:?}",
            String::from_utf8_lossy(&seg.name)
        );
    }
    // The segment's descriptor; the event channel comes on first use.
    let expected_fds = if reply.status == 0 {
        usize::from(reply.rights != 0)
    } else {
        0
    };
    if reply.fds as usize != nfds || nfds != expected_fds {
        fuzz_bug!("reply {reply:?} came with {nfds} descriptors, expected {expected_fds}");
    }
}

fn one(w: &mut World, data: &[u8]) {
    decoders(data);
    let Some((&flags, mut rest)) = data.split_first() else {
        return;
    };
    let mut packets: Vec<&[u8]> = Vec::new();
    while let Some((&len, tail)) = rest.split_first() {
        if packets.len() == 8 {
            break;
        }
        let n = (len as usize).min(tail.len());
        packets.push(&tail[..n]);
        rest = &tail[n..];
    }
    for p in &packets {
        decoders(p);
    }
    let seg = &w.segs[usize::from(flags & 1)];
    // SAFETY: a new socket of ours, closed at the end.
    let sock = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0) };
    if sock < 0 {
        fuzz_bug!("harness: socket() failed");
    }
    // SAFETY: an abstract sockaddr_un of our own.
    let connected = unsafe {
        let mut addr: libc::sockaddr_un = std::mem::zeroed();
        addr.sun_family = libc::AF_UNIX as _;
        for (k, &b) in seg.name.iter().enumerate() {
            addr.sun_path[k + 1] = b as c_char;
        }
        let len = std::mem::size_of::<libc::sa_family_t>() + 1 + seg.name.len();
        libc::connect(sock, &addr as *const _ as *const libc::sockaddr, len as u32) == 0
    };
    if !connected {
        let e = std::io::Error::last_os_error();
        // SAFETY: ours.
        unsafe { libc::close(sock) };
        fuzz_bug!("cannot connect to the segment socket: {e}");
    }
    let nfd = 1 + ((flags >> 4) & 3) as usize;
    let fds = &w.garbage[..nfd.min(w.garbage.len())];
    let mut sent = 0;
    for (k, p) in packets.iter().enumerate() {
        let attach = (flags & 2 != 0 && k == 0) || flags & 4 != 0;
        if !send(sock, p, if attach { fds } else { &[] }) {
            break;
        }
        sent += 1;
    }
    if flags & 8 != 0 {
        // SAFETY: our socket.
        unsafe { libc::shutdown(sock, libc::SHUT_WR) };
    }
    // What the agent will make of the first packet (it reads only that).
    let first = packets.first().filter(|_| sent > 0);
    let request = first.and_then(|p| Request::decode(p));
    let query = first.is_some_and(|p| wire::is_query(p));
    let attach = first.is_some_and(|p| wire::Attach::decode(p).is_some());
    if flags & 0x40 == 0 {
        // A survey waits up to 250 ms for the importers it asks (our held
        // connections never answer).
        let wait = match () {
            _ if query => 600,
            _ if sent > 0 || flags & 8 != 0 => 200,
            _ => 2,
        };
        let sent_request = request.filter(|_| first.is_some_and(|p| p.len() == wire::REQUEST_LEN));
        check_answer(w, seg, sock, wait, query, attach, sent_request, &packets);
    }
    if flags & 0x80 != 0 {
        w.held.push_back(sock);
        while w.held.len() > HELD {
            let old = w.held.pop_front().unwrap_or(-1);
            // SAFETY: ours.
            unsafe { libc::close(old) };
        }
    } else {
        // SAFETY: ours.
        unsafe { libc::close(sock) };
    }
}

fuzz_target!(
    init: {
        librsm_fuzz::isolate("agent");
        *WORLD.lock().unwrap() = Some(World::new());
    },
    |data: &[u8]| {
        let mut g = WORLD.lock().unwrap();
        let w = g.as_mut().expect("initialised");
        w.iter += 1;
        one(w, data);
        if w.iter.is_multiple_of(CHECK_EVERY) {
            w.legit();
        }
        if w.iter.is_multiple_of(FD_EVERY) {
            let now = open_fds();
            match w.baseline {
                None => w.baseline = Some(now),
                Some(b) if now > b + FD_SLACK => {
                    fuzz_bug!("descriptors: {now} open, {b} at the first count: the agent leaks");
                }
                Some(_) => {}
            }
        }
    }
);
