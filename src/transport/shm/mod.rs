//! Same-host transport (DESIGN.md 5): processes on one machine, grouped by
//! fabric name.
//!
//! Presence: a process that holds a controller binds an abstract Unix socket
//! `rsm/<fabric>/present/<node>/<pid>/<label>`. The kernel removes it when
//! the process dies, so there is no stale state to clean and no daemon; the
//! live set is read from `/proc/net/unix`, which lists the abstract names of
//! this network namespace (processes in other namespaces are other hosts).

mod agent;
mod channel;
mod export;
mod fork;
mod generation;
mod import;
pub(crate) mod memory;
pub mod wire;

pub use export::segment_name;

use crate::config::NodeId;
use crate::error::{RsmError, RsmResult};
use crate::transport::survey::{self, Present, SegmentDetails, SegmentReport};
use crate::transport::{ControllerAttributes, ExportPort, ImportPort, Presence, Transport};
use nix::sys::socket::{bind, socket, AddressFamily, SockFlag, SockType, UnixAddr};
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

/// Direct-access and atomic sizes: x86-64 and aarch64 do single-copy atomic
/// aligned 1/2/4/8-byte loads and stores (`RSM_DAS8|16|32|64`).
const DAS_ALL: u32 = 1 | 2 | 4 | 8;

/// The same-host interconnect on one fabric.
#[derive(Debug, Clone)]
pub struct ShmTransport {
    fabric: String,
    max_segments: u64,
    connect_timeout: Duration,
}

impl ShmTransport {
    /// A transport on `fabric` (already validated by `config`).
    pub fn new(fabric: &str, max_segments: u64, connect_timeout: Duration) -> Self {
        ShmTransport {
            fabric: fabric.to_string(),
            max_segments,
            connect_timeout,
        }
    }

    fn presence_prefix(&self) -> String {
        format!("rsm/{}/present/", self.fabric)
    }
}

struct AbstractSocket {
    _fd: OwnedFd,
}
impl Presence for AbstractSocket {}

/// The system page size.
pub fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(n).unwrap_or(4096)
}

/// Physical memory in bytes (what memfd segments can at most hold at once).
fn physical_memory() -> usize {
    // SAFETY: sysconf has no preconditions.
    let pages = unsafe { libc::sysconf(libc::_SC_PHYS_PAGES) };
    usize::try_from(pages)
        .unwrap_or(0)
        .saturating_mul(page_size())
}

/// The soft RLIMIT_AS, or the 47-bit user address space if unlimited.
fn address_space_limit() -> usize {
    const USER_SPACE: usize = 1 << 47;
    match nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_AS) {
        Ok((soft, _)) if soft != libc::RLIM_INFINITY => usize::try_from(soft).unwrap_or(USER_SPACE),
        _ => USER_SPACE,
    }
}

impl Transport for ShmTransport {
    fn attributes(&self) -> RsmResult<ControllerAttributes> {
        let memory = physical_memory();
        let address_space = address_space_limit();
        Ok(ControllerAttributes {
            direct_access_sizes: DAS_ALL,
            atomic_sizes: DAS_ALL,
            page_size: page_size(),
            max_export_segment_size: memory,
            tot_export_segment_size: memory,
            max_export_segments: self.max_segments,
            max_import_map_size: memory.min(address_space),
            tot_import_map_size: address_space,
            max_import_segments: self.max_segments,
        })
    }

    fn max_import_segments(&self) -> RsmResult<u64> {
        Ok(self.max_segments)
    }

    fn hwaddr(&self, node: NodeId) -> u64 {
        u64::from(node)
    }

    fn announce(&self, node: NodeId, label: &str) -> RsmResult<Box<dyn Presence>> {
        let name = format!(
            "{}{node}/{}/{label}",
            self.presence_prefix(),
            std::process::id()
        );
        let addr = UnixAddr::new_abstract(name.as_bytes()).map_err(|_| RsmError::InternalError)?;
        let fd = socket(
            AddressFamily::Unix,
            SockType::SeqPacket,
            SockFlag::SOCK_CLOEXEC,
            None,
        )
        .map_err(|e| RsmError::from_alloc_errno(e as i32))?;
        match bind(std::os::fd::AsRawFd::as_raw_fd(&fd), &addr) {
            Ok(()) => Ok(Box::new(AbstractSocket { _fd: fd })),
            // Our pid is in the name: only a forked child that inherited our
            // socket and announces again can collide; the inherited one
            // already shows the node.
            Err(nix::errno::Errno::EADDRINUSE) => Ok(Box::new(AbstractSocket { _fd: fd })),
            Err(e) => Err(RsmError::from_alloc_errno(e as i32)),
        }
    }

    fn nodes_present(&self) -> RsmResult<Vec<NodeId>> {
        Ok(parse_present_nodes(&unix_table()?, &self.presence_prefix()))
    }

    fn present(&self) -> RsmResult<Vec<Present>> {
        Ok(parse_present(&unix_table()?, &self.presence_prefix()))
    }

    fn survey(&self) -> RsmResult<Vec<SegmentReport>> {
        let prefix = format!("rsm/{}/", self.fabric);
        let published = parse_published(&unix_table()?, &prefix);
        let mut reports = Vec::with_capacity(published.len());
        for batch in published.chunks(QUERY_BATCH) {
            let answers = query_all(&self.fabric, batch, self.connect_timeout);
            reports.extend(batch.iter().zip(answers).map(|(&(node, segid), details)| {
                SegmentReport {
                    node,
                    segid,
                    details,
                }
            }));
        }
        Ok(reports)
    }

    fn bind(&self, vaddr: usize, len: usize) -> RsmResult<Box<dyn ExportPort>> {
        Ok(Box::new(export::ShmExportPort::bind(
            &self.fabric,
            vaddr,
            len,
        )?))
    }

    fn connect(
        &self,
        local_node: NodeId,
        node: NodeId,
        segid: u32,
        perm: u32,
    ) -> RsmResult<Box<dyn ImportPort>> {
        // No socket for the segment: is the node there at all?
        let absent = || {
            let present = node == local_node
                || self
                    .nodes_present()
                    .is_ok_and(|nodes| nodes.contains(&node));
            if present {
                RsmError::SegNotPublished
            } else {
                RsmError::RemoteNodeUnreachable
            }
        };
        let port = import::ShmImportPort::connect(
            &self.fabric,
            local_node,
            node,
            segid,
            perm,
            self.connect_timeout,
            absent,
        )?;
        Ok(Box::new(port))
    }
}

/// The abstract sockets of this network namespace (`/proc/net/unix`).
fn unix_table() -> RsmResult<String> {
    std::fs::read_to_string("/proc/net/unix").map_err(|e| {
        crate::why!("shm: cannot read /proc/net/unix: {e}");
        RsmError::InternalError
    })
}

/// The processes announced under `prefix`, by node, pid and controller.
fn parse_present(table: &str, prefix: &str) -> Vec<Present> {
    let mut found: Vec<Present> = table
        .lines()
        .skip(1)
        .filter_map(|line| line.split_whitespace().nth(7))
        .filter_map(|path| path.strip_prefix('@')?.strip_prefix(prefix))
        .filter_map(|rest| {
            let mut parts = rest.splitn(3, '/');
            Some(Present {
                node: parts.next()?.parse().ok()?,
                pid: parts.next()?.parse().ok()?,
                controller: parts.next()?.to_string(),
            })
        })
        .collect();
    found.sort_by(|a, b| (a.node, a.pid, &a.controller).cmp(&(b.node, b.pid, &b.controller)));
    found.dedup();
    found
}

/// The segments published under `prefix` (`rsm/<fabric>/`): listening
/// sockets named `<prefix><node>/<segid>`.
fn parse_published(table: &str, prefix: &str) -> Vec<(NodeId, u32)> {
    const LISTENING: &str = "00010000"; // __SO_ACCEPTCON
    let mut found: Vec<(NodeId, u32)> = table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            (f.len() == 8 && f[3] == LISTENING).then(|| f[7])
        })
        .filter_map(|path| path.strip_prefix('@')?.strip_prefix(prefix))
        .filter_map(|rest| {
            // node/segid/tag
            let mut parts = rest.split('/');
            let (node, segid) = (parts.next()?, parts.next()?);
            Some((node.parse().ok()?, segid.parse().ok()?))
        })
        .collect();
    found.sort_unstable();
    found.dedup();
    found
}

/// How many segments a survey asks at once: their answers are awaited
/// together, so a few stopped exporters (or exporters waiting on stopped
/// importers) cost one timeout, not one each; the batch keeps the
/// descriptors held well below any `RLIMIT_NOFILE`.
const QUERY_BATCH: usize = 128;

/// What a survey says of one segment.
type Answer = Result<Option<SegmentDetails>, String>;

/// Asks the agents of `segs` what they let us see, all at once, and
/// waits up to `timeout` for their answers, in the order of `segs`.
fn query_all(fabric: &str, segs: &[(NodeId, u32)], timeout: Duration) -> Vec<Answer> {
    let mut answers: Vec<Option<Answer>> = Vec::with_capacity(segs.len());
    let mut asked: Vec<(usize, OwnedFd)> = Vec::new();
    for (i, &(node, segid)) in segs.iter().enumerate() {
        match ask(fabric, node, segid) {
            Ok(fd) => {
                answers.push(None);
                asked.push((i, fd));
            }
            Err(e) => answers.push(Some(Err(e))),
        }
    }
    let deadline = Instant::now() + timeout;
    while !asked.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        let mut fds: Vec<libc::pollfd> = asked
            .iter()
            .map(|(_, fd)| libc::pollfd {
                fd: std::os::fd::AsRawFd::as_raw_fd(fd),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        let ms = i32::try_from(left.as_millis()).unwrap_or(i32::MAX);
        // SAFETY: an array of ours, borrowed for the call.
        let ready = unsafe { crate::platform::poll(fds.as_mut_ptr(), fds.len() as _, ms) };
        match ready {
            Ok(0) => break, // the time is up
            Ok(_) => {}
            Err(RsmError::Interrupted) => continue,
            Err(e) => {
                for (i, _) in asked.drain(..) {
                    answers[i] = Some(Err(format!("poll: {e:?}")));
                }
                break;
            }
        }
        let mut k = 0;
        asked.retain(|(i, fd)| {
            let done = fds[k].revents != 0;
            k += 1;
            if done {
                answers[*i] = Some(answer(fd));
            }
            !done
        });
    }
    answers
        .into_iter()
        .map(|a| {
            a.unwrap_or_else(|| Err("no answer (the exporter's agent is stopped or busy)".into()))
        })
        .collect()
}

/// Sends the agent of segment `segid` of `node` a query; its answer comes
/// on the returned socket.
fn ask(fabric: &str, node: NodeId, segid: u32) -> Result<OwnedFd, String> {
    use nix::sys::socket::{connect, send, MsgFlags};
    let name = export::segment_name(fabric, node, segid);
    let addr = UnixAddr::new_abstract(name.as_bytes()).map_err(|e| e.to_string())?;
    let fd = socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        None,
    )
    .map_err(|e| format!("socket: {e}"))?;
    let raw = std::os::fd::AsRawFd::as_raw_fd(&fd);
    connect(raw, &addr).map_err(|e| match e {
        nix::errno::Errno::EAGAIN => "exporter busy (backlog full)".to_string(),
        nix::errno::Errno::ECONNREFUSED => "unpublished meanwhile".to_string(),
        e => format!("connect: {e}"),
    })?;
    send(raw, &wire::encode_query(), MsgFlags::MSG_NOSIGNAL).map_err(|e| format!("send: {e}"))?;
    Ok(fd)
}

/// Reads the answer waiting on a socket `ask` returned.
fn answer(fd: &OwnedFd) -> Answer {
    use nix::sys::socket::{recv, MsgFlags};
    let mut buf = vec![0u8; wire::ANSWER_MAX];
    let raw = std::os::fd::AsRawFd::as_raw_fd(fd);
    let n = recv(raw, &mut buf, MsgFlags::MSG_DONTWAIT).map_err(|e| format!("recv: {e}"))?;
    let text = String::from_utf8_lossy(&buf[..n]);
    survey::decode(&text).ok_or_else(|| {
        if n == 0 {
            "closed without an answer (an older librsm?)".to_string()
        } else {
            "answer not understood".to_string()
        }
    })
}

/// Node ids announced under `prefix` in the text of `/proc/net/unix`.
fn parse_present_nodes(table: &str, prefix: &str) -> Vec<NodeId> {
    let mut nodes: Vec<NodeId> = parse_present(table, prefix)
        .into_iter()
        .map(|p| p.node)
        .collect();
    nodes.dedup(); // sorted by node already
    nodes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_net_unix() {
        let table = "Num       RefCount Protocol Flags    Type St Inode Path\n\
            0000000000000000: 00000002 00000000 00000000 0005 01 1001 @rsm/lab/present/3/77/shm0\n\
            0000000000000000: 00000002 00000000 00000000 0005 01 1002 @rsm/lab/present/1/78/shm0\n\
            0000000000000000: 00000002 00000000 00000000 0005 01 1003 @rsm/lab/present/3/79/loopback\n\
            0000000000000000: 00000002 00000000 00000000 0005 01 1004 @rsm/other/present/9/80/shm0\n\
            0000000000000000: 00000002 00000000 00000000 0005 01 1005 @rsm/lab/present/x/80/shm0\n\
            0000000000000000: 00000002 00000000 00010000 0001 01 1006 /run/systemd/notify\n\
            0000000000000000: 00000003 00000000 00000000 0001 03 1007\n";
        assert_eq!(parse_present_nodes(table, "rsm/lab/present/"), vec![1, 3]);
        assert_eq!(parse_present_nodes(table, "rsm/other/present/"), vec![9]);
        assert!(parse_present_nodes(table, "rsm/none/present/").is_empty());
    }

    /// Names spread evenly over the kernel's 256 chains: what a lookup
    /// walks, on average, is what a random spread gives (N/256 + 1), where
    /// plain decimal names made it about ten times as long.
    #[test]
    fn segment_names_spread_over_the_kernel_chains() {
        const N: u32 = 10_000;
        let mut chains = [0u64; 256];
        for id in 0x40_0000..0x40_0000 + N {
            let name = segment_name("scale-1234", 0, id);
            let (prefix, tag) = name.rsplit_once('/').unwrap();
            assert_eq!(prefix, format!("rsm/scale-1234/0/{id}"));
            assert!(tag.len() >= 4 && tag.bytes().all(|c| (0x21..=0x7e).contains(&c)));
            assert_eq!(name, segment_name("scale-1234", 0, id), "stable");
            chains[usize::from(export::chain_of(name.as_bytes()))] += 1;
        }
        let walked = chains.iter().map(|&c| c * c).sum::<u64>() as f64 / f64::from(N);
        let even = f64::from(N) / 256.0 + 1.0;
        assert!(
            walked < even * 1.2,
            "mean chain {walked:.1}, even {even:.1}"
        );
        // Plain names, for the record of why: far from even.
        let mut plain = [0u64; 256];
        for id in 0x40_0000..0x40_0000 + N {
            plain[usize::from(export::chain_of(
                format!("rsm/scale-1234/0/{id}").as_bytes(),
            ))] += 1;
        }
        let walked_plain = plain.iter().map(|&c| c * c).sum::<u64>() as f64 / f64::from(N);
        assert!(walked_plain > even * 5.0, "plain names: {walked_plain:.1}");
    }

    #[test]
    fn parses_processes_and_published_segments() {
        let table = "Num       RefCount Protocol Flags    Type St Inode Path\n\
            0000000000000000: 00000002 00000000 00000000 0005 01 1001 @rsm/lab/present/3/77/shm0\n\
            0000000000000000: 00000002 00000000 00000000 0005 01 1002 @rsm/lab/present/1/78/shm1\n\
            0000000000000000: 00000002 00000000 00010000 0005 01 1003 @rsm/lab/3/4096/_a<b=\n\
            0000000000000000: 00000003 00000000 00000000 0005 03 1004 @rsm/lab/3/4096/_a<b=\n\
            0000000000000000: 00000002 00000000 00010000 0005 01 1005 @rsm/lab/1/2147483648/@$@%\n\
            0000000000000000: 00000002 00000000 00010000 0005 01 1006 @rsm/other/1/7/abcd\n\
            0000000000000000: 00000002 00000000 00010000 0005 01 1007 @rsm/lab/x/7/abcd\n";
        let p = parse_present(table, "rsm/lab/present/");
        assert_eq!(p.len(), 2);
        assert_eq!(
            (p[0].node, p[0].pid, p[0].controller.as_str()),
            (1, 78, "shm1")
        );
        assert_eq!(
            parse_published(table, "rsm/lab/"),
            vec![(1, 0x8000_0000), (3, 4096)],
            "listening sockets only, once each, of this fabric"
        );
    }

    #[test]
    fn announcing_makes_a_node_visible_until_dropped() {
        let fabric = format!("unit-{}", std::process::id());
        let t = ShmTransport::new(&fabric, 10, Duration::from_secs(1));
        assert!(t.nodes_present().unwrap().is_empty());
        let a = t.announce(5, "shm0").unwrap();
        let b = t.announce(9, "shm1").unwrap();
        assert_eq!(t.nodes_present().unwrap(), vec![5, 9]);
        drop(a);
        assert_eq!(t.nodes_present().unwrap(), vec![9]);
        drop(b);
        assert!(t.nodes_present().unwrap().is_empty());
    }

    #[test]
    fn attributes_are_real() {
        let a = ShmTransport::new("x", 123, Duration::from_secs(1))
            .attributes()
            .unwrap();
        assert_eq!(a.page_size, page_size());
        assert!(a.page_size >= 4096 && a.page_size.is_power_of_two());
        assert!(a.max_export_segment_size >= 64 << 20);
        assert_eq!((a.max_export_segments, a.max_import_segments), (123, 123));
    }
}
